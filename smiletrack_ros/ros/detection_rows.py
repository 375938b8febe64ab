"""External detections (vision_msgs/Detection2DArray) -> Detections, one row at a time.

A row the tracker cannot represent (a non-finite or negative box, a box or score past
float32's range such as w = 1e39, a class that is neither a configured name nor an
integer fitting int64) is dropped and counted by reason; the other rows of the frame
are tracked. ``rows`` keeps each kept detection's index in the message, so outputs can
point into the message the sender published.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smiletrack_ros.detections import Detections
from smiletrack_ros.labels import LabelError, class_index

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT64 = np.iinfo(np.int64)


class RowError(ValueError):
    """One detection that cannot be used; ``reason`` is its counter key."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class DetectionRows:
    detections: Detections
    rows: np.ndarray                                    # (N,) int64 message index of each detection
    dropped: Counter[str] = field(default_factory=Counter)
    problems: tuple[str, ...] = ()                      # one message per dropped row, in order


def _representable(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= _FLOAT32_MAX


def read_row(det: Any, index: int, class_names: Sequence[str]) -> tuple[tuple[float, ...], float, int]:
    """(x1, y1, x2, y2), score, class id of one Detection2D; the best hypothesis gives class
    and score (none: class 0, score 1)."""
    cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
    w, h = det.bbox.size_x, det.bbox.size_y
    box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    if not (all(_representable(v) for v in (cx, cy, w, h, *box)) and w >= 0 and h >= 0):
        raise RowError("detection_box", f"detection {index} has an invalid box (center {cx}, {cy}, size {w} x {h}; "
                                        f"finite float32 values and sizes >= 0 are needed)")
    if not det.results:
        return box, 1.0, 0
    best = max(det.results, key=lambda r: r.hypothesis.score).hypothesis
    if not _representable(best.score):
        raise RowError("detection_score", f"detection {index} has a non-finite score {best.score}")
    try:
        cls = class_index(best.class_id, class_names)
    except LabelError as exc:
        raise RowError("detection_class", f"detection {index}: {exc}") from None
    if not _INT64.min <= cls <= _INT64.max:
        raise RowError("detection_class", f"detection {index}: class_id {best.class_id[:40]!r} does not fit int64")
    return box, float(best.score), cls


def read_detection_array(msg: Any, class_names: Sequence[str] = ()) -> DetectionRows:
    boxes, scores, class_ids, rows = [], [], [], []
    dropped: Counter[str] = Counter()
    problems = []
    for i, det in enumerate(msg.detections):
        try:
            box, score, cls = read_row(det, i, class_names)
        except RowError as exc:
            dropped[exc.reason] += 1
            problems.append(str(exc))
            continue
        boxes.append(box)
        scores.append(score)
        class_ids.append(cls)
        rows.append(i)
    detections = Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                            np.asarray(class_ids, np.int64))
    return DetectionRows(detections, np.asarray(rows, np.int64), dropped, tuple(problems))
