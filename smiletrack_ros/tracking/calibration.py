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


class ImpostorSimilarity:
    """A histogram of similarities between features of different people."""

    def __init__(self) -> None:
        self.counts = np.zeros(BINS)
        self.total = 0.0

    def observe(self, features: np.ndarray) -> None:
        """Add every pair among (M, D) unit features of M different people (until enough)."""
        if self.total >= ENOUGH_PAIRS:
            return
        features = features[:PEOPLE_PER_FRAME]
        m = len(features)
        if m < 2:
            return
        sims = (features @ features.T)[_UPPER[:m, :m]]
        bins = np.minimum(np.maximum(((sims + 1.0) * (BINS / 2)).astype(np.int64), 0), BINS - 1)
        self.counts = self.counts + np.bincount(bins, minlength=BINS)  # a new array: transactions keep the old
        self.total += len(bins)  # = counts.sum(), exactly: counts are whole numbers

    def quantile(self, q: float) -> float | None:
        """The similarity below which a fraction ``q`` of impostor pairs fall (the bin's
        upper edge), or None before ``MIN_PAIRS`` pairs were seen."""
        if self.total < MIN_PAIRS:
            return None
        k = int(np.searchsorted(np.cumsum(self.counts), q * self.total))
        return (min(k, BINS - 1) + 1) * 2.0 / BINS - 1.0
