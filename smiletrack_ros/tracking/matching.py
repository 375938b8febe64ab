"""Cost matrices for each association stage, and thresholded assignment.

Costs are ``1 - similarity``; ``inf`` marks a pair that may never match (gated,
other class, outside the motion gate).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def true_pairs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of a 2-D mask's True entries in row-major order, as ``mask.nonzero()``
    gives them, at about half its cost (a 1-D nonzero, then divmod): every stage runs this."""
    if mask.shape[1] == 0:
        rows, cols = mask.nonzero()
        return rows, cols
    return np.divmod(mask.ravel().nonzero()[0], mask.shape[1])


def assign(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost matching with a threshold -> (row indices, column indices).

    Leaving a row or a column unmatched costs ``max_cost / 2`` each, so any pair
    with cost <= ``max_cost`` is worth matching, and the total over matched and
    unmatched is minimised (the semantics of lapjv's ``cost_limit`` that
    ByteTrack uses). A feasible pair whose row and column have no other
    feasible pair matches outright; only the rows and columns that compete go
    to the solver, which keeps it small in crowded scenes."""
    r, c = true_pairs(cost <= max_cost)  # False for nan and inf
    if len(r) == 0:
        return r, c
    row_pairs, col_pairs = np.bincount(r, minlength=cost.shape[0]), np.bincount(c, minlength=cost.shape[1])
    # Every pair is lone (the common case): as many rows and columns have pairs as there are pairs.
    # (count_nonzero is a fraction of a max's cost: this runs for every stage of every frame)
    if np.count_nonzero(row_pairs) == len(r) and np.count_nonzero(col_pairs) == len(r):
        return r, c
    lone = (row_pairs[r] == 1) & (col_pairs[c] == 1)
    # A lone pair's row and column have no other feasible pair, so the rest compete among themselves.
    rows, cols = np.unique(r[~lone]), np.unique(c[~lone])
    n_rows, n_cols = len(rows), len(cols)
    extended = np.full((n_rows + n_cols, n_cols + n_rows), np.inf)
    sub = cost[rows[:, None], cols]
    sub[~(sub <= max_cost)] = np.inf
    extended[:n_rows, :n_cols] = sub
    extended[np.arange(n_rows), n_cols + np.arange(n_rows)] = max_cost / 2
    extended[n_rows + np.arange(n_cols), np.arange(n_cols)] = max_cost / 2
    extended[n_rows:, n_cols:] = 0.0
    ri, ci = linear_sum_assignment(extended)
    real = (ri < n_rows) & (ci < n_cols)
    return np.concatenate([r[lone], rows[ri[real]]]), np.concatenate([c[lone], cols[ci[real]]])


def fused_cost(iou: np.ndarray, appearance: np.ndarray, has_appearance: np.ndarray,
               alpha: float, gate: float | None, min_iou: float) -> np.ndarray:
    """The paper's cost: 1 - (alpha * IoU + (1 - alpha) * appearance).

    Pairs lacking an embedding on either side fall back to 1 - IoU; pairs whose
    appearance similarity is below ``gate`` are rejected however high their IoU,
    and so are pairs overlapping less than ``min_iou``."""
    # 1 - IoU, moved by (1 - alpha) * (IoU - appearance) where there is appearance
    # (float32 similarities widened first: a mixed-type ufunc call is the slower one).
    cost = iou - appearance.astype(np.float64)
    cost *= 1.0 - alpha
    partial = np.count_nonzero(has_appearance) < has_appearance.size  # (count_nonzero: cheaper than all())
    if partial:
        cost[~has_appearance] = 0.0
    cost += 1.0 - iou
    rejected = iou < min_iou
    if gate is not None:
        rejected |= (appearance < gate) & has_appearance if partial else appearance < gate
    np.putmask(cost, rejected, np.inf)  # (half the cost of copyto's where= or a masked write)
    return cost


def gated_iou_cost(iou: np.ndarray, appearance: np.ndarray, has_appearance: np.ndarray,
                   squared_mahalanobis: np.ndarray, motion_lambda: float, maha_gate: float,
                   gate: float | None) -> np.ndarray:
    """The public code's stage-1 cost: 1 - IoU, set to 1 (no match under any
    threshold below 1) where the appearance distance fused with the squared
    Mahalanobis distance exceeds ``1 - gate``, or the Mahalanobis gate fails."""
    cost = 1.0 - iou
    if gate is None:
        return cost
    motion_appearance = motion_lambda * (1.0 - appearance) + (1.0 - motion_lambda) * squared_mahalanobis
    motion_appearance[squared_mahalanobis > maha_gate] = np.inf
    cost[has_appearance & (motion_appearance > 1.0 - gate)] = 1.0
    return cost


def fuse_score(cost: np.ndarray, scores: np.ndarray, motion_only: np.ndarray) -> np.ndarray:
    """ByteTrack's score fusion, 1 - IoU * score, for pairs scored by motion only."""
    return np.where(motion_only, 1.0 - (1.0 - cost) * scores[None, :], cost)


def forbid_class_changes(cost: np.ndarray, track_classes: np.ndarray, det_classes: np.ndarray) -> np.ndarray:
    """Class-aware association: pairs of different classes never match."""
    cost[track_classes[:, None] != det_classes[None, :]] = np.inf
    return cost
