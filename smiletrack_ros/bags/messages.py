"""numpy <-> bag messages: images (rosbags objects), detections and tracks (CDR bytes from
``smiletrack_ros.cdr``, the encoder the node publishes with; read back as rosbags objects).

Detection2DArray carries both detections (``id`` empty) and tracks (``id`` =
track id); every header holds the source image's stamp and frame_id and box
centres/sizes are source-image pixels, as vision_msgs asks.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rosbags.typesys.store import Typestore

from smiletrack_ros.cdr import Header, detections_cdr
from smiletrack_ros.detections import Detections
from smiletrack_ros.image_codec import bgr_to_raw_fields, compressed_to_bgr, raw_to_bgr_numpy
from smiletrack_ros.labels import LabelError, class_index

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
DETECTION_ARRAY = "vision_msgs/msg/Detection2DArray"
TRACK_ARRAY = "smiletrack_ros/msg/TrackArray"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
TRACK_TYPES = (DETECTION_ARRAY, TRACK_ARRAY)


class MessageContentError(ValueError):
    """A message whose content cannot become numpy data (bad id, unknown class label, ...)."""


@dataclass(frozen=True)
class TrackBoxes:
    """Tracks of one frame as arrays: ``ids`` (N,) int64, ``boxes`` (N, 4) float32 x1, y1, x2, y2,
    ``scores`` (N,) float32, ``class_ids`` (N,) int64."""

    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_tracks(cls, tracks: Iterable[Any]) -> TrackBoxes:
        """From tracker outputs (anything with track_id, box, score, class_id)."""
        tracks = list(tracks)
        return cls(ids=np.array([t.track_id for t in tracks], np.int64),
                   boxes=np.array([np.asarray(t.box, np.float32) for t in tracks], np.float32).reshape(-1, 4),
                   scores=np.array([t.score for t in tracks], np.float32),
                   class_ids=np.array([t.class_id for t in tracks], np.int64))


def stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header(store: Typestore, stamp_ns: int, frame_id: str) -> Any:
    if stamp_ns < 0:
        raise ValueError(f"stamps must be >= 0 ns, got {stamp_ns}")
    time = store.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return store.types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def image_message(store: Typestore, image_bgr: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    fields = bgr_to_raw_fields(image_bgr)
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    return store.types[IMAGE](header=header(store, stamp_ns, frame_id), **fields)


def image_from_message(msg: Any, msgtype: str) -> np.ndarray:
    """HxWx3 uint8 BGR from a raw or compressed image message."""
    return compressed_to_bgr(msg) if msgtype == COMPRESSED_IMAGE else raw_to_bgr_numpy(msg)


def detections_message(detections: Detections, stamp_ns: int, frame_id: str) -> bytes:
    """Detection2DArray CDR with empty ids (not tracked yet), by the node's own encoder."""
    return detections_cdr(Header.at(stamp_ns, frame_id), detections.boxes, detections.scores, detections.class_ids)


def tracks_message(tracks: TrackBoxes, stamp_ns: int, frame_id: str) -> bytes:
    """Detection2DArray CDR with ``id`` = track id, the bytes of the node's ``tracks`` topic."""
    return detections_cdr(Header.at(stamp_ns, frame_id), tracks.boxes, tracks.scores, tracks.class_ids,
                          ids=tracks.ids)


def _box_from_bbox(bbox: Any) -> tuple[float, float, float, float]:
    cx, cy = bbox.center.position.x, bbox.center.position.y
    return (cx - bbox.size_x / 2, cy - bbox.size_y / 2, cx + bbox.size_x / 2, cy + bbox.size_y / 2)


def _arrays(items: Sequence[Any], scores: list[float], class_labels: list[str],
            class_names: Sequence[str]) -> tuple[np.ndarray, ...]:
    boxes = np.array([_box_from_bbox(d.bbox) for d in items], np.float32).reshape(-1, 4)
    if not np.all(np.isfinite(boxes)):
        raise MessageContentError("non-finite bounding box")
    try:
        class_ids = np.array([class_index(c, class_names) for c in class_labels], np.int64)
    except LabelError as exc:
        raise MessageContentError(f"{exc} (pass the node's class_names)") from None
    return boxes, np.array(scores, np.float32), class_ids


def _best_hypothesis(detection: Any) -> tuple[str, float]:
    """The highest-scoring hypothesis; a detection without any counts as class 0, score 1."""
    if not detection.results:
        return "0", 1.0
    best = max(detection.results, key=lambda r: r.hypothesis.score)
    return best.hypothesis.class_id, float(best.hypothesis.score)


def detections_from_message(msg: Any, class_names: Sequence[str] = ()) -> Detections:
    """``class_names``: the names by class index that the writer used (integer labels need none)."""
    best = [_best_hypothesis(d) for d in msg.detections]
    boxes, scores, class_ids = _arrays(msg.detections, [s for _, s in best], [c for c, _ in best], class_names)
    return Detections(boxes, scores, class_ids)


def _track_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise MessageContentError(f"track id {text!r} is not an integer (a detection without a track id?)") from None


def tracks_from_message(msg: Any, msgtype: str, class_names: Sequence[str] = ()) -> TrackBoxes:
    """Tracks from a Detection2DArray (``id`` per detection) or a smiletrack_ros TrackArray."""
    if msgtype == TRACK_ARRAY:
        items = msg.tracks
        ids = [int(t.id) for t in items]
        boxes, scores, class_ids = _arrays(items, [float(t.score) for t in items], [t.class_id for t in items],
                                           class_names)
    elif msgtype == DETECTION_ARRAY:
        items = msg.detections
        ids = [_track_id(d.id) for d in items]
        best = [_best_hypothesis(d) for d in items]
        boxes, scores, class_ids = _arrays(items, [s for _, s in best], [c for c, _ in best], class_names)
    else:
        raise MessageContentError(f"{msgtype} does not carry tracks (expected one of {TRACK_TYPES})")
    return TrackBoxes(np.array(ids, np.int64), boxes, scores, class_ids)
