"""How the model benchmarks time the detector and the embedder, shared by bench/run's
speed suite and the stand-alone bench/bench_embedder.py and bench/bench_detector.py."""
from __future__ import annotations

import statistics
import time

import numpy as np

from smiletrack_ros.detection.prb.variants import VARIANTS, variant_spec

# The PRB variants the detector benchmarks time, with their input sizes.
# every named PRB variant at its native input size
PRB_CASES = tuple((name, int(variant_spec(name)["input_size"])) for name in VARIANTS)
BATCHES = (1, 8, 32, 128)


def random_boxes(n: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    h = rng.uniform(60, 300, n)
    w = h * rng.uniform(0.3, 0.5, n)
    x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)


def crops_per_second(embedder, image: np.ndarray, boxes: np.ndarray, repeats: int) -> float:
    """Median crops per second of one ``Embedder`` call on ``boxes``."""
    import torch

    embedder(image, boxes)  # this batch size's own warm-up (allocator, cuDNN algorithms)
    times = []
    for _ in range(repeats):
        if embedder.device.type == "cuda":
            torch.cuda.synchronize(embedder.device)
        t0 = time.perf_counter()
        embedder(image, boxes)  # returns a host array: includes the device synchronisation
        times.append(time.perf_counter() - t0)
    return len(boxes) / statistics.median(times)
