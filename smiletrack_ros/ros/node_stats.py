"""Counters and per-period timing figures behind the node's /diagnostics (no ROS imports)."""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass


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


class NodeStats:
    """Thread-safe: the worker records frames, the diagnostics timer takes snapshots."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._period_start = clock()
        self._latencies: list[float] = []
        self._processing: list[float] = []
        self.total_frames = 0
        self.live_tracks = 0
        self.rejected: Counter[str] = Counter()
        self.errors = 0
        self.time_resets = 0

    def frame_done(self, latency_ms: float, processing_ms: float, live_tracks: int) -> None:
        """``live_tracks`` is recorded here, by the thread that owns the tracker."""
        with self._lock:
            self._latencies.append(latency_ms)
            self._processing.append(processing_ms)
            self.total_frames += 1
            self.live_tracks = live_tracks

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
            return StatsSnapshot(
                period_s=period, frames=len(lat), rate_hz=len(lat) / period,
                latency_ms_mean=sum(lat) / len(lat) if lat else float("nan"),
                latency_ms_max=max(lat) if lat else float("nan"),
                processing_ms_mean=sum(proc) / len(proc) if proc else float("nan"),
                total_frames=self.total_frames, live_tracks=self.live_tracks, rejected=dict(self.rejected),
                errors=self.errors,
                time_resets=self.time_resets)
