"""Person detection quality against MOT ground truth: recall, precision, AP at one IoU."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from smiletrack_ros.boxes import iou_matrix


def match_frame(boxes: np.ndarray, scores: np.ndarray, gt_boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy matching in descending score order (as PASCAL VOC / COCO do): each detection
    takes the best still-free ground-truth box with IoU >= threshold. Returns TP flags."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.zeros(len(scores), bool)
    if len(gt_boxes) == 0 or len(scores) == 0:
        return tp
    ious = iou_matrix(boxes, gt_boxes)
    free = np.ones(len(gt_boxes), bool)
    for i in order:
        candidates = np.where(free, ious[i], -1.0)
        j = int(np.argmax(candidates))
        if candidates[j] >= iou_threshold:
            tp[i], free[j] = True, False
    return tp


@dataclass
class DetectionTally:
    """Accumulates per-frame matches; the PR curve comes from one matching at the lowest score."""

    iou_threshold: float = 0.5
    scores: list[np.ndarray] = field(default_factory=list)
    hits: list[np.ndarray] = field(default_factory=list)
    n_gt: int = 0
    frames: int = 0

    def add(self, boxes: np.ndarray, scores: np.ndarray, gt_boxes: np.ndarray) -> None:
        self.scores.append(np.asarray(scores, np.float64))
        self.hits.append(match_frame(boxes, scores, gt_boxes, self.iou_threshold))
        self.n_gt += len(gt_boxes)
        self.frames += 1

    def merged(self, other: DetectionTally) -> DetectionTally:
        return DetectionTally(self.iou_threshold, self.scores + other.scores, self.hits + other.hits,
                              self.n_gt + other.n_gt, self.frames + other.frames)

    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        scores = np.concatenate(self.scores) if self.scores else np.zeros(0)
        hits = np.concatenate(self.hits) if self.hits else np.zeros(0, bool)
        order = np.argsort(-scores, kind="stable")
        return scores[order], hits[order]

    def at(self, threshold: float) -> tuple[float, float, int]:
        """(recall, precision, detections kept) for boxes scoring >= threshold."""
        scores, hits = self._sorted()
        keep = scores >= threshold
        tp = int(hits[keep].sum())
        n = int(keep.sum())
        return (tp / self.n_gt if self.n_gt else float("nan"), tp / n if n else float("nan"), n)

    def average_precision(self) -> float:
        """All-point interpolated AP (area under the monotone precision envelope)."""
        if self.n_gt == 0:
            return float("nan")
        _, hits = self._sorted()
        tp = np.cumsum(hits)
        recall = np.concatenate(([0.0], tp / self.n_gt))
        precision = np.concatenate(([1.0], tp / np.arange(1, len(hits) + 1)))
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        return float(np.sum(np.diff(recall) * precision[1:]))

    def best_recall(self, min_precision: float) -> tuple[float, float, float]:
        """(recall, precision, score threshold) of the highest-recall cut whose precision
        is still >= ``min_precision``; nan when no cut qualifies."""
        scores, hits = self._sorted()
        if self.n_gt == 0 or len(scores) == 0:
            return float("nan"), float("nan"), float("nan")
        tp = np.cumsum(hits)
        precision = tp / np.arange(1, len(hits) + 1)
        # only cut between distinct scores: a threshold keeps all boxes of equal score
        last_of_score = np.r_[scores[1:] != scores[:-1], True]
        ok = np.flatnonzero((precision >= min_precision) & last_of_score)
        if ok.size == 0:
            return float("nan"), float("nan"), float("nan")
        i = ok[np.argmax(tp[ok])]
        return float(tp[i] / self.n_gt), float(precision[i]), float(scores[i])
