"""A long tracker run on synthetic input whose identities keep appearing and
vanishing, sampled for resident memory and update() latency (memory suite, soak)."""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

import numpy as np

from bench.suite.measure import progress, rss_kb, slope
from bench.suite.synthetic import SyntheticConfig, SyntheticStream

WARMUP_FRACTION = 0.1  # the first tenth fills the tracks and allocator pools; slopes start after it


@dataclass
class LongRun:
    frames: list[int] = field(default_factory=list)     # sample points
    rss_kb: list[int] = field(default_factory=list)
    ms_mean: list[float] = field(default_factory=list)  # update() mean over the window ending here
    ms_p50: list[float] = field(default_factory=list)
    ms_p99: list[float] = field(default_factory=list)
    live: list[int] = field(default_factory=list)
    identities: int = 0

    def steady(self, values: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """Samples after the warm-up tenth, skipping windows without a value (nan)."""
        x, y = np.asarray(self.frames, np.float64), np.asarray(values, np.float64)
        keep = (x > WARMUP_FRACTION * x.max()) & np.isfinite(y) if len(x) else x.astype(bool)
        return x[keep], y[keep]

    def rss_slope_kb_per_1000(self) -> float:
        return 1000.0 * slope(*self.steady(self.rss_kb))

    def ms_slope_per_1000(self) -> float:
        """Fitted on the window medians, which a busy machine's stray slow frames move least."""
        return 1000.0 * slope(*self.steady(self.ms_p50))


def long_tracker_run(frames: int, num_objects: int = 30, mean_lifetime: float = 150.0, preset: str = "paper",
                     samples: int = 50, seed: int = 0, show_progress: bool = True) -> LongRun:
    from smiletrack_ros.tracking import SmileTracker, TrackerConfig

    config = SyntheticConfig(num_objects=num_objects, num_frames=frames, mean_lifetime=mean_lifetime, seed=seed)
    tracker = SmileTracker(TrackerConfig.from_preset(preset), frame_rate=config.frame_rate)
    every = max(1, frames // samples)
    run, window, seen = LongRun(), [], set()
    gc.collect()
    for item, ids in progress(SyntheticStream(config), frames, f"long run ({preset})", show_progress):
        start = time.perf_counter()
        tracker.update(item.boxes, item.scores, item.class_ids, item.embeddings,
                       timestamp=(item.frame - 1) / config.frame_rate)
        window.append((time.perf_counter() - start) * 1e3)
        seen.update(ids.tolist())
        if item.frame % every == 0:
            run.frames.append(item.frame)
            run.rss_kb.append(rss_kb())
            run.ms_mean.append(float(np.mean(window)))
            run.ms_p50.append(float(np.median(window)))
            run.ms_p99.append(float(np.percentile(window, 99)))
            run.live.append(len(tracker.live_tracks()))
            window = []
    run.identities = len(seen)
    return run
