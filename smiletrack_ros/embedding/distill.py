"""Distilling a strong re-ID model (the teacher: any backend) into the SLM (the student).

The teacher embeds every box once, on the full frame, and the result is cached in the run
directory. The student sees augmented crops (jitter, flip, colour, erasing) and learns
the teacher's view of the un-augmented ones, through one of:
- ``similarity``: the batch's cosine-similarity matrix regressed onto the teacher's (MSE
  over off-diagonal pairs): the relational structure, whatever the teacher's dimension;
- ``kl``: each crop's softmax distribution over the batch's other crops (temperature
  ``tau``) matched to the teacher's (relational KD; ranks matter, not absolute values);
- ``feature``: the student embedding mapped by a training-only linear head onto the
  teacher's embedding (cosine loss).
Batches come from one sequence at a time (people of the same scene, next to each other
and occluding each other: the hard negatives tracking meets); crops without identities
(detections) are drawn in windows of nearby frames.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import EmbedderConfig
from .errors import EmbedderConfigError, WeightsError

DISTILL_LOSSES = ("similarity", "kl", "feature")


def teacher_config(spec: str, device: str = "cpu") -> EmbedderConfig:
    """``BACKEND:WEIGHTS`` (e.g. ``openvino:person-reidentification-retail-0288.xml``) -> config."""
    if ":" not in str(spec):
        raise EmbedderConfigError("teacher", f"expected BACKEND:WEIGHTS, got {spec!r}")
    try:
        config = EmbedderConfig.from_spec(spec, device=device)
    except EmbedderConfigError as exc:
        raise EmbedderConfigError("teacher", f"{spec!r}: {exc}") from exc
    if config.weights is None:
        raise EmbedderConfigError("teacher", "an untrained network teaches nothing")
    return config


def cache_key(teacher: str, parts: Sequence[object]) -> str:
    """What the cached teacher embeddings depend on: the teacher file's bytes and name,
    the data and the crop settings."""
    _, _, weights = teacher.partition(":")
    digest = hashlib.sha256(teacher.encode())
    path = Path(weights)
    if path.is_file():
        digest.update(path.read_bytes())
    digest.update(json.dumps([str(p) for p in parts]).encode())
    return digest.hexdigest()[:16]


def load_cached(path: Path, key: str) -> np.ndarray | None:
    """The cached teacher embeddings when ``path`` holds them for ``key``, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            return data["embeddings"].astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsError(f"{path}: unreadable teacher cache ({exc}); delete it to recompute") from exc


def save_cached(path: Path, key: str, embeddings: np.ndarray) -> None:
    np.savez(path, key=np.array(key), embeddings=embeddings.astype(np.float32))


def similarity_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE between the batch's student and teacher cosine-similarity matrices, off the diagonal."""
    off = ~torch.eye(len(student), dtype=torch.bool, device=student.device)
    return F.mse_loss((student @ student.T)[off], (teacher @ teacher.T)[off])


def kl_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean over crops of KL(teacher || student) of the softmax over the batch's other crops."""
    eye = torch.eye(len(student), dtype=torch.bool, device=student.device)
    log_s = F.log_softmax((student @ student.T / tau).masked_fill(eye, -1e4), dim=1)
    p_t = F.softmax((teacher @ teacher.T / tau).masked_fill(eye, -1e4), dim=1)
    return F.kl_div(log_s, p_t, reduction="batchmean")


class FeatureHead(nn.Module):
    """Training-only map of student embeddings onto the teacher's space (never exported)."""

    def __init__(self, student_dim: int, teacher_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(student_dim, teacher_dim)

    def loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return (1 - F.cosine_similarity(self.proj(student), teacher, dim=1)).mean()


def distill_loss(kind: str, student: torch.Tensor, teacher: torch.Tensor, tau: float,
                 head: FeatureHead | None) -> torch.Tensor:
    if kind == "similarity":
        return similarity_loss(student, teacher)
    if kind == "kl":
        return kl_loss(student, teacher, tau)
    if head is None:
        raise EmbedderConfigError("distill", "the feature loss needs its projection head")
    return head.loss(student, teacher)


def window_batches(sequences: np.ndarray, frames: np.ndarray, size: int, window: int, n_batches: int,
                   rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index batches of crops without identities: one sequence, frames within ``window`` of
    a random start (the same people again, and their neighbours), ``size`` crops at most."""
    groups = [np.flatnonzero(sequences == s) for s in np.unique(sequences)]
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        raise ValueError("window batches need a sequence with at least 2 crops")
    for _ in range(n_batches):
        members = groups[int(rng.integers(len(groups)))]
        start = int(rng.choice(frames[members]))
        near = members[(frames[members] >= start) & (frames[members] < start + window)]
        if len(near) < 2:
            near = members
        yield rng.choice(near, size=min(size, len(near)), replace=False)
