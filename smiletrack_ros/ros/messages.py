"""Received vision_msgs/Detection2DArray -> Detections, and track indices into it.

The outputs are encoded by ``smiletrack_ros.cdr`` (one encoder for the node, the bags and
the tests); box centres/sizes are source-image pixels, as the vision_msgs convention asks.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from smiletrack_ros.detections import Detections
from smiletrack_ros.labels import LabelError, class_index
from smiletrack_ros.tracking import TrackOutput


class DetectionsError(ValueError):
    """An external Detection2DArray that cannot be used (unknown class, non-finite box)."""


def index_into_message(tracks: Sequence[TrackOutput], kept: np.ndarray) -> list[TrackOutput]:
    """Tracks whose ``detection_index`` points into the received Detection2DArray
    rather than into the detections kept from it (``kept``: their message indices)."""
    return [dataclasses.replace(t, detection_index=int(kept[t.detection_index])) if t.detection_index >= 0 else t
            for t in tracks]


def detection_array_to_detections(msg: Any, class_names: Sequence[str] = ()) -> Detections:
    """External detections: the best hypothesis of each Detection2D gives class and score
    (a detection without hypotheses counts as class 0, score 1)."""
    n = len(msg.detections)
    boxes = np.empty((n, 4), np.float32)
    scores = np.empty(n, np.float32)
    class_ids = np.empty(n, np.int64)
    for i, det in enumerate(msg.detections):
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        w, h = det.bbox.size_x, det.bbox.size_y
        if not all(math.isfinite(v) for v in (cx, cy, w, h)) or w < 0 or h < 0:
            raise DetectionsError(f"detection {i} has an invalid box (center {cx}, {cy}, size {w} x {h})")
        boxes[i] = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if det.results:
            best = max(det.results, key=lambda r: r.hypothesis.score).hypothesis
            try:
                scores[i], class_ids[i] = best.score, class_index(best.class_id, class_names)
            except LabelError as exc:
                raise DetectionsError(f"detection {i}: {exc}") from None
        else:
            scores[i], class_ids[i] = 1.0, 0
        if not math.isfinite(float(scores[i])):
            raise DetectionsError(f"detection {i} has a non-finite score")
    return Detections(boxes, scores, class_ids)
