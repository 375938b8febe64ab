"""What every detector backend returns, and the interface the pipeline calls."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.boxes)

    def subset(self, index: np.ndarray) -> "Detections":
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index])


class Detector(Protocol):
    """A detector takes one HxWx3 uint8 BGR image and returns its detections."""

    def __call__(self, image_bgr: np.ndarray) -> Detections: ...


def check_image(image_bgr: np.ndarray) -> np.ndarray:
    """Reject what no detector can read, with a message naming the problem."""
    if not isinstance(image_bgr, np.ndarray):
        raise ValueError(f"detector input must be a numpy HxWx3 uint8 BGR image, got {type(image_bgr).__name__}")
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.shape[0] == 0 or image_bgr.shape[1] == 0:
        raise ValueError(f"detector input must be HxWx3 (BGR), got shape {image_bgr.shape}")
    if image_bgr.dtype != np.uint8:
        raise ValueError(f"detector input must be uint8, got {image_bgr.dtype}")
    return image_bgr
