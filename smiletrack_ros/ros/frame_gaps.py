"""Frames that never reached the node, counted from the image stamps and the nominal rate.

DDS drops best-effort samples silently (a large image over a too-small socket buffer or
shared-memory segment never arrives), so the node cannot count them as it counts its own
drops. A camera stamps its frames about ``1 / frame_rate`` apart; a step of ``k`` periods
between consecutive received stamps means ``k - 1`` frames were lost on the way. Steps
longer than ``max_gap_s`` (a paused stream, a bag restarting) and steps back in time
(a bag looping) are not loss: counting restarts from the new stamp.
"""
from __future__ import annotations

import threading


class FrameGaps:
    """Thread-safe: fed by the image callback, read by the diagnostics timer."""

    def __init__(self, frame_rate: float, max_gap_s: float = 5.0):
        if not frame_rate > 0:
            raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
        self._period_ns = 1e9 / frame_rate
        self._max_gap_ns = max_gap_s * 1e9
        self._lock = threading.Lock()
        self._last_ns: int | None = None
        self.received = 0
        self.missing = 0

    def add(self, stamp_ns: int) -> None:
        with self._lock:
            self.received += 1
            last, self._last_ns = self._last_ns, stamp_ns
            if last is None or not 0 < stamp_ns - last <= self._max_gap_ns:
                return
            # half a period of jitter either way still counts as the next frame
            self.missing += max(0, round((stamp_ns - last) / self._period_ns) - 1)
