"""Checking and cleaning one frame of tracker input.

Shape errors (arrays that disagree on N, wrong widths, a timestamp going
backwards) raise ``InputError`` before the tracker changes any state. Bad
*rows* are not errors: a box or score that is not finite, a box with zero or
negative size, coordinates beyond ``MAX_COORDINATE``, or a class id that is not
a finite number within ``MAX_CLASS_ID`` is dropped and counted
in ``FrameInput.rejected``; scores are clipped to [0, 1]; an embedding row that
is not finite, has zero norm or whose norm overflows its dtype only means "no
appearance" for that detection.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

# Larger coordinates cannot come from a camera and would overflow areas/covariances.
MAX_COORDINATE = 1e6
# Class ids must fit an int64 exactly (and so also hold no nan/inf).
MAX_CLASS_ID = 2 ** 53
# Widest embedding accepted: feature banks hold tracks x bank_size x this many floats.
MAX_EMBEDDING_DIM = 4096


class InputError(ValueError):
    """The arrays given to ``SmileTracker.update`` cannot be used as they are."""


@dataclass(slots=True)
class FrameInput:
    """The usable detections of one frame; ``index`` maps rows back to the caller's arrays.
    (Not frozen: a frozen dataclass's ``__init__`` costs five times as much, once a frame.)"""

    boxes: np.ndarray  # (N, 4) float64 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float64 in [0, 1]
    class_ids: np.ndarray  # (N,) int64
    features: np.ndarray | None  # (N, D) float32, unit rows (zeros where invalid)
    feature_valid: np.ndarray  # (N,) bool
    index: np.ndarray  # (N,) int64
    rejected: int
    timestamp: float | None


def _as_array(name: str, value: object, dtype: type) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: cannot be read as a numeric array ({exc})") from exc


def read_frame(boxes: npt.ArrayLike, scores: npt.ArrayLike, class_ids: npt.ArrayLike | None = None,
               embeddings: npt.ArrayLike | None = None,
               timestamp: float | None = None, previous_timestamp: float | None = None,
               feature_dim: int | None = None) -> FrameInput:
    boxes = _as_array("boxes", boxes, np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(f"boxes: expected shape (N, 4), got {boxes.shape}")
    n = len(boxes)
    scores = _as_array("scores", scores, np.float64)
    if scores.ndim != 1:
        raise InputError(f"scores: expected shape (N,), got {scores.shape}")
    if len(scores) != n:
        raise InputError(f"scores has {len(scores)} entries but boxes has {n} rows")
    classes = None
    if class_ids is not None:
        classes = _as_array("class_ids", class_ids, np.float64)
        if classes.ndim != 1 or len(classes) != n:
            raise InputError(f"class_ids: expected shape ({n},) to match boxes, got {classes.shape}")
    features = None
    if embeddings is not None:
        # float32 (what embedders give) is read as it is; anything else as float64.
        features = _as_array("embeddings", embeddings,
                             np.float32 if getattr(embeddings, "dtype", None) == np.float32 else np.float64)
        if features.ndim != 2 or len(features) != n or features.shape[1] < 1:
            raise InputError(f"embeddings: expected shape ({n}, D) to match boxes, got {features.shape}")
        if features.shape[1] > MAX_EMBEDDING_DIM:
            raise InputError(f"embeddings: {features.shape[1]} columns, more than the {MAX_EMBEDDING_DIM} accepted")
        if feature_dim is not None and features.shape[1] != feature_dim:
            raise InputError(f"embeddings have {features.shape[1]} columns but this tracker's "
                             f"tracks use {feature_dim}; call reset() to change models")
    if timestamp is not None:
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float, np.floating, np.integer)) \
                or not math.isfinite(timestamp):
            raise InputError(f"timestamp: must be a finite number of seconds, got {timestamp!r}")
        timestamp = float(timestamp)
        if previous_timestamp is not None and timestamp < previous_timestamp:
            raise InputError(f"timestamp went backwards ({timestamp} < {previous_timestamp}); "
                             "call reset() when a stream restarts")

    # Comparisons with nan are False, so these also reject non-finite rows.
    ok = (boxes[:, 2:] > boxes[:, :2]).all(axis=1) & (np.abs(boxes) <= MAX_COORDINATE).all(axis=1) & np.isfinite(scores)
    if classes is not None:
        ok &= np.abs(classes) <= MAX_CLASS_ID
    index = ok.nonzero()[0]
    if len(index) < n:
        boxes, scores = boxes[index], scores[index]
        classes = None if classes is None else classes[index]
        features = None if features is None else features[index]
    if features is not None:
        features, feature_valid = _unit_rows(features)
    else:
        feature_valid = np.zeros(len(index), bool)
    return FrameInput(boxes=cast(np.ndarray, boxes), scores=np.minimum(np.maximum(scores, 0.0), 1.0),
                      class_ids=np.zeros(len(index), np.int64) if classes is None else classes.astype(np.int64),
                      features=features, feature_valid=feature_valid, index=index, rejected=int(n - len(index)),
                      timestamp=timestamp)


def _unit_rows(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised float32 rows, and which rows were usable (finite, non-zero);
    unusable rows come back as zeros."""
    # A nan or inf anywhere in a row (or an overflowing one) makes its norm non-finite
    # (einsum and sqrt raise no floating-point warnings for them).
    norms = np.sqrt(np.einsum("ij,ij->i", features, features))
    valid = np.isfinite(norms) & (norms > 0)
    if np.count_nonzero(valid) == len(valid):  # (cheaper than all())
        return (features / norms[:, None]).astype(np.float32, copy=False), valid
    with np.errstate(invalid="ignore", over="ignore"):
        unit = (features / np.where(valid, norms, 1.0)[:, None]).astype(np.float32)
    unit[~valid] = 0.0
    return unit, valid
