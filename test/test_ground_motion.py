"""Ground motion filter: convergence, consistent covariance, outliers, re-identification, lifecycle."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2

from smiletrack_ros.ground import (
    CameraModel,
    CameraPose,
    ConstantVelocityFilter,
    FootPoint,
    GroundConfigError,
    GroundProjector,
    GroundStatus,
    GroundTracker,
    MotionConfig,
    PixelNoise,
    ProjectionConfig,
    Refusal,
)
from smiletrack_ros.tracking import TrackOutput, TrackState

CAMERA = CameraModel.pinhole(640, 480, 70.0)
POSE = CameraPose.from_mounting(1.5, math.radians(10.0))
NOISE = PixelNoise(x_fraction=0.02, y_fraction=0.03, floor_px=0.5)
PROJECTOR = GroundProjector(CAMERA, POSE, ProjectionConfig(noise=NOISE))


def _track(track_id: int, detection_index: int) -> TrackOutput:
    return TrackOutput(track_id=track_id, box=np.zeros(4), score=0.9, class_id=0, state=TrackState.TRACKED, age=1,
                       hits=1, frames_since_update=0 if detection_index >= 0 else 1, velocity=(0.0, 0.0),
                       appearance_similarity=math.nan, detection_index=detection_index)


def _box(position: np.ndarray, stature: float = 1.7) -> np.ndarray:
    """The box around an upright person's image (centred between its head and feet, which lean)."""
    feet, head = CAMERA.project(POSE.to_optical(np.array([[*position, 0.0], [*position, stature]])))
    half, middle = 0.13 * (feet[1] - head[1]), 0.5 * (feet[0] + head[0])
    return np.array([middle - half, head[1], middle + half, feet[1]])


def _noisy(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = NOISE.foot_sigma(box[None])[0]
    du, dv = rng.normal(0.0, sigma)
    return box + np.array([du, 0.0, du, dv])


def test_filter_follows_a_walker_with_consistent_covariance():
    """A person walking obliquely towards the camera from 10 m to about 5 m, with the random
    accelerations the filter assumes (white in every direction, no turning term) and white box noise
    (no sway), measured at 15 Hz for 8 s, over 40 runs: velocity converges, and the 4-dof NEES has
    the chi-square distribution's mean and band coverage."""
    rng = np.random.default_rng(11)
    dt, steps, psd = 1.0 / 15.0, 120, 0.02
    Q = np.kron(np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]) * psd, np.eye(2))
    nees, speed_errors = [], []
    for _ in range(40):
        tracker = GroundTracker(MotionConfig(acceleration_psd=psd, turn_psd=0.0, sway_share=0.0))
        side = rng.choice([-1.0, 1.0])
        state = np.array([10.0, side * rng.uniform(0.5, 1.5), -0.6, -side * 0.25])
        for k in range(steps):
            if k:
                state[:2] += state[2:] * dt
                state += rng.multivariate_normal(np.zeros(4), Q)   # order x, y, vx, vy
            truth, velocity = state[:2], state[2:]
            estimate = tracker.update(k * dt, [_track(7, 0)], _noisy(_box(truth), rng)[None], PROJECTOR)[7]
            if estimate.refusal == Refusal.TRUNCATED:   # walked out of view
                break
            assert estimate.status == GroundStatus.MEASURED and estimate.refusal == Refusal.NONE
            if k * dt >= 2.0:
                error = np.concatenate([estimate.position - truth, estimate.velocity - velocity])
                nees.append(error @ np.linalg.solve(estimate.covariance, error))
                speed_errors.append(np.linalg.norm(estimate.velocity - velocity))
    nees = np.asarray(nees)
    assert len(nees) > 0.8 * 40 * (steps - 30)
    lo, hi = chi2.ppf([0.025, 0.975], 4)
    assert 3.2 < nees.mean() < 5.0
    assert 0.9 < np.mean((nees > lo) & (nees < hi)) < 0.99
    assert np.sqrt(np.mean(np.square(speed_errors))) < 0.2


def test_filtering_the_same_evidence_twice_would_be_overconfident():
    """Reference for the design choice in motion.py: a measurement correlated over frames (here the
    same noise held for 10 frames, as a smoothed box would give) breaks the NEES; the filter cannot
    know, so it is fed independent detections."""
    rng = np.random.default_rng(3)
    nees = []
    for _ in range(20):
        tracker = GroundTracker(MotionConfig(acceleration_psd=0.01))
        noise_box = None
        for k in range(150):
            truth = np.array([8.0 - 0.05 * k / 15.0, 0.5])
            if k % 10 == 0:
                noise_box = _noisy(_box(truth), rng) - _box(truth)
            estimate = tracker.update(k / 15.0, [_track(1, 0)], (_box(truth) + noise_box)[None], PROJECTOR)[1]
            if k >= 30:
                error = np.concatenate([estimate.position - truth, estimate.velocity - [-0.05, 0.0]])
                nees.append(error @ np.linalg.solve(estimate.covariance, error))
    assert np.mean(nees) > 8.0


def _feed(tracker: GroundTracker, track_id: int, k: int, position: np.ndarray, dt: float = 0.1,
          rng: np.random.Generator | None = None):
    box = _box(position)
    return tracker.update(k * dt, [_track(track_id, 0)], (box if rng is None else _noisy(box, rng))[None],
                          PROJECTOR)[track_id]


def test_a_single_far_outlier_restarts_at_once_and_the_next_agreeing_box_reverts_it():
    """A box far outside the gate cannot be the tracked person: the track restarts there in the
    same frame (its velocity is not a blend of the two), and the old filter stays as the rival:
    the next box where the person walks on brings it back, as if the outlier had never been fed."""
    tracker, reference = GroundTracker(), GroundTracker()
    walk = [np.array([5.0 + 0.1 * k, 0.0]) for k in range(14)]
    for k in range(10):
        _feed(tracker, 1, k, walk[k])
        _feed(reference, 1, k, walk[k])
    jump = _feed(tracker, 1, 10, np.array([9.0, 3.0]))
    assert jump.status == GroundStatus.MEASURED and jump.started == pytest.approx(1.0)
    np.testing.assert_allclose(jump.position, [9.0, 3.0], atol=1e-4)
    np.testing.assert_array_equal(jump.velocity, 0.0)                      # a fresh filter, no blend
    reference.update(1.0, [_track(1, -1)], np.zeros((0, 4)), PROJECTOR)    # the reference never saw it
    for k in range(11, 14):
        back, expected = _feed(tracker, 1, k, walk[k]), _feed(reference, 1, k, walk[k])
        assert back.started == 0.0 and back.status == GroundStatus.MEASURED
        np.testing.assert_allclose(back.position, expected.position, atol=1e-9)
        np.testing.assert_allclose(back.velocity, expected.velocity, atol=1e-9)
        np.testing.assert_allclose(back.covariance, expected.covariance, atol=1e-12)


def test_two_people_swapped_between_2d_ids_restart_within_one_frame_and_never_blend():
    """The 2D tracker swaps two people 3 m apart who walk in opposite directions. In the swap frame
    each track restarts on its new person, and from then on its estimate is exactly that of a filter
    fed only the new person's boxes: no velocity is ever a blend of the two."""
    rng = np.random.default_rng(5)
    dt, swap = 0.1, 20
    a = [np.array([4.0 + 0.1 * k, 1.5]) for k in range(45)]     # 1 m/s away from the camera
    b = [np.array([8.5 - 0.1 * k, -1.5]) for k in range(45)]    # 1 m/s towards it
    boxes = [np.stack([_noisy(_box(p), rng), _noisy(_box(q), rng)]) for p, q in zip(a, b, strict=True)]
    tracker, fresh_b, fresh_a = GroundTracker(), GroundTracker(), GroundTracker()
    for k, frame in enumerate(boxes):
        ids = [_track(1, 0), _track(2, 1)] if k < swap else [_track(1, 1), _track(2, 0)]
        out = tracker.update(k * dt, ids, frame, PROJECTOR)
        if k < swap:
            continue
        only_b = fresh_b.update(k * dt, [_track(1, 1)], frame, PROJECTOR)[1]
        only_a = fresh_a.update(k * dt, [_track(2, 0)], frame, PROJECTOR)[2]
        assert out[1].started == out[2].started == pytest.approx(swap * dt)
        for got, expected in ((out[1], only_b), (out[2], only_a)):
            np.testing.assert_allclose(got.position, expected.position, atol=1e-9)
            np.testing.assert_allclose(got.velocity, expected.velocity, atol=1e-9)
    np.testing.assert_allclose(out[1].velocity, [-1.0, 0.0], atol=0.3)
    np.testing.assert_allclose(out[2].velocity, [1.0, 0.0], atol=0.3)


def test_a_swap_between_neighbours_inside_the_gate_is_undone_by_the_likelihood_ratio():
    """Two people 9 m away, 0.3 m apart in range, crossing the view in opposite directions, are
    swapped: the other person's box passes the gate (range is uncertain there), so only the motion
    that follows can tell. Within the decision time the restart hypothesis wins, and the track's
    velocity is the new person's, not a blend."""
    rng = np.random.default_rng(2)
    dt, swap = 0.1, 20
    a = [np.array([9.15, 0.1 * (k - swap)]) for k in range(40)]
    b = [np.array([8.85, -0.1 * (k - swap)]) for k in range(40)]
    tracker = GroundTracker()
    for k in range(40):
        truth = a[k] if k < swap else b[k]
        estimate = _feed(tracker, 1, k, truth, dt, rng)
        if k == swap:
            assert estimate.started == 0.0        # inside the gate: not refused outright
    assert swap * dt <= estimate.started <= swap * dt + tracker.config.decision_time
    np.testing.assert_allclose(estimate.velocity, [0.0, -1.0], atol=0.3)


def test_doubtful_boxes_of_the_same_person_keep_the_filter():
    """Noisy boxes of one walker raise restart hypotheses now and then (5% fall outside the 95%
    ellipse), but the old filter explains the boxes that follow better: it is kept throughout."""
    rng = np.random.default_rng(9)
    tracker = GroundTracker()
    for k in range(120):
        estimate = _feed(tracker, 3, k, np.array([9.0 - 0.05 * k, 0.5 + 0.01 * k]), 1.0 / 15.0, rng)
    assert estimate.started == 0.0 and estimate.status == GroundStatus.MEASURED


def test_a_track_reidentified_far_away_after_a_gap_restarts_at_once():
    tracker = GroundTracker()
    for k in range(10):
        tracker.update(k * 0.1, [_track(4, 0)], _box(np.array([5.0, 0.0]))[None], PROJECTOR)
    for k in range(10, 18):   # lost: predicted only
        estimate = tracker.update(k * 0.1, [_track(4, -1)], np.zeros((0, 4)), PROJECTOR)[4]
        assert estimate.status == GroundStatus.PREDICTED and estimate.refusal == Refusal.UNMATCHED
    estimate = tracker.update(1.8, [_track(4, 0)], _box(np.array([7.0, -2.5]))[None], PROJECTOR)[4]
    assert estimate.status == GroundStatus.MEASURED
    np.testing.assert_allclose(estimate.position, [7.0, -2.5], atol=1e-4)


def test_lifecycle_refusals_and_resets():
    tracker = GroundTracker(MotionConfig(max_prediction=0.3))
    boxes = np.stack([_box(np.array([5.0, 0.0])), [300.0, 100.0, 340.0, 480.0]])   # second: cut by the bottom
    out = tracker.update(0.0, [_track(1, 0), _track(2, 1), _track(3, -1)], boxes, PROJECTOR)
    assert out[1].status == GroundStatus.MEASURED and out[1].height == pytest.approx(1.7, abs=0.02)
    assert out[2].status == GroundStatus.NONE and out[2].refusal == Refusal.TRUNCATED
    assert out[3].status == GroundStatus.NONE and out[3].refusal == Refusal.UNMATCHED
    assert np.all(np.isnan(out[2].position)) and len(tracker) == 1
    assert tracker.update(0.2, [_track(1, -1)], np.zeros((0, 4)), PROJECTOR)[1].status == GroundStatus.PREDICTED
    assert tracker.update(0.4, [_track(1, -1)], np.zeros((0, 4)), PROJECTOR)[1].status == GroundStatus.NONE
    assert len(tracker) == 0
    tracker.update(0.5, [_track(1, 0)], boxes[:1], PROJECTOR)
    assert tracker.update(0.6, [], np.zeros((0, 4)), PROJECTOR) == {} and len(tracker) == 0   # ids gone: dropped
    tracker.update(0.7, [_track(5, 0)], boxes[:1], PROJECTOR)
    tracker.update(0.1, [_track(6, 0)], boxes[:1], PROJECTOR)                                # time went back
    assert len(tracker) == 1
    assert tracker.update(0.2, [_track(6, 0)], boxes[:1], None)[6].refusal == Refusal.NO_CAMERA_MODEL
    assert len(tracker) == 0


def test_prediction_grows_the_covariance_like_a_constant_velocity_model():
    f = ConstantVelocityFilter(FootPoint(np.zeros(2), np.eye(2) * 0.01, np.zeros(2)), 0.0, psd=0.2, speed_sigma=1.0,
                               sway_time=1.0)
    f.x[2:4] = (1.0, -0.5)
    x, P = f.predicted(2.0)
    np.testing.assert_allclose(x, [2.0, -1.0, 1.0, -0.5, 0.0])
    np.testing.assert_allclose(P[0, 0], 0.01 + 4.0 * 1.0 + 0.2 * 8.0 / 3.0)
    np.testing.assert_allclose(P[0, 2], 2.0 * 1.0 + 0.2 * 2.0)
    np.testing.assert_allclose(P[2, 2], 1.0 + 0.2 * 2.0)


@pytest.mark.parametrize("field,value", [("acceleration_psd", 0.0), ("gate", math.inf), ("doubt_gate", 30.0),
                                         ("switch_prior", 1.0), ("reidentify_gap", -1.0),
                                         ("max_prediction", True), ("turn_psd", -0.1), ("sway_share", 1.5),
                                         ("sway_share", math.nan), ("sway_time", 0.0)])
def test_bad_motion_settings_name_the_field(field, value):
    with pytest.raises(GroundConfigError) as info:
        MotionConfig(**{field: value})
    assert info.value.field == field


def test_feet_cut_off_by_the_image_bottom_are_placed_by_the_head_once_the_height_is_known():
    tracker = GroundTracker()
    for k in range(6):                                   # far enough for the feet to show: height learnt
        tracker.update(k * 0.1, [_track(2, 0)], _box(np.array([6.0, 0.3]), stature=1.8)[None], PROJECTOR)
    near = np.array([1.9, 0.3])
    box = _box(near, stature=1.8)
    assert box[3] > CAMERA.height                        # the feet are below the image
    box[3] = CAMERA.height
    measurements = PROJECTOR.project(box[None])
    assert measurements.refusals[0] == Refusal.TRUNCATED
    positions, covariances, _, refusals = PROJECTOR.head_points(box[None], np.array([1.8]), np.array([0.03]))
    assert refusals[0] == Refusal.NONE
    np.testing.assert_allclose(positions[0], near, atol=0.02)
    fresh = GroundTracker()                              # without a known height there is no measurement
    assert fresh.update(0.0, [_track(3, 0)], box[None], PROJECTOR)[3].refusal == Refusal.TRUNCATED
    walker, cut = GroundTracker(), 0                     # walking up to the camera: the filter keeps measuring
    for k in range(31):
        truth = np.array([3.5 - 0.07 * k, 0.3])
        box = _box(truth, stature=1.8)
        cut += box[3] > CAMERA.height
        box[3] = min(box[3], CAMERA.height)
        estimate = walker.update(k * 0.1, [_track(4, 0)], box[None], PROJECTOR)[4]
    assert cut > 5 and estimate.status == GroundStatus.MEASURED
    np.testing.assert_allclose(estimate.position, truth, atol=0.05)


def _sway_walks(model_sway: bool, seed: int, runs: int = 20, steps: int = 150, dt: float = 0.04
                ) -> tuple[np.ndarray, float]:
    """A linear-Gaussian walker (white acceleration) whose foot point errs by a sway that is a
    first-order Gauss-Markov process (1 s correlation time, 0.16 m std, mostly sideways) plus 5 cm
    of white noise, measured at 25 Hz; the filter is told the whole error covariance, and either
    the sway (``model_sway``) or nothing about its correlation. -> (4-dof NEES after 2 s, velocity RMS)."""
    rng = np.random.default_rng(seed)
    psd, tau, sway, white = 0.01, 1.0, np.array([0.05, 0.15]), 0.05
    R = np.eye(2) * white**2 + np.outer(sway, sway)
    keep = math.exp(-dt / tau)
    nees, squares = [], []
    for _ in range(runs):
        state, s = np.array([6.0, 1.0, -0.8, 0.3]), rng.normal()
        accelerations = rng.normal(0.0, math.sqrt(psd / dt), (steps, 2))
        f = None
        for k in range(steps):
            if k:
                state[2:] += accelerations[k] * dt
                state[:2] += state[2:] * dt
                s = keep * s + math.sqrt(1.0 - keep**2) * rng.normal()
            point = FootPoint(state[:2] + sway * s + rng.normal(0.0, white, 2), R, sway if model_sway else np.zeros(2))
            if f is None:
                f = ConstantVelocityFilter(point, 0.0, psd, speed_sigma=1.0, sway_time=tau)
            else:
                f.predict(k * dt)
                f.update(point)
            if k * dt >= 2.0:
                error = np.concatenate([f.x[:2] - state[:2], f.x[2:4] - state[2:]])
                nees.append(error @ np.linalg.solve(f.P[:4, :4], error))
                squares.append(error[2:] @ error[2:])
    return np.asarray(nees), math.sqrt(np.mean(squares))


def test_a_correlated_sway_as_a_state_gives_consistent_covariances_and_a_better_velocity():
    """The sway state makes the filter consistent where the error is correlated over frames (NEES
    with the chi-square's mean and band coverage) and its velocity at least 7% better than a filter
    that takes the same error as white, which is badly overconfident (NEES several times 4)."""
    lo, hi = chi2.ppf([0.025, 0.975], 4)
    for seed in (1, 2):
        nees, rms = _sway_walks(True, seed)
        white_nees, white_rms = _sway_walks(False, seed)
        assert 3.2 < nees.mean() < 5.0 and 0.9 < np.mean((nees > lo) & (nees < hi)) < 0.99
        assert white_nees.mean() > 10.0 and np.mean((white_nees > lo) & (white_nees < hi)) < 0.7
        assert rms < 0.93 * white_rms


def test_the_sway_follows_elapsed_time_so_any_frame_rate_predicts_alike():
    """Predicting 1 s in 25 steps or in one gives the same state and covariance (the sway decays as
    exp(-t / sway_time) whatever the steps; without turning, the constant-velocity part composes too)."""
    point = FootPoint(np.array([5.0, 1.0]), np.diag([0.04, 0.02]), np.array([0.03, 0.1]))
    stepped, once = (ConstantVelocityFilter(point, 0.0, 0.02, speed_sigma=1.0, sway_time=0.7) for _ in range(2))
    for f in (stepped, once):
        f.x[2:] = (0.8, -0.4, 0.5)
    for k in range(1, 26):
        stepped.predict(k * 0.04)
    once.predict(1.0)
    np.testing.assert_allclose(stepped.x, once.x, atol=1e-12)
    np.testing.assert_allclose(stepped.P, once.P, atol=1e-12)
    assert once.x[4] == pytest.approx(0.5 * math.exp(-1.0 / 0.7))
    assert once.P[4, 4] == pytest.approx(1.0)      # unit variance: stationary


def test_turning_noise_grows_the_velocity_across_the_walking_direction():
    """A walker going along x at 1.5 m/s (velocity std 0.01 m/s per axis): over 1 s the velocity's
    variance grows by psd + turn_psd * 0.01^2 along it (turning its uncertain sideways part) and by
    psd + turn_psd * (speed^2 + 0.01^2) across it."""
    f = ConstantVelocityFilter(FootPoint(np.zeros(2), np.eye(2) * 0.01, np.zeros(2)), 0.0, 0.005, speed_sigma=0.01,
                               sway_time=1.0, turn_psd=0.02)
    f.x[2:4] = (1.5, 0.0)
    _, P = f.predicted(1.0)
    assert P[2, 2] == pytest.approx(0.01**2 + 0.005 + 0.02 * 0.01**2)
    assert P[3, 3] == pytest.approx(0.01**2 + 0.005 + 0.02 * (1.5**2 + 0.01**2))
    assert P[2, 3] == pytest.approx(0.0, abs=1e-15)


def _swaying_walker_velocity_rms(config: MotionConfig, seed: int, runs: int = 16, steps: int = 125) -> float:
    """Velocity RMS (after 1 s) of ``GroundTracker`` on walkers at 4-8 m, 0.8-1.5 m/s, turning with a
    white heading rate (0.14 rad/sqrt(s)), at 25 Hz, whose boxes' centre column sways by 3% of the
    box width (a Gauss-Markov process with a 1 s correlation time) on top of the white box noise."""
    rng = np.random.default_rng(seed)
    dt, keep = 0.04, math.exp(-0.04)
    squares = []
    for _ in range(runs):
        tracker = GroundTracker(config)
        heading, speed = rng.uniform(-math.pi, math.pi), rng.uniform(0.8, 1.5)
        position, sway = np.array([rng.uniform(4.0, 8.0), rng.uniform(-1.5, 1.5)]), rng.normal()
        for k in range(steps):
            if k:
                heading += rng.normal(0.0, 0.14 * math.sqrt(dt))
                position = position + speed * np.array([math.cos(heading), math.sin(heading)]) * dt
                sway = keep * sway + math.sqrt(1.0 - keep**2) * rng.normal()
            box = _box(position)
            du, dv = rng.normal(0.0, NOISE.foot_sigma(box[None])[0]) + (0.03 * (box[2] - box[0]) * sway, 0.0)
            estimate = tracker.update(k * dt, [_track(1, 0)], (box + np.array([du, 0.0, du, dv]))[None], PROJECTOR)[1]
            if estimate.refusal != Refusal.NONE:   # walked out of view
                break
            if k * dt >= 1.0:
                truth = speed * np.array([math.cos(heading), math.sin(heading)])
                squares.append(np.sum((estimate.velocity - truth) ** 2))
    assert len(squares) > 0.8 * runs * (steps - 25)
    return math.sqrt(np.mean(squares))


def test_turning_walkers_with_a_swaying_foot_point_get_a_better_velocity_than_the_white_isotropic_filter():
    """The default filter (heading-rate noise, low isotropic acceleration, the sway as a state) beats
    the previous default (isotropic white acceleration of 0.05 m^2/s^3, white foot point error) by
    more than 10% in velocity RMS on the same walkers and boxes."""
    previous = MotionConfig(acceleration_psd=0.05, turn_psd=0.0, sway_share=0.0)
    assert _swaying_walker_velocity_rms(MotionConfig(), 3) < 0.9 * _swaying_walker_velocity_rms(previous, 3)


def test_a_restart_among_people_whose_feet_are_cut_off_keeps_placing_them_by_the_head():
    """Near the image bottom a track is placed by its head under its known standing height. When
    the 2D tracker hands it to a neighbour of that height 0.8 m to the side (an outlier: the track
    restarts there at once), the restart inherits the heights seen, so the neighbour, whose feet
    are cut off too, is still measured every frame instead of being refused as truncated."""
    tracker = GroundTracker()
    for k in range(51):
        person = np.array([6.0 - 0.1 * k, 0.3]) if k < 43 else np.array([1.8 - 0.05 * (k - 43), -0.5])
        box = _box(person, stature=1.8)
        box[3] = min(box[3], CAMERA.height)
        estimate = tracker.update(k * 0.1, [_track(2, 0)], box[None], PROJECTOR)[2]
        assert estimate.status == GroundStatus.MEASURED and estimate.refusal == Refusal.NONE
        if k >= 42:
            assert box[3] == CAMERA.height               # the feet are below the image
        if k >= 43:
            assert estimate.started == pytest.approx(4.3)
            np.testing.assert_allclose(estimate.position, person, atol=0.15)
