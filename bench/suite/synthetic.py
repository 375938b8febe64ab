"""Cheap synthetic detections for speed and memory runs (no images rendered).

Objects drift with constant velocity and bounce off the borders; with a finite
``mean_lifetime`` each one dies after a geometric number of frames and a new
identity is born elsewhere, so tracks keep appearing and vanishing. Each
identity has its own unit embedding, observed with noise, so appearance
trackers do real work.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bench.suite.framecache import CachedFrame, FrameCache


@dataclass(frozen=True)
class SyntheticConfig:
    num_objects: int = 50
    num_frames: int = 100
    width: int = 1920
    height: int = 1080
    frame_rate: float = 30.0
    mean_lifetime: float = 0.0     # frames; 0: objects live for the whole run
    miss_rate: float = 0.05        # chance a present object gets no detection
    box_noise: float = 2.0         # corner jitter std, pixels
    embedding_dim: int = 128
    embedding_noise: float = 0.3   # relative to the unit identity vector
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_objects", "num_frames", "width", "height", "embedding_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SyntheticConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("mean_lifetime", "box_noise", "embedding_noise", "frame_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyntheticConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.miss_rate < 1.0:
            raise ValueError(f"SyntheticConfig.miss_rate must lie in [0, 1), got {self.miss_rate!r}")


class SyntheticStream:
    """Frames 1..num_frames, generated lazily (a 10,000-frame run keeps nothing)."""

    def __init__(self, config: SyntheticConfig):
        self.config = config

    def _unit(self, rng: np.random.Generator, n: int) -> np.ndarray:
        v = rng.standard_normal((n, self.config.embedding_dim))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def _spawn(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        w = rng.uniform(0.02, 0.06, n) * c.width
        h = w * rng.uniform(2.0, 3.0, n)
        x = rng.uniform(0, c.width - w)
        y = rng.uniform(0, np.maximum(c.height - h, 1.0))
        state = np.column_stack([x, y, w, h])
        velocity = rng.uniform(-3.0, 3.0, (n, 2)) * (30.0 / max(c.frame_rate, 1e-6))
        return state, velocity

    def __iter__(self) -> Iterator[tuple[CachedFrame, np.ndarray]]:
        """Yield (frame, identity of each detection row)."""
        c = self.config
        rng = np.random.default_rng(c.seed)
        n = c.num_objects
        state, velocity = self._spawn(rng, n)
        ids = np.arange(1, n + 1)
        next_id = n + 1
        looks = self._unit(rng, n)
        for frame in range(1, c.num_frames + 1):
            if frame > 1:
                state[:, :2] += velocity
                for axis, size, limit in ((0, 2, c.width), (1, 3, c.height)):
                    out = (state[:, axis] < 0) | (state[:, axis] + state[:, size] > limit)
                    velocity[out, axis] *= -1
                    state[:, axis] = np.clip(state[:, axis], 0, np.maximum(limit - state[:, size], 0))
                if c.mean_lifetime > 0:
                    dead = rng.random(n) < 1.0 / c.mean_lifetime
                    k = int(dead.sum())
                    if k:
                        state[dead], velocity[dead] = self._spawn(rng, k)
                        ids[dead] = np.arange(next_id, next_id + k)
                        looks[dead] = self._unit(rng, k)
                        next_id += k
            seen = rng.random(n) >= c.miss_rate
            m = int(seen.sum())
            boxes = np.column_stack([state[seen, :2], state[seen, :2] + state[seen, 2:]])
            boxes = boxes + rng.normal(0.0, c.box_noise, boxes.shape)
            boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1.0)  # jitter never inverts a box
            scores = np.clip(rng.normal(0.75, 0.15, m), 0.05, 1.0)
            emb = looks[seen] + c.embedding_noise * self._unit(rng, m)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            yield (CachedFrame(frame, boxes.astype(np.float32), scores.astype(np.float32), np.zeros(m, np.int64),
                               emb.astype(np.float32)), ids[seen].copy())


def synthetic_cache(config: SyntheticConfig) -> FrameCache:
    """The whole stream as a FrameCache (for short runs shared with the peers)."""
    frames = [f for f, _ in SyntheticStream(config)]
    return FrameCache.from_frames(frames, config.frame_rate, {"synthetic": config.__dict__})
