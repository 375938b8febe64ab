"""The box container every stage shares: detectors return it, the tracker, the bags and
the messages read it. It sits at the bottom of the import graph (numpy only)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Boxes in source-image pixels: ``boxes`` (N, 4) float32 x1, y1, x2, y2;
    ``scores`` (N,) float32 in [0, 1]; ``class_ids`` (N,) int64."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if np.shape(self.boxes) != (n, 4) or np.shape(self.scores) != (n,) or np.shape(self.class_ids) != (n,):
            raise ValueError(
                f"Detections need boxes (N, 4), scores (N,), class_ids (N,); got "
                f"{np.shape(self.boxes)}, {np.shape(self.scores)}, {np.shape(self.class_ids)}")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.boxes)

    def subset(self, index: np.ndarray) -> Detections:
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index])
