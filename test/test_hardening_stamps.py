"""Stamp plausibility (issue 16.2), without DDS: the guard in front of the pipeline, driven by
the issue's probes on a 30 Hz stream, and the pipeline behind it keeping its tracks."""
import numpy as np
import pytest

from smiletrack_ros.detections import Detections
from smiletrack_ros.pipeline import LateFrameError, Pipeline
from smiletrack_ros.ros.stamp_guard import StampGuard
from smiletrack_ros.tracking import SmileTracker, TrackerConfig

NS = 1_000_000_000
DT = 1 / 30
CLOCK = 1_700_000_000 * NS          # the node's wall clock in these tests


def _split(t: float) -> tuple[int, int]:
    ns = round(t * NS)
    return ns // NS, ns % NS


def _check(guard: StampGuard, t: float, clock_ns: int = 0):
    return guard.check(*_split(t), clock_ns)


def _stream(guard: StampGuard, t0: float, n: int):
    return [_check(guard, t0 + k * DT) for k in range(n)]


class Tracked:
    """Guard + pipeline as the node chains them; two people walking, external detections."""

    def __init__(self):
        self.guard = StampGuard()
        self.pipeline = Pipeline(None, None, SmileTracker(TrackerConfig.from_preset("bytetrack"), frame_rate=30))
        self.image = np.zeros((240, 320, 3), np.uint8)
        self.k = 0
        self.refused: list[str] = []
        self.late = 0
        self.resets = 0

    def frame(self, sec: int, nanosec: int, clock_ns: int = 0) -> list[int] | None:
        verdict = self.guard.check(sec, nanosec, clock_ns)
        if not verdict.accepted:
            self.refused.append(verdict.reason)
            return None
        if verdict.restart:
            self.pipeline.reset()
            self.resets += 1
        boxes = np.array([[20 + self.k, 30, 60 + self.k, 130], [250 - self.k, 90, 290 - self.k, 200]], np.float32)
        self.k += 1
        try:
            result = self.pipeline.process(self.image, sec + nanosec * 1e-9,
                                           Detections(boxes, np.full(2, 0.9, np.float32), np.zeros(2, np.int64)))
        except LateFrameError:
            self.late += 1
            return None
        self.resets += result.reset
        return sorted(t.track_id for t in result.tracks)

    def run(self, t0: float, n: int) -> list[list[int] | None]:
        return [self.frame(*_split(t0 + k * DT)) for k in range(n)]


@pytest.mark.parametrize("probe, reason", [
    (_split(100 + 10 * DT + 0.9), "stamp_jump"),
    (_split(100 + 10 * DT + 5.0), "stamp_jump"),
    ((2**31 - 1, 0), "stamp_jump"),
    ((-1000, 0), "stamp_jump"),
    ((100, 4_000_000_000), "stamp_invalid"),
])
def test_one_implausible_stamp_is_refused_and_the_tracks_keep_their_ids(probe, reason):
    node = Tracked()
    before = node.run(100.0, 10)
    ids = before[-1]
    assert len(ids) == 2 and before[5] == ids
    assert node.frame(*probe) is None and node.refused == [reason]
    after = node.run(100 + 10 * DT, 40)                          # the next 40 real frames
    assert all(a == ids for a in after), after
    assert (node.late, node.resets, node.refused) == (0, 0, [reason])


def test_a_frame_ahead_of_the_clock_is_refused_even_first():
    guard = StampGuard(max_clock_lead_s=1.0)
    now = CLOCK / NS
    assert _check(guard, now + 5, CLOCK).reason == "stamp_ahead_of_clock"
    assert _check(guard, 2**31 - 1, CLOCK).reason == "stamp_ahead_of_clock"
    assert _check(guard, now + 0.5, CLOCK).accepted                # clocks a little apart
    assert _check(guard, now + 0.5 + DT, 0).accepted                 # sim time before /clock: unchecked
    assert StampGuard(max_clock_lead_s=0).check(*_split(now + 100), CLOCK).accepted   # 0: off


def test_a_short_bag_looped_resets_once_per_loop_and_every_frame_is_tracked():
    """0.8 s at 30 Hz: the jump back (0.77 s) is within the pipeline's reorder window, so
    without loop detection 23 of 24 frames of each later loop would be refused as late."""
    node = Tracked()
    loops = [node.run(50.0, 24) for _ in range(4)]
    assert node.resets == 3 and node.late == 0 and node.refused == []
    assert all(ids is not None for loop in loops for ids in loop)
    assert len(loops[0][-1]) == 2
    assert set(loops[1][-1]).isdisjoint(loops[0][-1])                # a reset: new ids, never reused


def test_a_loop_whose_first_frame_was_missed_is_still_a_loop():
    guard = StampGuard()
    _stream(guard, 10.0 + DT, 23)                                     # frame 0 never arrived
    assert _check(guard, 10.0).restart


def test_a_jump_is_adopted_when_the_next_frame_continues_it():
    guard = StampGuard()
    _stream(guard, 10.0, 10)
    assert _check(guard, 500.0).reason == "stamp_jump"              # a new recording, or an outlier
    adopted = _check(guard, 500.0 + DT)
    assert adopted.accepted and not adopted.restart                 # forward: the pipeline just goes on
    assert all(v.accepted for v in _stream(guard, 500.0 + 2 * DT, 5))
    assert _check(guard, 200.0).reason == "stamp_jump"
    back = _check(guard, 200.0)                                      # the same stamp again continues it
    assert back.accepted and back.restart                            # backwards: reset the tracker
    assert _check(guard, 200.0 - 0.05).accepted                      # then late frames go to the pipeline


def test_late_and_duplicate_frames_pass_to_the_pipeline():
    guard = StampGuard()
    _stream(guard, 10.0, 10)
    last = 10.0 + 9 * DT
    assert _check(guard, last).accepted and not _check(guard, last).restart
    late = _check(guard, last - 0.5)
    assert late.accepted and not late.restart


def test_the_window_follows_the_stream_rate():
    fast, slow = StampGuard(), StampGuard()
    _stream(fast, 10.0, 10)
    for k in range(10):
        slow.check(*_split(10.0 + k * 0.2))                           # 5 Hz, or 30 Hz with drops
    assert fast.window_ns() == pytest.approx(5 * DT * NS, rel=1e-6)
    assert _check(slow, 10.0 + 9 * 0.2 + 0.9).accepted               # 4.5 intervals at 5 Hz
    assert StampGuard().window_ns() == NS                             # before 3 intervals: the reorder window


def test_guard_settings_are_validated():
    for bad in ({"max_clock_lead_s": -1.0}, {"reorder_s": float("inf")}, {"jump_intervals": float("nan")}):
        with pytest.raises(ValueError):
            StampGuard(**bad)
