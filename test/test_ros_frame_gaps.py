"""Frames lost before the node (DDS drops best-effort samples silently), counted from the stamps."""
import pytest

from smiletrack_ros.ros.frame_gaps import FrameGaps

MS = 1_000_000


def test_missing_frames_counted_from_the_stamps_and_the_nominal_rate():
    gaps = FrameGaps(frame_rate=15.0)
    period = 1e9 / 15
    received = [0, 1, 2, 5, 6, 10]                       # frames 3, 4, 7, 8, 9 never arrived
    for k in received:
        gaps.add(round(1_700_000_000e9 + k * period + (3 * MS if k % 2 else -3 * MS)))   # +-3 ms jitter
    assert (gaps.received, gaps.missing) == (6, 5)


def test_pauses_loops_and_duplicates_are_not_loss():
    gaps = FrameGaps(frame_rate=10.0, max_gap_s=5.0)
    for stamp_ms in (1000, 1100, 1100, 9000, 9100, 500, 600):   # duplicate, 7.9 s pause, loop back
        gaps.add(stamp_ms * MS)
    assert (gaps.received, gaps.missing) == (7, 0)


def test_rate_must_be_positive():
    with pytest.raises(ValueError, match="frame_rate"):
        FrameGaps(0.0)
