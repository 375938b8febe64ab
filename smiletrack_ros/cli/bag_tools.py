"""rosbag2 tools (pure-Python rosbags; no ``ros2 bag`` needed).

    python -m smiletrack_ros.cli.bag_tools from-video VIDEO_OR_FOLDER OUT_BAG [--fps 25] [--det-file det.txt]
    python -m smiletrack_ros.cli.bag_tools from-scene OUT_BAG [--people 8 --frames 200 ...]
    python -m smiletrack_ros.cli.bag_tools to-mot TRACKS_BAG OUT.txt [--tracks-topic /tracks]
    python -m smiletrack_ros.cli.bag_tools info BAG

Bags are written as mcap (``--storage sqlite3`` for .db3); images as bgr8
sensor_msgs/Image stamped from the frame rate, detections as
vision_msgs/Detection2DArray with the same stamps.
"""
from __future__ import annotations

import argparse
import sys
import time

from smiletrack_ros.bags import BagError, MessageContentError, bag_info, tracks_to_mot, write_scene_bag, write_video_bag
from smiletrack_ros.bags.convert import DEFAULT_DETECTIONS_TOPIC, DEFAULT_IMAGE_TOPIC
from smiletrack_ros.bags.io import STORAGES
from smiletrack_ros.bags.typestore import MessageDefinitionsError
from smiletrack_ros.mot.io import SCORE_RESCALES, MotFormatError, read_detections
from smiletrack_ros.scene import SceneConfigError, generate_scene
from smiletrack_ros.scene.cli_args import add_scene_arguments, scene_config_from_args


def _seconds_to_ns(seconds: float) -> int:
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"start time must be >= 0 s, got {seconds}")
    return int(round(seconds * 1e9))


def _first_stamp_ns(seconds: float | None) -> int:
    """The first frame's stamp: ``--start`` or, by default, now (as a camera driver stamps);
    never 0, which ROS reads as an unset stamp."""
    if seconds is None:
        return time.time_ns() // 1_000_000 * 1_000_000
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"start time must be > 0 s (ROS reads a zero stamp as unset), got {seconds}")
    return _seconds_to_ns(seconds)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC)
    parser.add_argument("--frame-id", default="camera")
    parser.add_argument("--start", type=float, help="stamp of the first frame, seconds since the epoch "
                        "(default: now; 0 is refused, ROS reads it as unset)")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap")
    parser.add_argument("--compress", action="store_true", help="zstd-compressed mcap chunks")


def _from_video(args: argparse.Namespace) -> str:
    detections = read_detections(args.det_file, rescale=args.score_rescale) if args.det_file else None
    count = write_video_bag(args.source, args.out, fps=args.fps, image_topic=args.image_topic,
                            frame_id=args.frame_id, start_ns=_first_stamp_ns(args.start),
                            max_frames=args.max_frames, storage=args.storage, compress=args.compress,
                            detections=detections,
                            detections_topic=args.detections_topic)
    extra = f" and their detections on {args.detections_topic}" if detections is not None else ""
    return f"wrote {count} images on {args.image_topic}{extra} to {args.out}"


def _from_scene(args: argparse.Namespace) -> str:
    counts = write_scene_bag(generate_scene(scene_config_from_args(args)), args.out, image_topic=args.image_topic,
                             detections_topic=args.detections_topic or None, frame_id=args.frame_id,
                             start_ns=_first_stamp_ns(args.start), storage=args.storage, compress=args.compress)
    return f"wrote {args.out}: " + ", ".join(f"{topic} {n}" for topic, n in counts.items())


def _to_mot(args: argparse.Namespace) -> str:
    start = None if args.start is None else _seconds_to_ns(args.start)
    rows = tracks_to_mot(args.bag, args.out, tracks_topic=args.tracks_topic, image_topic=args.image_topic,
                         fps=args.fps, start_ns=start, class_names=args.class_names)
    return f"wrote {rows} track rows to {args.out}"


def _info(args: argparse.Namespace) -> str:
    info = bag_info(args.bag)
    lines = [f"{info.path}: {info.message_count} messages, {(info.end_ns - info.start_ns) / 1e9:.3f} s "
             f"(from {info.start_ns / 1e9:.3f} s)"]
    lines += [f"  {t.name}  {t.msgtype}  {t.count}" for t in info.topics]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bag_tools", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    video = sub.add_parser("from-video", help="video file or image folder -> bag of images")
    video.add_argument("source", help="video file, or a folder of images taken in name order")
    video.add_argument("out", help="bag folder to create (must not exist)")
    video.add_argument("--fps", type=float, help="frame rate (default: the video's; required for folders)")
    video.add_argument("--max-frames", type=int)
    video.add_argument("--det-file", help="MOT det.txt whose frame k goes with the k-th image")
    video.add_argument("--score-rescale", choices=SCORE_RESCALES, default="none",
                       help="map det-file scores into [0, 1] (ACF margins: logistic or minmax)")
    video.add_argument("--detections-topic", default=DEFAULT_DETECTIONS_TOPIC)
    _add_output_options(video)
    video.set_defaults(run=_from_video)

    scene = sub.add_parser("from-scene", help="synthetic scene -> bag of images and simulated detections")
    scene.add_argument("out", help="bag folder to create (must not exist)")
    scene.add_argument("--detections-topic", default=DEFAULT_DETECTIONS_TOPIC, help="'' to leave detections out")
    _add_output_options(scene)
    add_scene_arguments(scene)
    scene.set_defaults(run=_from_scene)

    mot = sub.add_parser("to-mot", help="tracks bag (Detection2DArray with ids, or TrackArray) -> MOT results file")
    mot.add_argument("bag", help="bag folder or .mcap/.db3 file")
    mot.add_argument("out", help="MOT results file to write")
    mot.add_argument("--tracks-topic", help="default: the Detection2DArray topic named *track*, else the "
                                            "TrackArray topic, else the only one of either type")
    mot.add_argument("--image-topic", help="number frames by this topic's images (default when the bag has images)")
    mot.add_argument("--fps", type=float, help="without images: frame = (stamp - start) x fps + 1")
    mot.add_argument("--start", type=float, help="stamp of frame 1 in seconds (default: the first track stamp)")
    mot.add_argument("--class-names", nargs="+", default=[], metavar="NAME",
                     help="the node's class_names, when its class_id strings are names (e.g. person)")
    mot.set_defaults(run=_to_mot)

    info = sub.add_parser("info", help="topics, types, counts and time span of a bag")
    info.add_argument("bag")
    info.set_defaults(run=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        print(args.run(args))
    except (SceneConfigError, argparse.ArgumentTypeError) as err:
        parser.error(str(err))
    except (BagError, MessageContentError, MessageDefinitionsError, MotFormatError, ValueError, OSError) as err:
        print(f"bag_tools {args.command}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
