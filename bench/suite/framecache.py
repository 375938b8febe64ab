"""Per-frame detections (and embeddings) stored once, replayed to every tracker.

The same file feeds our presets in-process and the peers in their own venv, so
this module needs numpy only. Rows are ragged per frame: ``counts[k]`` rows
belong to ``frames[k]``, in order.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CachedFrame:
    frame: int                     # 1-based frame number
    boxes: np.ndarray              # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray             # (N,) float32
    class_ids: np.ndarray          # (N,) int64
    embeddings: np.ndarray | None  # (N, D) float32, L2-normalised, or None


@dataclass(frozen=True)
class FrameCache:
    """A whole sequence; ``meta`` says where the rows came from (detector, embedder)."""

    frames: np.ndarray      # (F,) int64, increasing
    counts: np.ndarray      # (F,) int64
    boxes: np.ndarray       # (R, 4) float32
    scores: np.ndarray      # (R,) float32
    class_ids: np.ndarray   # (R,) int64
    embeddings: np.ndarray  # (R, D) float32; (0, 0) when there are none
    frame_rate: float
    meta: dict

    @property
    def has_embeddings(self) -> bool:
        return self.embeddings.size > 0

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[CachedFrame]:
        offsets = np.r_[0, np.cumsum(self.counts)]
        for k, frame in enumerate(self.frames):
            a, b = int(offsets[k]), int(offsets[k + 1])
            yield CachedFrame(int(frame), self.boxes[a:b], self.scores[a:b], self.class_ids[a:b],
                              self.embeddings[a:b] if self.has_embeddings else None)

    def mean_count(self) -> float:
        return float(self.counts.mean()) if len(self.counts) else 0.0

    @classmethod
    def from_frames(cls, frames: list[CachedFrame], frame_rate: float, meta: dict) -> FrameCache:
        # Frames without boxes may carry no embedding array; every frame with boxes must.
        given = [f.embeddings for f in frames if f.embeddings is not None]
        with_emb = bool(given) and all(f.embeddings is not None or len(f.boxes) == 0 for f in frames)
        dim = given[0].shape[1] if with_emb else 0

        def cat(xs, shape, dtype):
            return np.concatenate(xs).astype(dtype) if xs else np.zeros(shape, dtype)

        return cls(
            frames=np.array([f.frame for f in frames], np.int64),
            counts=np.array([len(f.boxes) for f in frames], np.int64),
            boxes=cat([f.boxes.reshape(-1, 4) for f in frames], (0, 4), np.float32),
            scores=cat([f.scores for f in frames], (0,), np.float32),
            class_ids=cat([f.class_ids for f in frames], (0,), np.int64),
            embeddings=(cat([e.reshape(-1, dim) for e in given], (0, dim), np.float32)
                        if with_emb else np.zeros((0, 0), np.float32)),
            frame_rate=float(frame_rate), meta=dict(meta))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, frames=self.frames, counts=self.counts, boxes=self.boxes, scores=self.scores,
                 class_ids=self.class_ids, embeddings=self.embeddings, frame_rate=np.float64(self.frame_rate),
                 meta=np.array(json.dumps(self.meta, sort_keys=True)))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FrameCache:
        with np.load(path, allow_pickle=False) as z:
            return cls(frames=z["frames"], counts=z["counts"], boxes=z["boxes"], scores=z["scores"],
                       class_ids=z["class_ids"], embeddings=z["embeddings"], frame_rate=float(z["frame_rate"]),
                       meta=json.loads(str(z["meta"])))


def load_if_matching(path: str | Path, meta: dict) -> FrameCache | None:
    """The cache at ``path`` when it was made with exactly ``meta``, else None (stale or absent)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        cache = FrameCache.load(path)
    except (OSError, ValueError, KeyError):
        return None
    return cache if cache.meta == json.loads(json.dumps(meta, sort_keys=True)) else None
