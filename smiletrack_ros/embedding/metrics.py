"""How well embeddings separate identities: pair AUC and rank-1 retrieval.

Both compare crops of the same sequence only (``groups``): crops of different
sequences are trivially different people and would inflate the scores.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class AppearanceScores:
    pair_auc: float
    rank1: float
    positives: int
    negatives: int
    queries: int

    def as_dict(self) -> dict[str, float | int]:
        return {"pair_auc": round(self.pair_auc, 4), "rank1": round(self.rank1, 4), "positive_pairs": self.positives,
                "negative_pairs": self.negatives, "rank1_queries": self.queries}


def cosine_matrix(embeddings: np.ndarray) -> np.ndarray:
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return e @ e.T


def score_embeddings(embeddings: np.ndarray, ids: np.ndarray, frames: np.ndarray,
                     groups: np.ndarray | None = None, min_frame_gap: int = 10) -> AppearanceScores:
    """Pair AUC over all same-group pairs (same id = positive), and rank-1: for each
    crop, is the most similar crop of its group at least ``min_frame_gap`` frames
    away the same identity? (The gap keeps near-duplicate neighbours out.) Queries
    without a same-identity candidate that far away are skipped."""
    n = len(ids)
    if len(embeddings) != n or len(frames) != n:
        raise ValueError(f"embeddings ({len(embeddings)}), ids ({n}) and frames ({len(frames)}) differ in length")
    groups = np.zeros(n, np.int64) if groups is None else np.asarray(groups)
    sim = cosine_matrix(embeddings)
    same_group = groups[:, None] == groups[None, :]
    same_id = ids[:, None] == ids[None, :]
    upper = np.triu(np.ones((n, n), bool), k=1) & same_group
    scores, labels = sim[upper], same_id[upper]
    pos, neg = int(labels.sum()), int((~labels).sum())
    auc = float("nan")
    if pos and neg:
        ranks = rankdata(scores)
        auc = float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))
    far = same_group & (np.abs(frames[:, None] - frames[None, :]) >= min_frame_gap)
    valid = (far & same_id).any(axis=1)
    masked = np.where(far, sim, -np.inf)
    best = masked.argmax(axis=1)
    hits = same_id[np.arange(n), best] & valid
    queries = int(valid.sum())
    rank1 = float(hits.sum() / queries) if queries else float("nan")
    return AppearanceScores(auc, rank1, pos, neg, queries)
