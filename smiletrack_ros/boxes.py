"""Box conventions and pairwise IoU over (N, 4) numpy arrays: the one home for both.

Boxes are x1, y1, x2, y2 (top-left, bottom-right) everywhere inside the package;
the other layouts exist only at the edges: ``xywh`` (top-left + size) in
MOTChallenge files, ``xyah`` (centre, aspect w/h, height) as the Kalman
measurement. (Detector outputs are centre + size: ``detection.postprocess``
converts those on the device, in torch.)
"""
from __future__ import annotations

import numpy as np

_TINY = np.finfo(np.float64).tiny  # looked up once: np.finfo costs microseconds a call


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """Top-left x, y, width, height (MOTChallenge files) -> x1, y1, x2, y2 (float64 copy)."""
    xyxy = np.asarray(xywh, np.float64).copy()
    xyxy[:, 2:4] += xyxy[:, 0:2]
    return xyxy


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """x1,y1,x2,y2 -> centre x, centre y, aspect (w/h), height: the Kalman measurement."""
    out = np.empty((len(boxes), 4))
    size = boxes[:, 2:] - boxes[:, :2]
    np.add(boxes[:, :2], 0.5 * size, out=out[:, :2])
    np.divide(size[:, 0], size[:, 1], out=out[:, 2])
    out[:, 3] = size[:, 1]
    return out


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    boxes = np.empty((len(xyah), 4))
    half = boxes[:, 2:]  # half width and height first, then x2, y2 in their place
    np.multiply(xyah[:, 3], 0.5, out=half[:, 1])
    np.multiply(xyah[:, 2], half[:, 1], out=half[:, 0])
    centre = xyah[:, :2]
    np.subtract(centre, half, out=boxes[:, :2])
    np.add(centre, half, out=half)
    return boxes


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (M, 4) with every box in ``b`` (N, 4) -> (M, N) float64.

    A pair has IoU 0 when the boxes do not overlap, and so whenever either box is
    inverted (x2 < x1 or y2 < y1: a Kalman prediction can be), has zero area or
    has a nan coordinate; never nan. Computed in float64 whatever the input dtype.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    # Broadcast (M, 1) against (N,) columns, and in-place steps: the tracker runs this every frame.
    ax1, ay1, ax2, ay2 = a.T[:, :, None]
    bx1, by1, bx2, by2 = b.T
    inter = np.minimum(ax2, bx2)
    inter -= np.maximum(ax1, bx1)
    height = np.minimum(ay2, by2)
    height -= np.maximum(ay1, by1)
    # fmax, not maximum: a nan overlap becomes 0. An inverted box's overlap is <= 0 on
    # that axis, so it meets nothing whatever sign its "area" below takes.
    np.fmax(inter, 0.0, out=inter)
    np.fmax(height, 0.0, out=height)
    inter *= height
    size_a, size_b = a[:, 2:] - a[:, :2], b[:, 2:] - b[:, :2]  # widths and heights, as ax2 - ax1 etc.
    union = (size_a[:, 0] * size_a[:, 1])[:, None] + size_b[:, 0] * size_b[:, 1]
    union -= inter
    # Pairs with no overlap (inter 0) stay 0 over any union: the floor only avoids 0 / 0 and nan.
    np.fmax(union, _TINY, out=union)
    inter /= union
    return inter
