"""Track states, the per-track output record, and the stacked track table."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from .bank import AppearanceStore


class TrackState(IntEnum):
    TENTATIVE = 0  # born last frame, not yet confirmed by a second detection
    TRACKED = 1
    LOST = 2  # confirmed, currently unmatched; kept until the lost timeout


@dataclass(eq=False, slots=True)
class TrackOutput:
    """One track as the tracker sees it after an ``update()``: a snapshot the
    tracker keeps no reference to (not frozen: a frozen dataclass's ``__init__``
    costs six times as much, and the tracker builds one per track per frame).

    ``box`` is the Kalman estimate (x1, y1, x2, y2): corrected on matched
    frames, predicted otherwise. ``velocity`` is the box centre's (px/s).
    ``appearance_similarity`` is the appearance score the matching stage used
    for its last match (nan when that stage used none, or an embedding was
    missing). ``detection_index`` indexes the arrays passed to this frame's
    ``update()`` (-1 when the track was not matched in this frame)."""

    track_id: int
    box: np.ndarray
    score: float
    class_id: int
    state: TrackState
    age: int
    hits: int
    frames_since_update: int
    velocity: tuple[float, float]
    appearance_similarity: float
    detection_index: int


@dataclass
class TrackTable:
    """Every live track as one row of stacked arrays (structure of arrays), so
    prediction, costs and updates are vector operations over all tracks.

    ``appearance`` holds the appearance columns (features, feature banks) of the
    same rows: ``append`` and ``keep`` move both together."""

    appearance: AppearanceStore
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, object))  # Python ints: never wrap
    mean: np.ndarray = field(default_factory=lambda: np.zeros((0, 8)))
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 8, 8)))
    state: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    class_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    age: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    since_update: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    start_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_time: np.ndarray = field(default_factory=lambda: np.zeros(0))  # nan: no timestamp
    similarity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    detection_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    # The state saved by ``begin()`` while a transaction runs.
    _saved: dict[str, object] | None = field(default=None, init=False, repr=False)

    COLUMNS = ("ids", "mean", "cov", "state", "class_id", "score", "age", "hits", "since_update",
               "start_frame", "last_frame", "last_time", "similarity", "detection_index")

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, features: np.ndarray | None, feature_valid: np.ndarray | None, **columns: np.ndarray) -> None:
        """Add rows; every column must be given, and the new rows' features (or None)."""
        for name in self.COLUMNS:
            setattr(self, name, np.concatenate([getattr(self, name), columns[name]]))
        self.appearance.append(len(columns["ids"]), features, feature_valid)

    def begin(self) -> None:
        """Start a transaction (one ``update()``): until ``commit()`` or ``rollback()``, columns
        are replaced by new arrays or copied before a write in place (``writable``), so the
        arrays saved here stay as they were. Only the columns a frame writes are copied."""
        self._saved = dict(self.__dict__)
        self.appearance.begin()

    def commit(self) -> None:
        self._saved = None
        self.appearance.commit()

    def rollback(self) -> None:
        """Back to the state ``begin()`` saved, appearance included."""
        if self._saved is not None:
            self.__dict__.update(self._saved)  # _saved included: None again
        self.appearance.rollback()

    def writable(self, *names: str) -> list[np.ndarray]:
        """Columns ``names``, safe to write in place: a column still shared with the state
        saved by ``begin()`` is copied first (once a transaction)."""
        saved, columns = self._saved, []
        for name in names:
            column: np.ndarray = getattr(self, name)
            if saved is not None and saved[name] is column:
                column = column.copy()
                setattr(self, name, column)
            columns.append(column)
        return columns

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (in that order), appearance included."""
        for name in self.COLUMNS:
            setattr(self, name, getattr(self, name)[rows])
        self.appearance.keep(rows)
