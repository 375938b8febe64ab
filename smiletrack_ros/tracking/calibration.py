"""How alike two different people look to the embedder in use, learnt from the scene.

Tracks matched in the same frame are different people, so the similarities of
their features sample the embedder's "impostor" distribution on this very
camera, whatever embedder it is (a weak one gives high similarities to
everybody). Re-identification demands a similarity above a high quantile of it,
so that a wrong re-identification is as rare (e.g. 1 in 100) with any embedder.
"""
from __future__ import annotations

import numpy as np

BINS = 400  # over cosine similarity [-1, 1]: 0.005 wide
MIN_PAIRS = 100  # fewer pairs than this: no estimate yet
PEOPLE_PER_FRAME = 12  # pairs of at most this many people per frame: a sample, cheap in crowds
# Pairs after which the estimate is settled (its 99% quantile then rests on 200 pairs
# above it) and no more are sampled: minutes of video for a few people in view.
ENOUGH_PAIRS = 20_000
_UPPER = np.triu(np.ones((PEOPLE_PER_FRAME, PEOPLE_PER_FRAME), bool), 1)


def bin_index(sims: np.ndarray) -> np.ndarray:
    """The histogram bin of each similarity: [-1, 1] in BINS equal bins, the ends clipped."""
    return np.minimum(np.maximum(((sims + 1.0) * (BINS / 2)).astype(np.int64), 0), BINS - 1)


def _first_of_each_bin() -> np.ndarray:
    """The smallest float32 similarity ``bin_index`` puts in each bin but the first. It is
    monotone in the similarity, so a float32 similarity's bin is the number of these at or
    below it: one ``searchsorted`` instead of five calls, every frame. Found by bisection
    over the float32 numbers in order (their bit patterns, sign-folded), so exactly."""
    def order(x: np.ndarray) -> np.ndarray:  # float32 -> int64, in the same order
        bits = x.view(np.uint32).astype(np.int64)
        return np.where(bits >= 2 ** 31, 2 ** 32 - 1 - bits, bits + 2 ** 31)

    def number(key: np.ndarray) -> np.ndarray:  # the inverse of order
        return np.where(key >= 2 ** 31, key - 2 ** 31, 2 ** 32 - 1 - key).astype(np.uint32).view(np.float32)

    k = np.arange(1, BINS)
    lo, hi = (np.full(len(k), order(np.array([v], np.float32))[0]) for v in (-1.5, 1.5))  # bins 0 and BINS - 1
    while (hi - lo > 1).any():
        mid = (lo + hi) // 2
        reached = bin_index(number(mid)) >= k
        lo, hi = np.where(reached, lo, mid), np.where(reached, mid, hi)
    return number(hi)


_FIRST_OF_BIN = _first_of_each_bin()


class ImpostorSimilarity:
    """A histogram of similarities between features of different people. Its counts are pairs,
    or with ``observe``'s weights pairs per frame of a reference rate (then ``MIN_PAIRS`` and
    ``ENOUGH_PAIRS`` are reached after the same seconds at any frame rate)."""

    def __init__(self) -> None:
        self.counts = np.zeros(BINS)
        self.total = 0.0

    def observe(self, features: np.ndarray, weight: float = 1.0) -> None:
        """Add every pair among (M, D) unit features of M different people (until enough), each
        counted ``weight`` times (the frames of a reference rate that this frame stands for)."""
        if self.total >= ENOUGH_PAIRS:
            return
        features = features[:PEOPLE_PER_FRAME]
        m = len(features)
        if m < 2:
            return
        sims = (features @ features.T)[_UPPER[:m, :m]]
        if sims.dtype == np.float32:  # (the tracker's features) the same bins, in one call
            bins = _FIRST_OF_BIN.searchsorted(sims, side="right")
        else:
            bins = bin_index(sims)
        counts = np.bincount(bins, minlength=BINS)
        self.counts = self.counts + (counts if weight == 1.0 else weight * counts)  # new: transactions keep the old
        self.total += weight * len(bins)  # = counts.sum() (exactly for whole-number weights)

    def quantile(self, q: float) -> float | None:
        """The similarity below which a fraction ``q`` of impostor pairs fall (the bin's
        upper edge), or None before ``MIN_PAIRS`` pairs were seen."""
        if self.total < MIN_PAIRS:
            return None
        k = int(np.searchsorted(np.cumsum(self.counts), q * self.total))
        return (min(k, BINS - 1) + 1) * 2.0 / BINS - 1.0
