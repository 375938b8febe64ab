"""Offline gap interpolation."""
import numpy as np
import pytest

from smiletrack_ros.mot.interpolate import InterpolationConfig, interpolate_tracks


def _track(tid, frames, x0=0.0):
    frames = np.asarray(frames, float)
    x = x0 + 10.0 * frames
    return np.column_stack([frames, np.full(len(frames), tid), x, x, x + 20, x + 40, np.full(len(frames), 0.8)])


def test_fills_short_gaps_linearly():
    rows = _track(1, [1, 2, 3, 4, 8, 9])
    out = interpolate_tracks(rows, InterpolationConfig(max_gap=3, min_length=5))
    assert out[:, 0].tolist() == list(range(1, 10))
    np.testing.assert_allclose(out, _track(1, range(1, 10)))


def test_respects_max_gap_and_min_length():
    long_gap = _track(1, [1, 2, 3, 4, 5, 30])
    assert len(interpolate_tracks(long_gap, InterpolationConfig(max_gap=20, min_length=2))) == 6
    short = _track(2, [1, 5])
    assert len(interpolate_tracks(short, InterpolationConfig(max_gap=20, min_length=5))) == 2
    assert len(interpolate_tracks(short, InterpolationConfig(max_gap=20, min_length=2))) == 5
    assert len(interpolate_tracks(short, InterpolationConfig(drop_shorter_than=3))) == 0


def test_tracks_stay_separate_and_sorted():
    rows = np.concatenate([_track(2, [3, 6], x0=500), _track(1, [1, 2, 4])])
    out = interpolate_tracks(rows, InterpolationConfig(max_gap=5, min_length=2))
    assert len(out) == 4 + 4
    keys = out[:, 0] * 100 + out[:, 1]
    assert (np.diff(keys) > 0).all()
    np.testing.assert_allclose(out[out[:, 1] == 2], _track(2, [3, 4, 5, 6], x0=500))


def test_bad_input_named():
    with pytest.raises(ValueError, match="max_gap"):
        InterpolationConfig(max_gap=-1)
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        interpolate_tracks(np.zeros((2, 5)))
    assert interpolate_tracks(np.zeros((0, 7))).shape == (0, 7)
