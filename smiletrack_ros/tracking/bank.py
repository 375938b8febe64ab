"""Per-track appearance: latest feature, EMA feature, and a capped feature bank.

Stored as stacked arrays (row i = track i of the tracker's table) so that
similarities for all tracks are a few matrix products. The bank of each track
is a ring buffer of at most ``bank_size`` L2-normalised features; its
similarity to a detection is the MAX over the entries present (the paper's
multi-template similarity). The embedding dimension is fixed by the first
embeddings seen.

Banks are the bulk of the memory (tracks x bank_size x D), so they live in a
pool that grows by doubling: births and deaths move pool row numbers, never
the banks themselves.
"""
from __future__ import annotations

import numpy as np

from .matching import true_pairs


class AppearanceStore:
    """``ema_momentum`` None: no EMA feature is kept (the presets that match on
    the latest feature would only pay for it)."""

    ema: np.ndarray | None

    def __init__(self, bank_size: int, ema_momentum: float | None) -> None:
        self.bank_size = bank_size
        self.ema_momentum = ema_momentum
        self.dim: int | None = None
        # While a transaction runs: the arrays it started from, and the pool writes held back
        # until ``commit()``.
        self._saved: dict[str, object] | None = None
        self._pending: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]] | None = None
        self._alloc(0, 1)

    def begin(self) -> None:
        """Start a transaction (``TrackTable.begin``): from now on row columns are replaced or
        copied before a write (``_writable``), never written in place, and pool writes wait
        for ``commit()``; new tracks take free pool rows, or a grown copy of the pool. So the
        saved arrays stay as they were, and ``rollback()`` puts them back."""
        self._saved = dict(self.__dict__)
        self._pending = []

    def commit(self) -> None:
        """End the transaction: apply the held-back pool writes."""
        pending, self._pending, self._saved = self._pending, None, None
        for homes, slots, features in pending or ():
            if slots is None:
                self._pool[homes] = features[:, None, :]
            else:
                self._pool[homes, slots] = features

    def rollback(self) -> None:
        """End the transaction: back to the arrays saved by ``begin()``."""
        saved = self._saved
        if saved is not None:
            self.__dict__.update(saved)  # _saved and _pending included: None again

    def _writable(self, name: str) -> np.ndarray:
        """Column ``name``, safe to write in place: copied first if a transaction saved it."""
        column: np.ndarray = getattr(self, name)
        if self._saved is not None and self._saved[name] is column:
            column = column.copy()
            setattr(self, name, column)
        return column

    def _write(self, homes: np.ndarray, slots: np.ndarray | None, features: np.ndarray) -> None:
        """Write whole banks (``slots`` None) or one slot per bank, now or at ``commit()``."""
        if self._pending is not None:
            self._pending.append((homes, slots, features))
        elif slots is None:
            self._pool[homes] = features[:, None, :]
        else:
            self._pool[homes, slots] = features

    def set_ema_momentum(self, momentum: float | None) -> None:
        """Start (from each track's latest feature), change or stop (and drop) the EMA."""
        if momentum is None:
            self.ema = None
        elif self.ema_momentum is None:
            self.ema = self.last.copy()
        self.ema_momentum = momentum

    def _alloc(self, n: int, dim: int) -> None:
        self.last = np.zeros((n, dim), np.float32)
        # None while no EMA is kept (most presets): nothing to append, keep or copy.
        self.ema = None if self.ema_momentum is None else np.zeros((n, dim), np.float32)
        self.has = np.zeros(n, bool)
        # Features recorded since the track's bank was (re)filled: the ring's next slot is
        # ``recorded % bank_size``, and ``count`` of them are kept. Slots [0, count) hold
        # them; until the ring wraps, slots from count on hold copies of slot 0 (the first).
        self.recorded = np.zeros(n, np.int64)
        self._pool = np.zeros((n, self.bank_size, dim), np.float32)
        self._home = np.arange(n)  # pool row of each track
        self._free = np.zeros(0, np.intp)  # pool rows no track uses

    def __len__(self) -> int:
        return len(self.has)

    @property
    def count(self) -> np.ndarray:
        """Features each bank holds (<= bank_size)."""
        return np.minimum(self.recorded, self.bank_size)

    @property
    def bank(self) -> np.ndarray:
        """Every track's bank in row order (a copy: for inspection, not the hot path)."""
        return self._pool[self._home]

    def adopt_dim(self, dim: int) -> None:
        """Fix the embedding width on first use (no track holds a feature yet)."""
        if self.dim is None:
            self.dim = dim
            self._alloc(len(self), dim)

    def append(self, n: int, features: np.ndarray | None, valid: np.ndarray | None) -> None:
        """Add rows for ``n`` new tracks, seeded with their (valid) features."""
        old = len(self)
        dim = self.last.shape[1]
        self.last = np.concatenate([self.last, np.zeros((n, dim), np.float32)])
        if self.ema is not None:
            self.ema = np.concatenate([self.ema, np.zeros((n, dim), np.float32)])
        self.has = np.concatenate([self.has, np.zeros(n, bool)])
        self.recorded = np.concatenate([self.recorded, np.zeros(n, np.int64)])
        if len(self._free) < n:
            size = len(self._pool)
            grown = max(2 * size, size + n - len(self._free))
            self._pool = np.concatenate([self._pool, np.zeros((grown - size,) + self._pool.shape[1:], np.float32)])
            self._free = np.concatenate([self._free, np.arange(size, grown)])
        self._home = np.concatenate([self._home, self._free[:n]])
        self._free = self._free[n:]
        if features is not None:
            assert valid is not None, "features come with their validity"
            self.update(np.arange(old, old + n)[valid], features[valid])

    def resize(self, bank_size: int) -> None:
        """Change the bank capacity, keeping each track's most recent features."""
        if bank_size == self.bank_size:
            return
        kept = np.minimum(self.count, bank_size)
        next_slot = self.recorded % self.bank_size
        # Slot j takes the j-th oldest of the kept features; slots past them copy slot 0.
        order = np.arange(bank_size)[None, :]
        source = (next_slot[:, None] - kept[:, None] + np.where(order < kept[:, None], order, 0)) % self.bank_size
        self._pool = np.take_along_axis(self.bank, source[:, :, None], axis=1)
        self._home = np.arange(len(self))
        self._free = np.zeros(0, np.intp)
        self.recorded = kept  # next slot kept % bank_size, count kept
        self.bank_size = bank_size

    def keep(self, rows: np.ndarray) -> None:
        self.last, self.has, self.recorded = self.last[rows], self.has[rows], self.recorded[rows]
        if self.ema is not None:
            self.ema = self.ema[rows]
        kept = np.zeros(len(self._pool), bool)
        kept[self._home[rows]] = True
        kept[self._free] = True
        self._free = np.concatenate([self._free, np.flatnonzero(~kept)])
        self._home = self._home[rows]

    def update(self, rows: np.ndarray, features: np.ndarray) -> None:
        """Record (valid) features of tracks ``rows``, one each.

        A track's first feature fills every bank slot: copies do not change a
        maximum, so similarities need no mask for slots not yet written."""
        if len(rows) == 0:
            return
        has, recorded = self._writable("has"), self._writable("recorded")
        done = recorded[rows]
        fresh = done == 0  # = ~has[rows]: a bank holds a feature once one was recorded
        homes = self._home[rows]
        if np.count_nonzero(fresh):  # (cheaper than any())
            self._write(homes[fresh], None, features[fresh])
        if self.ema_momentum is not None:
            self._blend_ema(rows, features, fresh)
        self._writable("last")[rows] = features
        has[rows] = True
        self._write(homes, done % self.bank_size, features)
        recorded[rows] = done + 1

    def _blend_ema(self, rows: np.ndarray, features: np.ndarray, fresh: np.ndarray) -> None:
        assert self.ema_momentum is not None and self.ema is not None, "called only when an EMA is kept"
        blended = self.ema[rows]
        blended *= self.ema_momentum
        blended += (1.0 - self.ema_momentum) * features
        blended /= np.maximum(np.sqrt(np.einsum("ij,ij->i", blended, blended)), 1e-12)[:, None]
        blended[fresh] = features[fresh]
        self._writable("ema")[rows] = blended

    def similarity(self, rows: np.ndarray, features: np.ndarray, valid: np.ndarray,
                   which: str) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarity of tracks ``rows`` ("last" or "ema" feature) to
        detections -> (similarity (R, N), pair has appearance (R, N))."""
        if which == "last":
            track_feats = self.last
        elif self.ema is not None:
            track_feats = self.ema
        else:
            raise ValueError("this store keeps no EMA feature (ema_momentum is None)")
        has = self.has
        if len(rows) < len(has):  # (rows ascend: as many as there are tracks are all of them, no gather)
            track_feats, has = track_feats.take(rows, axis=0), has[rows]
        return track_feats @ features.T, has[:, None] & valid[None, :]

    def bank_similarity(self, rows: np.ndarray, features: np.ndarray, valid: np.ndarray,
                        candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Max cosine similarity over each track's bank, searched for the
        ``candidates`` pairs (R, N) only (others get 0) -> (similarity, pair has
        appearance). Searching candidate pairs only keeps this linear in the
        pairs rather than tracks x detections x bank."""
        has = self.has[rows][:, None] & valid[None, :]
        r, n = true_pairs(candidates & has)
        sims = np.zeros(has.shape, np.float32)
        if len(r):
            tracks = rows[r]
            # Slots past a bank's count repeat slot 0: young banks are searched only where they are filled.
            filled = min(int(self.recorded[tracks].max()), self.bank_size)
            # Pairs come track by track (``r`` ascending): the k-th pair of its track.
            kth = np.arange(len(r)) - r.searchsorted(r)
            sims[r, n] = self._best_in_banks(self._home[tracks], kth, features.take(n, axis=0), filled)
        return sims, has

    def _best_in_banks(self, homes: np.ndarray, kth: np.ndarray, features: np.ndarray, filled: int) -> np.ndarray:
        """Per pair p (the ``kth[p]``-th pair of pool row ``homes[p]``): the max over the
        bank's first ``filled`` slots of their dot products with ``features[p]``, one gemv
        per pair. The banks are read where they lie, each once, by one batch of gemvs over
        every pool row the pairs span, times the most pairs a row has (a row's further
        gemvs find its bank in cache), unless that batch would be much larger than the
        pairs: then the pairs' banks are copied out. A pair's arithmetic is the same gemv
        either way, so are its results, bit for bit."""
        first, per_row = int(homes.min()), int(kth.max()) + 1
        span = int(homes.max()) + 1 - first
        # Measured here (cache-cold, as in a frame): a gemv in a row's batch costs ~1/4 of the
        # first, which reads the bank, and copying a bank out ~2.5 times that read.
        if span * (per_row + 3) <= 10 * len(homes):
            batch = np.zeros((span, per_row, features.shape[1], 1), np.float32)
            at = homes - first
            batch[at, kth, :, 0] = features
            products = np.matmul(self._pool[first:first + span, None, :filled], batch)
            return products[at, kth, :, 0].max(axis=1)
        return np.matmul(self._pool[homes, :filled], features[:, :, None])[:, :, 0].max(axis=1)
