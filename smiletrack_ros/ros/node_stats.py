"""Counters and per-period timing figures behind the node's /diagnostics (no ROS imports)."""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StatsSnapshot:
    period_s: float
    frames: int
    rate_hz: float
    latency_ms_mean: float
    latency_ms_max: float
    processing_ms_mean: float
    total_frames: int
    live_tracks: int
    rejected: dict[str, int]
    errors: int
    time_resets: int
    # per period: name -> (p50, p99) ms; "latency", each model step (detect, embed, track) and
    # each worker stage's run time ("stage_<name>") and wait for it ("wait_<name>")
    percentiles: dict[str, tuple[float, float]] = field(default_factory=dict)


class NodeStats:
    """Thread-safe: the worker records frames, the diagnostics timer takes snapshots."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._period_start = clock()
        self._latencies: list[float] = []
        self._processing: list[float] = []
        self._series: dict[str, list[float]] = {}
        self.total_frames = 0
        self.live_tracks = 0
        self.rejected: Counter[str] = Counter()
        self.errors = 0
        self.time_resets = 0

    def frame_done(self, latency_ms: float, processing_ms: float, live_tracks: int,
                   timings_ms: Mapping[str, float] | None = None) -> None:
        """``live_tracks`` is recorded here, by the thread that owns the tracker; ``timings_ms``:
        the frame's per-step times (the pipeline's ``FrameResult.timings``)."""
        with self._lock:
            self._latencies.append(latency_ms)
            self._processing.append(processing_ms)
            self.total_frames += 1
            self.live_tracks = live_tracks
            self._series.setdefault("latency", []).append(latency_ms)
            for name, ms in (timings_ms or {}).items():
                if name != "total":
                    self._series.setdefault(name, []).append(ms)

    def stage_done(self, stage: str, waited_s: float, ran_s: float) -> None:
        """A worker stage's wait and run time for one item (``LatestWorker``'s ``on_timing``)."""
        with self._lock:
            self._series.setdefault(f"stage_{stage}", []).append(ran_s * 1e3)
            self._series.setdefault(f"wait_{stage}", []).append(waited_s * 1e3)

    def reject(self, reason: str) -> int:
        """Counts one rejected input; returns the running count for that reason."""
        with self._lock:
            self.rejected[reason] += 1
            return self.rejected[reason]

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def time_reset(self) -> None:
        with self._lock:
            self.time_resets += 1

    def snapshot(self) -> StatsSnapshot:
        """Figures since the previous snapshot (rate, latency) plus the running counters."""
        with self._lock:
            now = self._clock()
            period = max(now - self._period_start, 1e-9)
            lat, proc = self._latencies, self._processing
            self._period_start, self._latencies, self._processing = now, [], []
            series, self._series = self._series, {}
            return StatsSnapshot(
                period_s=period, frames=len(lat), rate_hz=len(lat) / period,
                latency_ms_mean=sum(lat) / len(lat) if lat else float("nan"),
                latency_ms_max=max(lat) if lat else float("nan"),
                processing_ms_mean=sum(proc) / len(proc) if proc else float("nan"),
                total_frames=self.total_frames, live_tracks=self.live_tracks, rejected=dict(self.rejected),
                errors=self.errors,
                time_resets=self.time_resets,
                percentiles={name: (float(np.percentile(v, 50)), float(np.percentile(v, 99)))
                             for name, v in sorted(series.items()) if v})
