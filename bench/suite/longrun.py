"""A long tracker run on synthetic input whose identities keep appearing and
vanishing, sampled for resident memory and update() latency (memory suite, soak).

Raw RSS misleads at this scale: the tracker reallocates its track arrays as
tracks come and go, glibc keeps the freed chunks in its heap, and RSS swings by
~1 MB from sample to sample; a line fitted to those swings over 10,000 frames
gave up to ~120 KB/1000 frames with no memory in use growing (issue #7). So
each sample also reads RSS right after ``malloc_trim(0)``, which hands free
heap pages back and leaves what is still allocated: the leak measure. The
harness keeps O(1) state per frame (preallocated samples, identities counted,
not stored) so that it adds nothing to what it measures.
"""
from __future__ import annotations

import ctypes
import gc
import time
import tracemalloc
from collections.abc import Callable
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
    rss_trimmed_kb: list[int] = field(default_factory=list)  # RSS after malloc_trim(0); empty: not measured
    heap_kb: list[float] = field(default_factory=list)  # tracemalloc's traced Python heap; empty: not traced
    cpu_ms_p50: list[float] = field(default_factory=list)  # update() thread CPU time, window median; empty: none

    def steady(self, values: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """Samples after the warm-up tenth, skipping windows without a value (nan)."""
        x, y = np.asarray(self.frames, np.float64), np.asarray(values, np.float64)
        keep = (x > WARMUP_FRACTION * x.max()) & np.isfinite(y) if len(x) else x.astype(bool)
        return x[keep], y[keep]

    def _slope_per_1000(self, values: list[float]) -> float:
        return 1000.0 * slope(*self.steady(values)) if len(values) == len(self.frames) else float("nan")

    def rss_slope_kb_per_1000(self) -> float:
        """Raw RSS: includes the allocator's free-but-kept heap pages."""
        return self._slope_per_1000(self.rss_kb)

    def trimmed_rss_slope_kb_per_1000(self) -> float:
        return self._slope_per_1000(self.rss_trimmed_kb)

    def heap_slope_kb_per_1000(self) -> float:
        return self._slope_per_1000(self.heap_kb)

    def leak_slope_kb_per_1000(self) -> float:
        """The slope a leak verdict should use: trimmed RSS where measured, else raw RSS."""
        return self.trimmed_rss_slope_kb_per_1000() if self.rss_trimmed_kb else self.rss_slope_kb_per_1000()

    def ms_slope_per_1000(self) -> float:
        """Fitted on the window medians, which a busy machine's stray slow frames move least."""
        return 1000.0 * slope(*self.steady(self.ms_p50))

    def judged_latency(self) -> list[float]:
        """Window medians of CPU time where measured (other processes on a shared machine
        stretch wall time, not the tracker's own work), else of wall time."""
        return self.cpu_ms_p50 if len(self.cpu_ms_p50) == len(self.frames) else self.ms_p50

    def latency_drift(self) -> float:
        """Fitted change of the judged median latency over the run, as a fraction of its steady mean."""
        values = self.judged_latency()
        _, steady = self.steady(values)
        mean = float(steady.mean()) if len(steady) else float("nan")
        return self._slope_per_1000(values) * (self.frames[-1] / 1000.0) / mean if mean > 0 else float("nan")


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)`` (free heap pages back to the system), or None without glibc."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


def long_tracker_run(frames: int, num_objects: int = 30, mean_lifetime: float = 150.0, preset: str = "paper",
                     samples: int = 50, seed: int = 0, show_progress: bool = True, trace_heap: bool = False,
                     leak_kb_per_1000: float = 0.0) -> LongRun:
    """Run ``frames`` synthetic frames through a fresh tracker, sampling every ``frames // samples``.

    ``trace_heap`` records tracemalloc's traced size at each sample (update() runs ~4x
    slower under it: take latencies from an untraced run). ``leak_kb_per_1000`` keeps
    that many KB per 1000 frames alive on purpose, to check that a leak is flagged."""
    from smiletrack_ros.tracking import SmileTracker, TrackerConfig

    if frames < 1 or samples < 1 or leak_kb_per_1000 < 0:
        raise ValueError(f"need frames >= 1, samples >= 1, leak_kb_per_1000 >= 0; got {frames}, {samples}, "
                         f"{leak_kb_per_1000}")
    config = SyntheticConfig(num_objects=num_objects, num_frames=frames, mean_lifetime=mean_lifetime, seed=seed)
    tracker = SmileTracker(TrackerConfig.from_preset(preset), frame_rate=config.frame_rate)
    every = max(1, frames // samples)
    count = frames // every
    sample_frames, rss, rss_trimmed, live = (np.zeros(count, np.int64) for _ in range(4))
    ms_mean, ms_p50, ms_p99, cpu_p50, heap = (np.zeros(count) for _ in range(5))
    window, cpu_window, filled, taken, identities = np.zeros(every), np.zeros(every), 0, 0, 0
    trim = malloc_trim()
    leak = bytearray()
    gc.collect()
    if trace_heap:
        tracemalloc.start(1)
    try:
        for item, ids in progress(SyntheticStream(config), frames, f"long run ({preset})", show_progress):
            start, cpu_start = time.perf_counter(), time.thread_time()
            tracker.update(item.boxes, item.scores, item.class_ids, item.embeddings,
                           timestamp=(item.frame - 1) / config.frame_rate)
            window[filled] = (time.perf_counter() - start) * 1e3
            cpu_window[filled] = (time.thread_time() - cpu_start) * 1e3
            filled += 1
            if len(ids):  # synthetic identities are numbered in birth order
                identities = max(identities, int(ids.max()))
            if leak_kb_per_1000:
                leak.extend(bytes(int(item.frame * leak_kb_per_1000 * 1.024) - len(leak)))
            if item.frame % every:
                continue
            sample_frames[taken], live[taken] = item.frame, len(tracker.live_tracks())
            ms_mean[taken], ms_p50[taken] = window.mean(), np.median(window)
            ms_p99[taken], cpu_p50[taken] = np.percentile(window, 99), np.median(cpu_window)
            if trace_heap:
                heap[taken] = tracemalloc.get_traced_memory()[0] / 1024
            rss[taken] = rss_kb()
            if trim is not None:
                trim()
                rss_trimmed[taken] = rss_kb()
            taken, filled = taken + 1, 0
    finally:
        if trace_heap:
            tracemalloc.stop()
    return LongRun(frames=sample_frames.tolist(), rss_kb=rss.tolist(), ms_mean=ms_mean.tolist(),
                   ms_p50=ms_p50.tolist(), ms_p99=ms_p99.tolist(), live=live.tolist(), identities=identities,
                   rss_trimmed_kb=rss_trimmed.tolist() if trim is not None else [],
                   heap_kb=heap.tolist() if trace_heap else [], cpu_ms_p50=cpu_p50.tolist())
