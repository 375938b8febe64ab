"""The one message encoder: detections and tracks straight to CDR bytes.

The node publishes these bytes (``Publisher.publish(bytes)``), the bags write them
(``BagWriter``), the tests and benchmarks decode them with rclpy's
``deserialize_message`` (which also checks every field against rclpy's own layout).
Building 50 Detection2D / Track messages through rclpy's Python classes and then
serialising them costs several milliseconds a frame (every nested default, e.g. each
hypothesis' 36-float covariance, is constructed and type-checked); writing the same
bytes with ``struct`` costs a fraction of that. The layout is plain (XCDR1)
little-endian CDR as the ROS 2 rmw layers exchange it. Headers are any object with
``stamp.sec``, ``stamp.nanosec`` and ``frame_id`` (rclpy's, rosbags', or ``Header``).
Tracks are the tracker's ``TrackOutput`` (read by attribute). Imports numpy and ``labels``
only (a bottom-layer format): usable by the node, the bags and plain Python alike.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from smiletrack_ros.labels import class_label

_ENCAPSULATION = b"\x00\x01\x00\x00"      # CDR, little-endian, no options
_U32 = struct.Struct("<I")
_TIME = struct.Struct("<iI")
_F64X5 = struct.Struct("<5d")
_U64 = struct.Struct("<Q")
_F32_U8 = struct.Struct("<fB")
_TRACK_TAIL = struct.Struct("<ffIIIfi")   # velocity_x/y, age, hits, frames_since_update, similarity, det index
_F64 = struct.Struct("<d")
# geometry_msgs/PoseWithCovariance with an identity orientation and zero covariance: 43 doubles.
_IDENTITY_POSE = struct.pack("<43d", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, *([0.0] * 36))
_UINT32_MAX = 2**32 - 1
_GROUND_CODES = struct.Struct("<BB")      # ground_status, ground_refusal
_GROUND_STATE = struct.Struct("<20d")     # ground_x, _y, _velocity_x, _velocity_y, 4x4 covariance
_F32 = struct.Struct("<f")


@dataclass(frozen=True)
class GroundFields:
    """A Track's ``ground_*`` fields as plain values (msg/Track.msg): ``status`` / ``refusal`` codes,
    ``state`` the 20 doubles (x, y, velocity x, y, row-major 4x4 covariance), ``height`` in m."""

    status: int
    refusal: int
    state: tuple[float, ...]
    height: float


# No ground estimate (GROUND_NONE) for want of a camera model (REFUSAL_NO_CAMERA_MODEL).
NO_GROUND = GroundFields(0, 1, (0.0,) * 20, math.nan)


class CdrWriter:
    """Appends CDR primitives, aligning each to its size relative to the payload start."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray(_ENCAPSULATION)

    def align(self, size: int) -> None:
        pad = -(len(self.buf) - 4) % size
        if pad:
            self.buf += b"\x00" * pad

    def u32(self, value: int) -> None:
        self.align(4)
        self.buf += _U32.pack(value)

    def string(self, text: str) -> None:
        data = text.encode()
        self.u32(len(data) + 1)
        self.buf += data
        self.buf += b"\x00"

    def packed(self, fmt: struct.Struct, alignment: int, *values: Any) -> None:
        self.align(alignment)
        self.buf += fmt.pack(*values)

    def header(self, header: Any) -> None:
        self.packed(_TIME, 4, header.stamp.sec, header.stamp.nanosec)
        self.string(header.frame_id)

    def bbox(self, box: Any) -> None:
        """vision_msgs/BoundingBox2D from x1, y1, x2, y2: center (x, y, theta 0), size."""
        x1, y1, x2, y2 = (float(v) for v in box)
        self.packed(_F64X5, 8, (x1 + x2) * 0.5, (y1 + y2) * 0.5, 0.0, x2 - x1, y2 - y1)

    def bytes(self) -> bytes:
        return bytes(self.buf)


@dataclass(frozen=True)
class Stamp:
    sec: int
    nanosec: int


@dataclass(frozen=True)
class Header:
    """A std_msgs/Header for the encoders, from nanoseconds."""

    stamp: Stamp
    frame_id: str

    @classmethod
    def at(cls, stamp_ns: int, frame_id: str) -> Header:
        if stamp_ns < 0:
            raise ValueError(f"stamps must be >= 0 ns, got {stamp_ns}")
        return cls(Stamp(stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000), frame_id)


def _detection_array(header: Any, rows: Iterable[tuple[Any, float, str, str]]) -> bytes:
    """vision_msgs/Detection2DArray from (box x1 y1 x2 y2, score, class label, id) rows,
    one hypothesis each, every detection with the array's header."""
    rows = list(rows)
    w = CdrWriter()
    w.header(header)
    w.u32(len(rows))
    for box, score, label, ident in rows:
        w.header(header)
        w.u32(1)                                   # results: one ObjectHypothesisWithPose
        w.string(label)
        w.packed(_F64, 8, float(score))
        w.buf += _IDENTITY_POSE                    # already 8-aligned after the score
        w.bbox(box)
        w.string(ident)
    return w.bytes()


def detection_array_cdr(header: Any, tracks: Sequence[Any], class_names: Sequence[str] = ()) -> bytes:
    """The node's ``tracks``: one Detection2D per track, id = track id."""
    return _detection_array(header, ((t.box, t.score, class_label(t.class_id, class_names), str(t.track_id))
                                     for t in tracks))


def detections_cdr(header: Any, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                   ids: Sequence[int] | None = None, class_names: Sequence[str] = ()) -> bytes:
    """Detection2DArray from arrays: detections (``ids`` None: empty ids) or tracks (``ids``)."""
    texts = [""] * len(boxes) if ids is None else [str(int(i)) for i in ids]
    return _detection_array(header, ((b, s, class_label(int(c), class_names), i)
                                     for b, s, c, i in zip(boxes, scores, class_ids, texts, strict=True)))


def track_array_cdr(header: Any, tracks: Sequence[Any], class_names: Sequence[str] = (),
                    ground: Mapping[int, GroundFields] | None = None) -> bytes:
    """smiletrack_ros/TrackArray with every field of each track; ``ground``: the ``ground_*`` fields
    by track id (a track without an entry gets ``NO_GROUND``)."""
    w = CdrWriter()
    w.header(header)
    w.u32(len(tracks))
    for t in tracks:
        w.packed(_U64, 8, int(t.track_id))
        w.string(class_label(t.class_id, class_names))
        w.packed(_F32_U8, 4, float(t.score), int(t.state))
        w.bbox(t.box)
        w.packed(_TRACK_TAIL, 4, float(t.velocity[0]), float(t.velocity[1]), min(int(t.age), _UINT32_MAX),
                 min(int(t.hits), _UINT32_MAX), min(int(t.frames_since_update), _UINT32_MAX),
                 float(t.appearance_similarity), int(t.detection_index))
        fields = NO_GROUND if ground is None else ground.get(int(t.track_id), NO_GROUND)
        w.packed(_GROUND_CODES, 1, fields.status, fields.refusal)
        w.packed(_GROUND_STATE, 8, *fields.state)
        w.packed(_F32, 4, fields.height)
    return w.bytes()
