"""Metric synthetic scenes: truth consistent with the camera, and the whole chain against metric truth."""
from __future__ import annotations

import math

import numpy as np
import pytest

from smiletrack_ros.scene import SceneConfig, SceneConfigError, generate_scene
from smiletrack_ros.scene.camera import SceneCamera
from smiletrack_ros.scene.ground_eval import Samples, cached_track_scene, run_scene, summarize, track_scene

CAMERA = SceneCamera(height_m=1.6, pitch_deg=12.0, hfov_deg=80.0)


def _config(**overrides) -> SceneConfig:
    return SceneConfig(**{"num_people": 6, "num_frames": 40, "fps": 20.0, "seed": 3, "camera": CAMERA, **overrides})


def test_people_stand_where_the_camera_sees_their_feet_and_move_at_their_velocity():
    config = _config()
    model, pose = CAMERA.model(config.width, config.height), CAMERA.pose()
    previous = None
    for frame in generate_scene(config).frames():
        t = frame.truth
        assert t.floor is not None and t.floor.positions.shape == (len(t), 2)
        ranges = np.hypot(*t.floor.positions.T)
        assert np.all((ranges >= CAMERA.range_m[0]) & (ranges <= CAMERA.range_m[1]))
        speeds = np.hypot(*t.floor.velocities.T)
        assert np.all((speeds >= CAMERA.speed_mps[0] - 1e-9) & (speeds <= CAMERA.speed_mps[1] + 1e-9))
        feet = model.project(pose.to_optical(np.column_stack([t.floor.positions, np.zeros(len(t))])))
        inside = (t.boxes[:, 0] > 0) & (t.boxes[:, 2] < config.width) & (t.boxes[:, 3] < config.height)
        np.testing.assert_allclose(t.boxes[inside, 3], feet[inside, 1], atol=0.6)        # box bottom on the feet
        heads = model.project(pose.to_optical(np.column_stack([t.floor.positions, t.floor.statures])))
        middle = (feet[inside, 0] + heads[inside, 0]) / 2   # the image of a person leans: box centred between
        box_h = t.boxes[inside, 3] - t.boxes[inside, 1]   # (swinging arms and legs move the centre a little)
        assert np.all(np.abs((t.boxes[inside, 0] + t.boxes[inside, 2]) / 2 - middle) < 0.08 * box_h + 1.0)
        assert np.all(np.abs(t.boxes[inside, 1] - heads[inside, 1]) < 0.06 * (feet[inside, 1] - heads[inside, 1]) + 1)
        if previous is not None:   # positions advance by the velocity (heading drift between frames is small)
            common, a, b = np.intersect1d(previous.ids, t.ids, return_indices=True)
            step = t.floor.positions[b] - previous.floor.positions[a]
            np.testing.assert_allclose(step, previous.floor.velocities[a] / config.fps, atol=0.02)
        previous = t


def test_metric_scenes_replay_identically_and_validate_the_camera():
    a = [f.truth for f in generate_scene(_config(num_frames=5)).frames()]
    b = [f.truth for f in generate_scene(_config(num_frames=5)).frames()]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.floor.positions, y.floor.positions)
    assert all(f.truth.floor is None for f in generate_scene(SceneConfig(num_frames=2)).frames())
    with pytest.raises(SceneConfigError, match="camera_pan"):
        _config(camera_pan=5.0)
    with pytest.raises(SceneConfigError, match="camera"):
        SceneConfig(camera="1.5 m")
    with pytest.raises(SceneConfigError, match="pitch_deg"):
        SceneCamera(pitch_deg=80.0)
    with pytest.raises(SceneConfigError, match="range_m"):
        SceneCamera(range_m=(5.0, 2.0))


def test_chain_against_metric_truth():
    """Detector model -> 2D tracker -> ground filter on an 8 s scene: metre-level truth is met
    (loose bounds here; the grid in scene.ground_eval gives the figures)."""
    samples, trails = run_scene(_config(num_frames=160, num_people=5, det_box_noise=0.02, seed=8))
    assert isinstance(samples, Samples) and len(samples.range_m) > 250 and trails
    assert samples.mixed.mean() < 0.2
    s = summarize(samples.subset(~samples.mixed))   # tracks the 2D tracker did not switch to someone else
    assert s["position_error_rel_median"] < 0.03
    assert s["velocity_rms_settled"] < 0.4
    assert 0.6 < s["nees_in_band_settled"] <= 1.0


def test_topdown_png(tmp_path):
    pytest.importorskip("matplotlib")
    from smiletrack_ros.scene.topdown import busiest_time, render_topdown

    _, trails = run_scene(_config(num_frames=40, det_box_noise=0.02))
    out = render_topdown(trails, CAMERA, tmp_path / "top.png", title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert math.isfinite(next(iter(trails.values())).estimates[-1][0])
    assert busiest_time(trails) > 0


def test_the_2d_stage_cache_gives_back_what_it_kept(tmp_path):
    """The cache stores plain arrays (read without pickle) and gives back the same frames: the ground
    filter's samples are identical to those of a fresh 2D run, and another scene gets its own file."""
    config = _config(num_frames=30, num_people=4, det_box_noise=0.02)
    first = cached_track_scene(config, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    again = cached_track_scene(config, tmp_path)     # read back from the file
    assert [len(f.live) for f in again] == [len(f.live) for f in first] and sum(len(f.live) for f in again) > 30
    for a, b in zip(first, again, strict=True):
        assert [(t.track_id, t.detection_index, t.state) for t in a.live] == \
            [(t.track_id, t.detection_index, t.state) for t in b.live]
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.truth.detection_ids, b.truth.detection_ids)
        np.testing.assert_array_equal(a.truth.floor.positions, b.truth.floor.positions)
    expected, _ = run_scene(config, tracked=track_scene(config))
    cached, _ = run_scene(config, tracked=again)
    for name in Samples.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(cached, name), getattr(expected, name))
    cached_track_scene(_config(num_frames=30, num_people=4, det_box_noise=0.02, seed=4), tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2
