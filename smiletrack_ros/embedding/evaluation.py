"""Appearance evaluation on a MOT sequence's ground-truth boxes, for any embedder
(anything called as ``embedder(image_bgr, boxes) -> (N, D)``), and throughput (crops/s)."""
from __future__ import annotations

import statistics
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


THROUGHPUT_BATCHES = (1, 8, 32, 128)


def random_boxes(n: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` person-shaped boxes (60..300 px high, aspect 0.3..0.5) inside a frame."""
    h = rng.uniform(60, 300, n)
    w = h * rng.uniform(0.3, 0.5, n)
    x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)


def _call_seconds(embed: EmbedFn, image: np.ndarray, boxes: np.ndarray) -> float:
    import torch

    device = getattr(embed, "device", None)
    cuda = isinstance(device, torch.device) and device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    embed(image, boxes)  # returns a host array: includes any device synchronisation
    return time.perf_counter() - t0


def crops_per_second(embed: EmbedFn, image: np.ndarray, boxes: np.ndarray, repeats: int) -> float:
    """The whole call (crops, network, copy back), median of ``repeats`` after one warm-up call."""
    embed(image, boxes)  # this batch size's own warm-up (allocator, cuDNN algorithms)
    return len(boxes) / statistics.median(_call_seconds(embed, image, boxes) for _ in range(repeats))


def throughput(embedders: Mapping[str, EmbedFn], batches: tuple[int, ...] = THROUGHPUT_BATCHES, repeats: int = 5,
               size: tuple[int, int] = (720, 1280), seed: int = 0) -> dict[str, dict[int, float]]:
    """Crops/s of every embedder at every batch size, on one random frame; the embedders
    take turns call by call (interleaved), so a load change on a shared machine hits
    all of them alike and their ratios hold."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    out: dict[str, dict[int, float]] = {name: {} for name in embedders}
    for n in batches:
        boxes = random_boxes(n, size[1], size[0], rng)
        times: dict[str, list[float]] = {name: [] for name in embedders}
        for embed in embedders.values():
            embed(image, boxes)
        for _ in range(repeats):
            for name, embed in embedders.items():
                times[name].append(_call_seconds(embed, image, boxes))
        for name in embedders:
            out[name][n] = n / statistics.median(times[name])
    return out
