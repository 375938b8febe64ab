"""Time SmileTracker.update() on synthetic moving boxes with 128-d embeddings.

Prints wall-clock mean and p99 and CPU-time mean and median, milliseconds per update,
for each preset and scene size (CPU time is less disturbed by other processes on a busy
machine). Each scene is replayed ``--repeats`` times from scratch and the replay with the
lowest CPU mean is reported: a shared virtual machine's speed drifts by a third between
minutes, and the fastest replay is the one least disturbed. The last column averages each
frame's fastest CPU time over the replays. Run with OMP_NUM_THREADS=1 for single-core figures.
Usage: python -m bench.bench_tracker_core [--frames 200] [--sizes 10 50 200 500] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from smiletrack_ros.tracking import PRESETS, SmileTracker, TrackerConfig


def synthetic_scene(n_objects: int, n_frames: int, dim: int, seed: int):
    """Per frame: boxes, scores, embeddings of ``n_objects`` boxes drifting at
    constant velocity (wrapping in a 4000x4000 field), with jitter, a score
    spread across both bands and noisy identity embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 4000, (n_objects, 2))
    velocity = rng.normal(0, 3, (n_objects, 2))
    sizes = rng.uniform(30, 120, (n_objects, 1)) * np.array([[0.4, 1.0]])
    identity = rng.normal(size=(n_objects, dim))
    identity /= np.linalg.norm(identity, axis=1, keepdims=True)
    base_scores = rng.uniform(0.8, 0.95, n_objects)
    for f in range(n_frames):
        c = (centres + f * velocity) % 4000 + rng.normal(0, 1.0, (n_objects, 2))
        boxes = np.concatenate([c - sizes / 2, c + sizes / 2], axis=1)
        scores = np.clip(base_scores + rng.normal(0, 0.05, n_objects), 0, 1)
        if f == 0:  # one evenly scored frame so that every preset starts a track per object
            scores[:] = 0.9
        emb = identity + rng.normal(0, 0.02, identity.shape)
        yield boxes, scores, emb / np.linalg.norm(emb, axis=1, keepdims=True)


def bench(preset: str, n: int, frames: int, dim: int, repeats: int) -> tuple[float, ...]:
    """Of the least disturbed replay: wall-clock mean and p99, CPU-time mean and
    median (ms per update), live tracks at its end; and, over all replays, the
    mean of each frame's fastest CPU time (the undisturbed cost)."""
    scene = list(synthetic_scene(n, frames, dim, seed=n))
    best, cpu_runs = None, []
    for _ in range(repeats):
        tracker = SmileTracker(TrackerConfig.from_preset(preset), frame_rate=30.0)
        wall, cpu = [], []
        for boxes, scores, emb in scene:
            start, start_cpu = time.perf_counter(), time.process_time()
            tracker.update(boxes, scores, embeddings=emb)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        steady = np.array(wall[30:]) * 1e3  # skip warm-up (births, allocation)
        steady_cpu = np.array(cpu[30:]) * 1e3
        cpu_runs.append(steady_cpu)
        result = (float(steady.mean()), float(np.percentile(steady, 99)), float(steady_cpu.mean()),
                  float(np.median(steady_cpu)), len(tracker.live_tracks()))
        if best is None or result[2] < best[2]:
            best = result
    return *best, float(np.min(cpu_runs, axis=0).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200, 500])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--repeats", type=int, default=3, help="replays per scene; the fastest is reported")
    args = parser.parse_args()
    print(f"{'preset':<10} {'objects':>7} {'mean ms':>8} {'p99 ms':>8} {'cpu mean':>8} {'cpu med':>8} "
          f"{'live tracks':>11} {'cpu best/frame':>14}")
    for preset in args.presets:
        for n in args.sizes:
            mean, p99, cpu, cpu_median, live, per_frame_best = bench(preset, n, args.frames, args.dim, args.repeats)
            print(f"{preset:<10} {n:>7} {mean:>8.3f} {p99:>8.3f} {cpu:>8.3f} {cpu_median:>8.3f} {live:>11} "
                  f"{per_frame_best:>14.3f}", flush=True)


if __name__ == "__main__":
    main()
