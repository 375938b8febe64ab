"""Ground projection: hand-computed cases, distortion models, pose forms, refusals, covariance."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from smiletrack_ros.ground import (
    CameraModel,
    CameraModelError,
    CameraPose,
    CameraPoseError,
    GroundConfigError,
    GroundProjector,
    PixelNoise,
    ProjectionConfig,
    Refusal,
)

F, CX, CY = 500.0, 320.0, 240.0
K = [[F, 0.0, CX], [0.0, F, CY], [0.0, 0.0, 1.0]]


def _camera(model: str = "plumb_bob", D=(), width: int = 640, height: int = 480) -> CameraModel:
    return CameraModel(K=K, D=list(D), distortion_model=model, width=width, height=height)


def _box_with_foot(u: float, v: float, height_px: float = 60.0) -> np.ndarray:
    return np.array([[u - 10.0, v - height_px, u + 10.0, v]])


def _looking_down(height: float) -> CameraPose:
    """Optical z straight down, optical x along -y (image right = robot right), image down = -x."""
    T = np.eye(4)
    T[:3, :3] = np.column_stack([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    T[:3, 3] = (0.0, 0.0, height)
    return CameraPose(T)


def test_camera_looking_straight_down_maps_pixels_by_similar_triangles():
    projector = GroundProjector(_camera(), _looking_down(2.0))
    pixels = np.array([[CX, CY], [CX + 100.0, CY], [CX, CY + 50.0], [CX - 250.0, CY - 200.0]])
    points, refusals = projector.floor_points(pixels)
    # a pixel (du, dv) from the centre sees (du, dv) / f at unit depth; 2 m down that is 2 (du, dv) / f
    expected = np.array([[0.0, 0.0, 0.0], [0.0, -0.4, 0.0], [-0.2, 0.0, 0.0], [0.8, 1.0, 0.0]])
    np.testing.assert_allclose(points, expected, atol=1e-12)
    assert np.all(refusals == Refusal.NONE)


def test_covariance_looking_down_is_the_scaled_pixel_noise():
    noise = PixelNoise(x_fraction=0.0, y_fraction=0.0, floor_px=2.0)
    projector = GroundProjector(_camera(), _looking_down(2.0),
                                ProjectionConfig(noise=noise, min_height=0.01, max_height=100.0))
    m = projector.project(np.array([[CX - 10.0, 0.0, CX + 10.0, CY + 100.0]]))   # head out of view: no height
    assert m.refusals[0] == Refusal.NONE and np.isnan(m.heights[0])
    metres_per_pixel = 2.0 / F
    np.testing.assert_allclose(m.covariances[0], np.eye(2) * (2.0 * metres_per_pixel) ** 2, rtol=1e-6, atol=1e-15)


@pytest.mark.parametrize("pitch_deg,row", [(10.0, CY), (10.0, CY + 80.0), (20.0, CY - 50.0), (5.0, CY + 200.0)])
def test_pitched_camera_range_follows_the_angle_below_the_horizon(pitch_deg, row):
    height, pitch = 1.5, math.radians(pitch_deg)
    projector = GroundProjector(_camera(), CameraPose.from_mounting(height, pitch))
    points, refusals = projector.floor_points(np.array([[CX, row], [CX + 120.0, row]]))
    below = pitch + math.atan((row - CY) / F)
    assert np.all(refusals == Refusal.NONE)
    np.testing.assert_allclose(points[0], [height / math.tan(below), 0.0, 0.0], atol=1e-9)
    # optical ray (a, b, 1) in the body frame is (1, -a, -b), pitched down: it meets the floor at
    # t = h / (sin p + b cos p); x = t (cos p - b sin p) is the same along a row, y = -a t
    a, b = 120.0 / F, (row - CY) / F
    t = height / (math.sin(pitch) + b * math.cos(pitch))
    np.testing.assert_allclose(points[1], [t * (math.cos(pitch) - b * math.sin(pitch)), -a * t, 0.0], atol=1e-9)


def test_rays_above_the_horizon_are_refused_and_near_it_too_far():
    height, pitch = 1.5, math.radians(10.0)
    projector = GroundProjector(_camera(), CameraPose.from_mounting(height, pitch))
    horizon_row = CY - F * math.tan(pitch)
    m = projector.project(np.vstack([_box_with_foot(CX, horizon_row - 5.0), _box_with_foot(CX, horizon_row + 0.5),
                                     _box_with_foot(CX, horizon_row + 60.0, height_px=40.0)]))
    assert m.refusals[0] == Refusal.ABOVE_HORIZON
    assert m.refusals[1] == Refusal.TOO_FAR
    assert m.refusals[2] == Refusal.NONE and np.all(np.isfinite(m.positions[2]))
    assert np.all(np.isnan(m.positions[:2])) and np.all(np.isnan(m.covariances[:2]))
    far = ProjectionConfig(max_range=5.0)
    assert GroundProjector(_camera(), CameraPose.from_mounting(height, pitch), far).project(
    _box_with_foot(CX, horizon_row + 60.0, height_px=40.0)).refusals[0] == Refusal.TOO_FAR


def _true_box(camera: CameraModel, pose: CameraPose, x: float, y: float, stature: float) -> np.ndarray:
    """The box around an upright person at (x, y): from the head's row to the feet's, centred between
    their columns (the image of a vertical leans in a pitched camera)."""
    feet, head = camera.project(pose.to_optical(np.array([[x, y, 0.0], [x, y, stature]])))
    middle = 0.5 * (feet[0] + head[0])
    return np.array([[middle - 15.0, head[1], middle + 15.0, feet[1]]])


def test_height_estimate_and_implausible_heights():
    camera, pose = _camera(), CameraPose.from_mounting(1.6, math.radians(12.0))
    projector = GroundProjector(camera, pose)
    implausible = Refusal.IMPLAUSIBLE_HEIGHT
    for stature, refusal in ((1.75, Refusal.NONE), (0.4, implausible), (3.2, implausible)):
        m = projector.project(_true_box(camera, pose, 6.0, 0.0, stature))
        assert m.refusals[0] == refusal, stature
        if refusal == Refusal.NONE:
            assert m.heights[0] == pytest.approx(stature, abs=1e-6)
            np.testing.assert_allclose(m.positions[0], [6.0, 0.0], atol=1e-9)


def test_cut_off_boxes_are_truncated_and_a_cut_off_head_gives_no_height():
    camera, pose = _camera(), CameraPose.from_mounting(1.6, math.radians(12.0))
    projector = GroundProjector(camera, pose)
    m = projector.project(np.array([[300.0, 200.0, 340.0, 480.0], [0.0, 100.0, 640.0, 400.0],
                                    [300.0, 0.0, 340.0, 400.0], [np.nan, 0.0, 1.0, 2.0], [10.0, 10.0, 5.0, 20.0]]))
    assert list(m.refusals) == [Refusal.TRUNCATED] * 2 + [Refusal.NONE, Refusal.INVALID_BOX, Refusal.INVALID_BOX]
    assert np.isnan(m.heights[2]) and np.all(np.isfinite(m.positions[2]))


def test_a_box_cut_by_a_side_has_its_feet_half_a_person_in_from_the_uncut_edge():
    camera, pose = _camera(), CameraPose.from_mounting(1.6, math.radians(12.0))
    projector = GroundProjector(camera, pose)
    feet, head = camera.project(pose.to_optical(np.array([[4.0, 2.6, 0.0], [4.0, 2.6, 1.7]])))
    box_h, middle = feet[1] - head[1], 0.5 * (feet[0] + head[0])
    whole = np.array([[middle - 0.2 * box_h, head[1], middle + 0.2 * box_h, feet[1]]])   # 0.4 h wide
    cut = whole.copy()
    cut[0, 0] = 0.0
    assert whole[0, 0] < 0 < cut[0, 2]
    middle, clipped = projector.project(_true_box(camera, pose, 4.0, 0.0, 1.7)), projector.project(cut)
    assert clipped.refusals[0] == Refusal.NONE
    np.testing.assert_allclose(clipped.positions[0], [4.0, 2.6], atol=1e-3)
    assert clipped.covariances[0][1, 1] > 2.0 * middle.covariances[0][1, 1]   # less sure of the side position


DISTORTIONS = [("plumb_bob", (-0.28, 0.09, 0.001, -0.0008, -0.012)),
               ("rational_polynomial", (0.4, -0.1, 0.0005, 0.0003, 0.01, 0.75, -0.05, 0.02)),
               ("equidistant", (-0.02, 0.004, -0.001, 0.0002))]


@pytest.mark.parametrize("model,D", DISTORTIONS)
def test_distorted_pixels_land_where_the_floor_points_are(model, D):
    camera = _camera(model, D)
    pose = CameraPose.from_mounting(1.4, math.radians(15.0), roll=math.radians(3.0))
    truth = np.array([[2.0, 1.5, 0.0], [4.0, -2.0, 0.0], [8.0, 0.5, 0.0], [3.0, 2.4, 0.0], [12.0, -4.0, 0.0]])
    pixels = camera.project(pose.to_optical(truth))
    assert np.all((pixels >= 0) & (pixels < [640, 480]))
    points, refusals = GroundProjector(camera, pose).floor_points(pixels)
    assert np.all(refusals == Refusal.NONE)
    assert np.max(np.linalg.norm(points - truth, axis=1) / np.linalg.norm(truth, axis=1)) < 1e-6
    # ignoring the distortion puts them elsewhere (so the test above can fail)
    plain, _ = GroundProjector(_camera(), pose).floor_points(pixels)
    assert np.max(np.linalg.norm(plain - truth, axis=1)) > 0.05


def test_fisheye_rays_past_ninety_degrees_are_behind_the_camera():
    camera = _camera("equidistant", (0.0, 0.0, 0.0, 0.0), width=2000, height=2000)
    theta = math.radians(100.0)
    pixel = np.array([[CX, CY + F * theta]])     # equidistant: radius = f * theta
    ray = camera.rays(pixel)[0]
    np.testing.assert_allclose(ray, [0.0, math.sin(theta), math.cos(theta)], atol=1e-12)
    _, refusals = GroundProjector(camera, CameraPose.from_mounting(1.5, math.radians(10.0))).floor_points(pixel)
    assert refusals[0] == Refusal.BEHIND_CAMERA


def _urdf_transform(height, pitch, roll, yaw, x, y) -> np.ndarray:
    """base_link -> camera_link (xyz, rpy), then REP 103's camera_link -> optical (rpy -pi/2, 0, -pi/2)."""
    link = np.eye(4)
    link[:3, :3] = Rotation.from_euler("xyz", [roll, pitch, yaw]).as_matrix()   # extrinsic x, y, z = URDF rpy
    link[:3, 3] = (x, y, height)
    optical = np.eye(4)
    optical[:3, :3] = Rotation.from_euler("xyz", [-math.pi / 2, 0.0, -math.pi / 2]).as_matrix()
    return link @ optical


@pytest.mark.parametrize("mounting", [(1.5, 0.2, 0.0, 0.0, 0.0, 0.0), (1.2, 0.09, -0.05, 0.3, 0.4, -0.1),
                                      (2.0, 0.35, 0.08, -1.2, -0.2, 0.3)])
def test_height_pitch_roll_is_the_same_pose_as_its_transform(mounting):
    camera = _camera("plumb_bob", DISTORTIONS[0][1])
    by_mounting = CameraPose.from_mounting(*mounting)
    by_transform = CameraPose(_urdf_transform(*mounting))
    np.testing.assert_allclose(by_mounting.matrix, by_transform.matrix, atol=1e-12)
    boxes = np.array([[100.0, 150.0, 140.0, 300.0], [300.0, 200.0, 330.0, 420.0], [500.0, 180.0, 530.0, 330.0]])
    a = GroundProjector(camera, by_mounting).project(boxes)
    b = GroundProjector(camera, by_transform).project(boxes)
    np.testing.assert_array_equal(a.refusals, b.refusals)
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-9)
    np.testing.assert_allclose(a.covariances, b.covariances, rtol=1e-6, atol=1e-12)


def test_covariance_matches_the_spread_of_noisy_foot_points():
    """Straight ahead (the person's image does not lean, see the next test) the covariance is the
    pixel noise's alone, and matches the spread of projected noisy boxes."""
    camera, pose = _camera(), CameraPose.from_mounting(1.5, math.radians(8.0))
    noise = PixelNoise(x_fraction=0.03, y_fraction=0.03, floor_px=0.5)
    projector = GroundProjector(camera, pose, ProjectionConfig(noise=noise))
    box = _true_box(camera, pose, 7.0, 0.0, 1.7)
    predicted = projector.project(box).covariances[0]
    rng = np.random.default_rng(4)
    sigma = noise.foot_sigma(box)[0]
    n = 4000
    jittered = np.repeat(box, n, axis=0)
    du, dv = rng.normal(0.0, sigma[0], n), rng.normal(0.0, sigma[1], n)
    jittered[:, [0, 2]] += du[:, None]
    jittered[:, 3] += dv
    m = projector.project(jittered)
    usable = m.usable
    assert usable.mean() > 0.99
    sample = np.cov(m.positions[usable].T)
    np.testing.assert_allclose(sample, predicted, rtol=0.12, atol=1e-4)
    # the range spread grows with range: farther people are less certain
    farther = projector.project(_true_box(camera, pose, 14.0, 0.0, 1.7)).covariances[0]
    assert np.trace(farther) > 2.0 * np.trace(predicted)


def test_a_leaning_image_is_centred_between_head_and_feet_and_less_certain_across():
    camera, pose = _camera(), CameraPose.from_mounting(1.5, math.radians(20.0))
    projector = GroundProjector(camera, pose)
    feet, head = camera.project(pose.to_optical(np.array([[4.0, 2.0, 0.0], [4.0, 2.0, 1.7]])))
    assert abs(head[0] - feet[0]) > 10.0                      # off to the side, a pitched camera sees it lean
    m = projector.project(_true_box(camera, pose, 4.0, 2.0, 1.7))
    np.testing.assert_allclose(m.positions[0], [4.0, 2.0], atol=5e-3)   # two rounds of the lean: mm
    upright = projector.project(_true_box(camera, pose, 4.0, 0.0, 1.7))
    assert m.covariances[0][1, 1] > 1.5 * upright.covariances[0][1, 1]


def test_camera_info_message_and_mapping():
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo(width=640, height=480, distortion_model="rational_polynomial", d=[0.1] * 8,
                     k=[F, 0.0, CX, 0.0, F, CY, 0.0, 0.0, 1.0])
    camera = CameraModel.from_camera_info(msg)
    assert camera.distortion_model == "rational_polynomial" and camera.D.shape == (8,) and camera.K[0, 2] == CX
    plain = CameraModel.from_camera_info({"K": K, "D": [], "distortion_model": "", "width": 64, "height": 48})
    assert plain.distortion_model == "plumb_bob" and not plain.distorted and plain.D.shape == (5,)


@pytest.mark.parametrize("fields,name", [({"K": [[F, 0, CX], [0, -F, CY], [0, 0, 1]]}, "K"), ({"K": [1, 2]}, "K"),
                                         ({"distortion_model": "fov"}, "distortion_model"),
                                         ({"D": [0.1] * 9}, "D"), ({"D": [math.nan]}, "D"), ({"width": 0}, "width"),
                                         ({"height": 1e9}, "height")])
def test_bad_camera_descriptions_name_the_field(fields, name):
    base = {"K": K, "D": [], "distortion_model": "plumb_bob", "width": 640, "height": 480}
    with pytest.raises(CameraModelError) as info:
        CameraModel(**{**base, **fields})
    assert info.value.field == name


def test_bad_poses_and_settings_name_the_field():
    with pytest.raises(CameraPoseError, match="height"):
        CameraPose.from_mounting(-1.0, 0.1)
    with pytest.raises(CameraPoseError, match="pitch"):
        CameraPose.from_mounting(1.0, 2.0)
    skewed = np.eye(4)
    skewed[0, 1], skewed[2, 3] = 0.5, 1.0
    with pytest.raises(CameraPoseError, match="rotation"):
        CameraPose(skewed)
    with pytest.raises(GroundConfigError, match="min_height"):
        ProjectionConfig(min_height=3.0)
    with pytest.raises(GroundConfigError, match="floor_px"):
        PixelNoise(floor_px=0.0)


def test_low_score_detections_are_not_measured():
    camera, pose = _camera(), CameraPose.from_mounting(1.6, math.radians(12.0))
    projector = GroundProjector(camera, pose, ProjectionConfig(min_score=0.6))
    boxes = np.vstack([_true_box(camera, pose, 5.0, 0.0, 1.7)] * 3)
    m = projector.project(boxes, np.array([0.9, 0.59, np.nan]))
    assert list(m.refusals) == [Refusal.NONE, Refusal.LOW_SCORE, Refusal.LOW_SCORE]
    assert projector.project(boxes).usable.all()   # no scores: every box is measured
