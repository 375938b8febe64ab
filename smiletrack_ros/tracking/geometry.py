"""Box conversions and pairwise IoU, vectorised over (N, 4) arrays."""
from __future__ import annotations

import numpy as np


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """x1,y1,x2,y2 -> centre x, centre y, aspect (w/h), height: the Kalman measurement."""
    out = np.empty((len(boxes), 4))
    size = boxes[:, 2:] - boxes[:, :2]
    np.add(boxes[:, :2], 0.5 * size, out=out[:, :2])
    np.divide(size[:, 0], size[:, 1], out=out[:, 2])
    out[:, 3] = size[:, 1]
    return out


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    half = np.empty((len(xyah), 2))
    np.multiply(xyah[:, 3], 0.5, out=half[:, 1])
    np.multiply(xyah[:, 2], half[:, 1], out=half[:, 0])
    centre = xyah[:, :2]
    return np.concatenate([centre - half, centre + half], axis=1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (M, 4) with every box in ``b`` (N, 4) -> (M, N)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    # Outer products and in-place steps: this runs several times a frame.
    inter = np.minimum.outer(a[:, 2], b[:, 2]) - np.maximum.outer(a[:, 0], b[:, 0])
    height = np.minimum.outer(a[:, 3], b[:, 3]) - np.maximum.outer(a[:, 1], b[:, 1])
    np.maximum(inter, 0.0, out=inter)
    np.maximum(height, 0.0, out=height)
    inter *= height
    union = np.add.outer((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
    union -= inter
    # Degenerate (zero-area) pairs have no overlap: IoU 0, not nan.
    np.maximum(union, np.finfo(np.float64).tiny, out=union)
    inter /= union
    return inter
