"""Which image stamps the node believes, before one of them becomes the tracker's "now".

The pipeline refuses frames older than the newest it processed (late) and resets on a
large jump back, so a single frame stamped in the future would make the real frames
after it late, and a single stamp far in the past would wipe the tracks. Here a frame is
refused, and counted, when its stamp is

- invalid (``nanosec`` outside [0, 1e9)),
- ahead of the node's clock (wall or sim time, once the clock runs) by more than
  ``max_clock_lead_s``,
- a jump away from the stream: ahead of the newest accepted stamp by more than
  ``jump_intervals`` of the stream's recent intervals, or back by more than the
  pipeline's reorder window. A jump is adopted (a new timeline: a replay restarted, a
  camera back after a pause) when the next frame continues from it; a single outlier
  never is.

A jump back to near the first stamp of the current timeline is a loop (a bag replayed
with ``--loop``, however short) and is accepted at once with ``restart`` set, so that
the caller resets the tracker instead of refusing a whole loop as late.
Not thread-safe: one caller (the node's worker) checks every frame.
"""
from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

_NS = 1_000_000_000


@dataclass(frozen=True)
class StampVerdict:
    """``reason``: the counter key of a refusal ('' when accepted); ``restart``: reset the
    tracker before this frame (its time went back to an earlier start)."""

    accepted: bool
    reason: str = ""
    message: str = ""
    restart: bool = False


_ACCEPT = StampVerdict(True)


class StampGuard:
    def __init__(self, max_clock_lead_s: float = 1.0, reorder_s: float = 1.0, jump_intervals: float = 5.0,
                 min_window_s: float = 0.1, history: int = 15):
        for name, value in (("max_clock_lead_s", max_clock_lead_s), ("reorder_s", reorder_s),
                            ("jump_intervals", jump_intervals), ("min_window_s", min_window_s)):
            if not (0.0 <= value < float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.max_clock_lead_ns = round(max_clock_lead_s * _NS)
        self.reorder_ns = round(reorder_s * _NS)
        self.jump_intervals = jump_intervals
        self.min_window_ns = round(min_window_s * _NS)
        self._intervals: deque[int] = deque(maxlen=history)
        self._first: int | None = None      # first stamp of the current timeline
        self._last: int | None = None       # newest accepted stamp
        self._candidate: int | None = None  # a refused jump, adopted if the next frame continues it

    def window_ns(self) -> int:
        """How far ahead of the newest stamp the next may be: a few recent intervals (the
        reorder window until three are known)."""
        if len(self._intervals) < 3:
            return max(self.reorder_ns, self.min_window_ns)
        return max(self.min_window_ns, round(self.jump_intervals * statistics.median(self._intervals)))

    def check(self, sec: int, nanosec: int, clock_ns: int = 0) -> StampVerdict:
        """``clock_ns``: the node clock now (0: not running yet, e.g. sim time before /clock)."""
        if not 0 <= nanosec < _NS:
            return StampVerdict(False, "stamp_invalid", f"stamp nanosec {nanosec} is outside [0, 1e9)")
        stamp = int(sec) * _NS + int(nanosec)
        if self.max_clock_lead_ns and clock_ns > 0 and stamp > clock_ns + self.max_clock_lead_ns:
            return StampVerdict(False, "stamp_ahead_of_clock",
                                f"stamp {stamp / _NS:.3f} s is {(stamp - clock_ns) / _NS:.3f} s ahead of the node "
                                f"clock (input_limits.max_clock_lead: {self.max_clock_lead_ns / _NS} s)")
        if self._last is None:
            self._begin(stamp)
            return _ACCEPT
        advance = stamp - self._last
        if 0 <= advance <= self.window_ns():
            if advance > 0:
                self._intervals.append(advance)
            self._last, self._candidate = stamp, None
            return _ACCEPT
        if self._is_loop(stamp):
            self._begin(stamp)
            return StampVerdict(True, restart=True)
        if -self.reorder_ns <= advance < 0:
            return _ACCEPT              # slightly late: the pipeline decides
        if self._candidate is not None and 0 <= stamp - self._candidate <= self.window_ns():
            backwards = stamp < self._last
            self._begin(self._candidate)
            self._last = stamp
            return StampVerdict(True, restart=backwards)
        self._candidate = stamp
        return StampVerdict(False, "stamp_jump", f"stamp {stamp / _NS:.3f} s jumps {advance / _NS:+.3f} s from the "
                                                 f"stream (newest {self._last / _NS:.3f} s); refused unless the next "
                                                 f"frame continues from it")

    def _is_loop(self, stamp: int) -> bool:
        """Back to within two intervals of the timeline's first stamp, from well past it."""
        if self._first is None or self._last is None:
            return False
        near = max(2 * (statistics.median(self._intervals) if self._intervals else 0), _NS // 1000)
        return abs(stamp - self._first) <= near and self._last - stamp > 2 * near

    def _begin(self, stamp: int) -> None:
        self._first = self._last = stamp
        self._candidate = None
