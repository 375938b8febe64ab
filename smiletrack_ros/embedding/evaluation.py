"""Appearance evaluation on a MOT sequence's ground-truth boxes, for any embedder
(anything called as ``embedder(image_bgr, boxes) -> (N, D)``)."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import AppearanceScores, score_embeddings

EmbedFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EvaluationResult:
    name: str
    scores: AppearanceScores
    dim: int
    crops: int
    ms_per_frame: float

    def as_dict(self) -> dict:
        return {"name": self.name, "dim": self.dim, "crops": self.crops,
                "ms_per_frame": round(self.ms_per_frame, 1), **self.scores.as_dict()}


def evaluate_sequence(seq_dir: str | Path, embedders: Mapping[str, EmbedFn], min_height: float = 0.0,
                      min_frame_gap: int = 10, max_frames: int | None = None) -> list[EvaluationResult]:
    """Embed every pedestrian gt box of the sequence with each embedder and score
    same-vs-different identity (pair AUC, rank-1 with a frame gap)."""
    from smiletrack_ros.mot.io import iter_frames, read_ground_truth

    seq_dir = Path(seq_dir)
    gt = read_ground_truth(seq_dir / "gt" / "gt.txt").pedestrians()
    gt = gt.select((gt.boxes[:, 3] - gt.boxes[:, 1]) >= min_height)
    features: dict[str, list[np.ndarray]] = {name: [] for name in embedders}
    seconds = dict.fromkeys(embedders, 0.0)
    ids, frames, n_frames = [], [], 0
    stop = None if max_frames is None else max_frames + 1
    for k, image in iter_frames(seq_dir, stop=stop):
        here = gt.frame(k)
        if not len(here):
            continue
        n_frames += 1
        ids.append(here.ids)
        frames.append(here.frames)
        for name, embed in embedders.items():
            t0 = time.perf_counter()
            features[name].append(np.asarray(embed(image, here.boxes)))
            seconds[name] += time.perf_counter() - t0
    if not ids:
        raise ValueError(f"{seq_dir}: no ground-truth boxes to evaluate")
    all_ids, all_frames = np.concatenate(ids), np.concatenate(frames)
    results = []
    for name in embedders:
        emb = np.concatenate(features[name])
        results.append(EvaluationResult(name, score_embeddings(emb, all_ids, all_frames, min_frame_gap=min_frame_gap),
                                        emb.shape[1], len(emb), 1000 * seconds[name] / n_frames))
    return results
