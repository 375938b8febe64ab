"""rosbag2 files (mcap or sqlite3) of images, detections and tracks, via the pure-Python rosbags.

Writing: ``BagWriter`` (per message), ``write_scene_bag``, ``write_video_bag``.
Reading: ``read_images`` / ``read_detections`` / ``read_tracks`` (numpy, header
stamps in ns, log-time order), ``read_frames`` (images paired with detections
by stamp), ``bag_info``; ``tracks_to_mot`` for evaluation.
"""
from smiletrack_ros.bags.convert import frame_stamp_ns, tracks_to_mot, write_scene_bag, write_video_bag
from smiletrack_ros.bags.io import (
                                    BagError,
                                    BagFrame,
                                    BagInfo,
                                    BagWriter,
                                    StampedDetections,
                                    StampedImage,
                                    StampedTracks,
                                    bag_info,
                                    image_stamps,
                                    read_detections,
                                    read_frames,
                                    read_images,
                                    read_tracks,
)
from smiletrack_ros.bags.messages import MessageContentError, TrackBoxes
from smiletrack_ros.bags.typestore import MessageDefinitionsError, build_typestore

__all__ = ["BagError", "BagFrame", "BagInfo", "BagWriter", "MessageContentError", "MessageDefinitionsError",
           "StampedDetections", "StampedImage", "StampedTracks", "TrackBoxes", "bag_info", "build_typestore",
           "frame_stamp_ns", "image_stamps", "read_detections", "read_frames", "read_images", "read_tracks",
           "tracks_to_mot", "write_scene_bag", "write_video_bag"]
