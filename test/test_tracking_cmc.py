"""Camera-motion compensation: the estimator recovers a known camera shift, and the
tracker keeps an ID through a sudden camera jump only with compensation on."""
import numpy as np
import pytest

from smiletrack_ros.tracking import SmileTracker, TrackerConfig

cv2 = pytest.importorskip("cv2")


def texture(seed=0, size=(480, 800)):
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (size[0] // 8, size[1] // 8)).astype(np.float32)
    big = cv2.resize(noise, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    return np.repeat(np.clip(big, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def view(world, x0, y0, w=320, h=240):
    """The camera's image when its top-left corner looks at world pixel (x0, y0)."""
    return np.ascontiguousarray(world[y0:y0 + h, x0:x0 + w])


def test_estimator_recovers_a_camera_shift():
    from smiletrack_ros.tracking.cmc import CameraMotionEstimator

    world = texture()
    est = CameraMotionEstimator(downscale=2)
    np.testing.assert_allclose(est.estimate(view(world, 100, 100)), np.eye(2, 3))  # first frame
    affine = est.estimate(view(world, 112, 94))  # camera moved right 12, up 6: content moves left 12, down 6
    np.testing.assert_allclose(affine[:, :2], np.eye(2), atol=0.02)
    np.testing.assert_allclose(affine[:, 2], [-12, 6], atol=1.0)
    np.testing.assert_allclose(est.estimate(view(world, 112, 94, w=300)), np.eye(2, 3))  # size change


def test_camera_jump_keeps_the_id_only_with_compensation():
    world = texture(1)

    def run(cmc):
        trk = SmileTracker(TrackerConfig.from_preset("bytetrack", cmc=cmc))
        person = np.array([[150.0, 60, 170, 160]])  # a standing person, 20 px wide, in camera 1's image
        for _ in range(4):
            out = trk.update(person, np.array([0.9]), image=view(world, 200, 150))
        # The camera jerks 30 px to the right: everything in the image moves 30 px left.
        out = trk.update(person - [30, 0, 30, 0], np.array([0.9]), image=view(world, 230, 150))
        return [t.track_id for t in out]

    assert run(cmc=True) == [1]
    assert run(cmc=False) == []  # no overlap with the old place: a new, unconfirmed track


def test_cmc_without_an_image_warns_and_tracks_on(caplog):
    trk = SmileTracker(TrackerConfig.from_preset("bytetrack", cmc=True))
    for k in range(3):
        out = trk.update(np.array([[10.0 + k, 10, 50 + k, 90]]), np.array([0.9]))
    assert [t.track_id for t in out] == [1]
    assert sum("no image" in r.getMessage() for r in caplog.records) == 1


def test_tracking_core_imports_neither_opencv_torch_nor_ros(repo_dir):
    import subprocess
    import sys

    code = ("import sys, numpy as np, smiletrack_ros.tracking as t; "
            "t.SmileTracker(t.TrackerConfig()).update(np.zeros((0, 4)), np.zeros(0)); "
            "print(sorted(m for m in ('cv2', 'torch', 'rclpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=repo_dir, capture_output=True, text=True,
                            env={"PYTHONPATH": str(repo_dir), "PATH": ""}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
