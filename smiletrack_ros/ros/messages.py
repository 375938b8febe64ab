"""Tracks -> vision_msgs/Detection2DArray and smiletrack_ros/TrackArray; Detection2DArray -> Detections.

Every output header is the source image's header (stamp and frame_id), and box
centres/sizes are in source-image pixels, as the vision_msgs convention asks.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from vision_msgs.msg import (
    BoundingBox2D,
    Detection2D,
    Detection2DArray,
    ObjectHypothesis,
    ObjectHypothesisWithPose,
    Point2D,
    Pose2D,
)

from smiletrack_ros.detections import Detections
from smiletrack_ros.labels import class_label
from smiletrack_ros.msg import Track, TrackArray
from smiletrack_ros.ros.detection_rows import read_detection_array
from smiletrack_ros.ros.ground_fields import track_ground_fields
from smiletrack_ros.tracking import TrackOutput

_UINT32_MAX = 2**32 - 1


class DetectionsError(ValueError):
    """An external Detection2DArray that cannot be used (unknown class, non-finite box)."""


def _bbox(box: np.ndarray) -> BoundingBox2D:
    x1, y1, x2, y2 = (float(v) for v in box)
    return BoundingBox2D(center=Pose2D(position=Point2D(x=(x1 + x2) * 0.5, y=(y1 + y2) * 0.5)),
                         size_x=x2 - x1, size_y=y2 - y1)


def tracks_to_detection_array(header: Any, tracks: Sequence[TrackOutput],
                              class_names: Sequence[str] = ()) -> Detection2DArray:
    """One Detection2D per track: ``id`` = track id, one hypothesis (class, score)."""
    detections = []
    for t in tracks:
        hypothesis = ObjectHypothesisWithPose(
            hypothesis=ObjectHypothesis(class_id=class_label(t.class_id, class_names), score=float(t.score)))
        detections.append(Detection2D(header=header, results=[hypothesis], bbox=_bbox(t.box), id=str(t.track_id)))
    return Detection2DArray(header=header, detections=detections)


def tracks_to_track_array(header: Any, tracks: Sequence[TrackOutput], class_names: Sequence[str] = (),
                          ground: Mapping[int, Any] | None = None) -> TrackArray:
    """``ground``: GroundEstimate by track id, for the ``ground_*`` fields."""
    out = []
    for t in tracks:
        out.append(Track(
            id=int(t.track_id), class_id=class_label(t.class_id, class_names), score=float(t.score),
            state=int(t.state), bbox=_bbox(t.box),
            velocity_x=float(t.velocity[0]), velocity_y=float(t.velocity[1]),
            age=min(int(t.age), _UINT32_MAX), hits=min(int(t.hits), _UINT32_MAX),
            frames_since_update=min(int(t.frames_since_update), _UINT32_MAX),
            appearance_similarity=float(t.appearance_similarity), detection_index=int(t.detection_index),
            **track_ground_fields(None if ground is None else ground.get(int(t.track_id)))))
    return TrackArray(header=header, tracks=out)


def index_into_message(tracks: Sequence[TrackOutput], kept: np.ndarray) -> list[TrackOutput]:
    """Tracks whose ``detection_index`` points into the received Detection2DArray
    rather than into the detections kept from it (``kept``: their message indices)."""
    return [dataclasses.replace(t, detection_index=int(kept[t.detection_index])) if t.detection_index >= 0 else t
            for t in tracks]


def detection_array_to_detections(msg: Any, class_names: Sequence[str] = ()) -> Detections:
    """External detections, all or nothing: the first row that cannot be used raises
    DetectionsError (the node keeps the good rows instead: ``detection_rows``)."""
    read = read_detection_array(msg, class_names)
    if read.problems:
        raise DetectionsError(read.problems[0])
    return read.detections


def detections_to_detection_array(header: Any, detections: Detections,
                                  class_names: Sequence[str] = ()) -> Detection2DArray:
    """Plain detections (no track ids), e.g. a scene generator's or a detector's output."""
    out = []
    for box, score, cls in zip(detections.boxes, detections.scores, detections.class_ids, strict=True):
        hypothesis = ObjectHypothesisWithPose(
            hypothesis=ObjectHypothesis(class_id=class_label(int(cls), class_names), score=float(score)))
        out.append(Detection2D(header=header, results=[hypothesis], bbox=_bbox(box)))
    return Detection2DArray(header=header, detections=out)
