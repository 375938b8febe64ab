"""Offline gap interpolation of tracker results (SMILEtrack's post-processing).

Runs on finished result rows, never in the online node: it needs future
frames to fill a gap, so it cannot run causally.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InterpolationConfig:
    """``max_gap``: fill at most this many missing frames between two
    observations; ``min_length``: only tracks with at least this many rows are
    interpolated; ``drop_shorter_than``: remove tracks with fewer rows (0: keep all)."""

    max_gap: int = 20
    min_length: int = 5
    drop_shorter_than: int = 0

    def __post_init__(self) -> None:
        for name in ("max_gap", "min_length", "drop_shorter_than"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"InterpolationConfig.{name} must be an int >= 0, got {value!r}")


def interpolate_tracks(rows: np.ndarray, config: InterpolationConfig = InterpolationConfig()) -> np.ndarray:
    """Linearly fill short gaps in each track.

    ``rows``: (N, 7) frame, id, x1, y1, x2, y2, score. Box corners and score
    are interpolated linearly. Returns the rows sorted by frame, then id.
    """
    rows = np.asarray(rows, np.float64)
    if rows.size == 0:
        return np.zeros((0, 7))
    if rows.ndim != 2 or rows.shape[1] != 7:
        raise ValueError(f"rows must be (N, 7) frame, id, x1, y1, x2, y2, score; got {rows.shape}")
    pieces = []
    for tid in np.unique(rows[:, 1]):
        track = rows[rows[:, 1] == tid]
        track = track[np.argsort(track[:, 0], kind="stable")]
        if len(track) < config.drop_shorter_than:
            continue
        pieces.append(track)
        if len(track) < max(config.min_length, 2) or config.max_gap == 0:
            continue
        frames = track[:, 0]
        missing = np.diff(frames) - 1
        for i in np.flatnonzero((missing > 0) & (missing <= config.max_gap)):
            new_frames = np.arange(frames[i] + 1, frames[i + 1])
            t = ((new_frames - frames[i]) / (frames[i + 1] - frames[i]))[:, None]
            values = track[i, 2:] * (1.0 - t) + track[i + 1, 2:] * t
            pieces.append(np.column_stack([new_frames, np.full(len(new_frames), tid), values]))
    if not pieces:
        return np.zeros((0, 7))
    out = np.concatenate(pieces)
    return out[np.lexsort((out[:, 1], out[:, 0]))]
