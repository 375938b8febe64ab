"""Received vision_msgs/Detection2DArray -> Detections, and track indices into it.

The outputs are encoded by ``smiletrack_ros.cdr`` (one encoder for the node, the bags and
the tests); box centres/sizes are source-image pixels, as the vision_msgs convention asks.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from smiletrack_ros.cdr import detections_cdr
from smiletrack_ros.detections import Detections
from smiletrack_ros.ros.detection_rows import read_detection_array
from smiletrack_ros.tracking import TrackOutput


class DetectionsError(ValueError):
    """An external Detection2DArray that cannot be used (unknown class, non-finite box)."""


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


def detection_array_message(header: Any, detections: Detections, class_names: Sequence[str] = ()) -> Any:
    """``detections`` (no track ids) as an rclpy Detection2DArray, e.g. for a publisher: the bytes of
    the one encoder (``cdr``) read back by rclpy, so there is no second encoding to keep in step."""
    from rclpy.serialization import deserialize_message
    from vision_msgs.msg import Detection2DArray

    data = detections_cdr(header, detections.boxes, detections.scores, detections.class_ids, class_names=class_names)
    return deserialize_message(data, Detection2DArray)
