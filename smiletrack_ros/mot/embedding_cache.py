"""Reuse appearance embeddings across offline runs over the same detections.

Tuning sweeps run the tracker many times over one sequence with the same
detections; the embedder is by far the slowest part on a CPU. This wrapper
stores each frame's embeddings together with the boxes they were computed
for, and answers from the store only when the boxes match exactly, so a
changed detection source can never be served stale embeddings. Each
sequence and detection source has its own file (``cache_file``), so runs over
two detection files of one sequence share a folder without overwriting.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

EmbedFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class CachedEmbedder:
    """An ``Embedder``-compatible callable backed by an .npz file.

    Set ``frame`` before each call (the pipeline's embedder interface has no
    frame argument). ``source_id`` names the weights; a file written for
    other weights is ignored and overwritten on ``save()``.
    """

    def __init__(self, embedder: EmbedFn, path: str | Path, source_id: str) -> None:
        self.embedder = embedder
        self.path = Path(path)
        self.source_id = source_id
        self.frame: int | None = None
        self.hits = 0
        self.misses = 0
        self._store: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as data:
                if str(data.get("source_id", "")) == source_id:
                    for key in data.files:
                        if key.startswith("boxes_"):
                            frame = int(key[len("boxes_"):])
                            self._store[frame] = (data[key], data[f"emb_{frame}"])

    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        if self.frame is None:
            raise RuntimeError("CachedEmbedder.frame must be set before each call")
        boxes = np.asarray(boxes, np.float32)
        stored = self._store.get(self.frame)
        if stored is not None and stored[0].shape == boxes.shape and np.array_equal(stored[0], boxes):
            self.hits += 1
            return stored[1]
        self.misses += 1
        embeddings = np.asarray(self.embedder(image_bgr, boxes), np.float32)
        self._store[self.frame] = (boxes.copy(), embeddings)
        return embeddings

    def save(self) -> None:
        """Write the store atomically (a crash mid-write leaves the old file)."""
        arrays = {"source_id": np.array(self.source_id)}
        for frame, (boxes, embeddings) in self._store.items():
            arrays[f"boxes_{frame}"] = boxes
            arrays[f"emb_{frame}"] = embeddings
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, self.path)


def weights_id(path: str | Path) -> str:
    """Identify a weights file by path, size and modification time."""
    path = Path(path).resolve()
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content (hex): names detections by what they are, not where."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_file(folder: str | Path, sequence: str, source: str) -> Path:
    """``folder/<sequence>-<16 hex digits of source>.npz``: one file per sequence and detection
    source (e.g. a det file's ``file_digest`` with the options that filter its rows)."""
    return Path(folder) / f"{sequence}-{hashlib.sha256(source.encode()).hexdigest()[:16]}.npz"
