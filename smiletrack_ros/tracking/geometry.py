"""Box conversions and pairwise IoU, vectorised over (N, 4) arrays."""
from __future__ import annotations

import numpy as np


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """x1,y1,x2,y2 -> centre x, centre y, aspect (w/h), height: the Kalman measurement."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    w = xyah[:, 2] * xyah[:, 3]
    h = xyah[:, 3]
    x1 = xyah[:, 0] - w / 2
    y1 = xyah[:, 1] - h / 2
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (M, 4) with every box in ``b`` (N, 4) -> (M, N)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    # Degenerate (zero-area) pairs have no overlap: IoU 0, not nan.
    return inter / np.maximum(union, np.finfo(np.float64).tiny)
