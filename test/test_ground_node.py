"""The node's ground output over real DDS: images + camera_info in, Detection3DArray + MarkerArray out.

The node runs as a process (conftest's ``ros_nodes``, driven by its ``RosClient``) with external
detections: boxes made by projecting people standing at known floor positions through the
camera that the camera_info and the ground.camera_* parameters describe.
"""
import math

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
pytest.importorskip("visualization_msgs.msg")
from sensor_msgs.msg import CameraInfo  # noqa: E402
from smiletrack_ros.msg import Track  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import Detection3DArray  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from smiletrack_ros.ground import CameraModel, CameraPose  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
WIDTH, HEIGHT = 640, 480
K = [420.0, 0.0, 320.0, 0.0, 420.0, 240.0, 0.0, 0.0, 1.0]
CAMERA = CameraModel(K=K, D=[0.0] * 5, distortion_model="plumb_bob", width=WIDTH, height=HEIGHT)
POSE = CameraPose.from_mounting(1.4, math.radians(12.0))
PARAMS = {"detector.backend": "external", "embedder.enabled": False, "diagnostics_period": 0.2,
          "input_qos.depth": 5, "input_qos.reliability": "reliable", "class_names": ["person"],
          "tracker.preset": "bytetrack",
          "ground.enabled": True, "ground.target_frame": "base_footprint", "ground.camera_height": 1.4,
          "ground.camera_pitch_deg": 12.0}
PEOPLE = {"a": (np.array([5.0, 0.8]), np.array([-0.6, 0.3])), "b": (np.array([8.0, -1.5]), np.array([0.4, 0.5]))}
IMAGE = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)


def _box(position: np.ndarray, stature: float = 1.75) -> np.ndarray:
    """The box around an upright person's image (centred between the head's and feet's columns)."""
    feet, head = CAMERA.project(POSE.to_optical(np.array([[*position, 0.0], [*position, stature]])))
    half, middle = 0.2 * (feet[1] - head[1]), 0.5 * (feet[0] + head[0])
    return np.array([middle - half, head[1], middle + half, feet[1]])


def _ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _send(client, stamp: float, boxes: np.ndarray, camera_info: bool) -> Header:
    info = CameraInfo(width=WIDTH, height=HEIGHT, k=K, d=[0.0] * 5, distortion_model="plumb_bob")
    return client.send(stamp, boxes, image=IMAGE, frame_id="camera_optical", camera_info=info if camera_info else None)


@pytest.fixture
def running(ros_nodes):
    """Starts the node on its own domain -> (client, its outputs by kind: 2d, 3d, markers, full)."""
    with ros_nodes.connected(PARAMS, camera_info=True, timeout=25.0) as (client, node):
        yield client, {"2d": client.tracks, "full": client.full, "3d": client.collect(Detection3DArray, "tracks_3d"),
                       "markers": client.collect(MarkerArray, "tracks_markers", lambda m: m.markers[0].header)}
        print(node.output()[-3000:])   # shown when the test failed


def _walk(client, frames: int, camera_info: bool, fps: float = 10.0) -> list[tuple[Header, dict]]:
    sent = []
    for k in range(frames):
        t = 100.0 + k / fps
        truth = {name: p + v * (k / fps) for name, (p, v) in PEOPLE.items()}
        header = _send(client, t, np.stack([_box(p) for p in truth.values()]), camera_info)
        assert client.spin_until(lambda h=header: _ns(h) in client.tracks, 5.0), f"no 2D tracks for frame {k}"
        sent.append((header, truth))
    return sent


def test_camera_info_gives_3d_detections_and_markers_with_the_2d_ids(running):
    client, out = running
    sent = _walk(client, 20, camera_info=True)
    client.spin_until(lambda: all(_ns(h) in out["markers"] and _ns(h) in out["full"]
                                  for h, _ in sent[2:]), 5.0)
    checked = 0
    for header, truth in sent[2:]:           # tracks are confirmed from the second frame
        stamp = _ns(header)
        two_d, three_d, markers = out["2d"][stamp], out["3d"][stamp], out["markers"][stamp]
        assert three_d.header.frame_id == "base_footprint" and _ns(three_d.header) == stamp
        assert sorted(d.id for d in three_d.detections) == sorted(d.id for d in two_d.detections)
        assert len(three_d.detections) == 2
        for d in three_d.detections:
            position = np.array([d.bbox.center.position.x, d.bbox.center.position.y])
            error = min(np.linalg.norm(position - p) for p in truth.values())
            assert error < 0.05, (d.id, position, truth)   # noiseless boxes: the filter sits on the truth
            assert 1.6 < d.bbox.size.z < 1.9 and d.bbox.center.position.z == pytest.approx(d.bbox.size.z / 2)
        assert markers.markers[0].action == Marker.DELETEALL
        assert {m.header.frame_id for m in markers.markers} == {"base_footprint"}
        assert sorted(str(m.id) for m in markers.markers if m.ns == "ids") == sorted(d.id for d in two_d.detections)
        checked += 1
    assert checked >= 15
    header, truth = sent[-1]
    full = out["full"][_ns(header)]
    measured = [t for t in full.tracks if t.ground_status == Track.GROUND_MEASURED]
    assert len(measured) == 2
    for t in measured:       # velocity after 1.8 s of noiseless walking
        v = np.array([t.ground_velocity_x, t.ground_velocity_y])
        assert min(np.linalg.norm(v - pv) for _, pv in PEOPLE.values()) < 0.1
        assert np.all(np.isfinite(t.ground_covariance)) and t.ground_covariance[0] > 0


def test_without_camera_info_no_3d_output_a_diagnostic_and_2d_unaffected(running):
    client, out = running
    sent = _walk(client, 8, camera_info=False)
    client.spin_until(lambda: _ns(sent[-1][0]) in out["full"], 5.0)
    assert all(len(out["2d"][_ns(h)].detections) == 2 for h, _ in sent[2:])
    assert client.spin_until(lambda: any("no camera_info" in d.status[0].message for d in client.diagnostics
                                         if d.status), 5.0)
    client.spin_until(lambda: False, 0.5)
    assert out["3d"] == {} and out["markers"] == {}
    last = out["full"][_ns(sent[-1][0])]
    assert {(t.ground_status, t.ground_refusal) for t in last.tracks} == {(Track.GROUND_NONE,
                                                                         Track.REFUSAL_NO_CAMERA_MODEL)}
    values = client.counters
    assert values["ground_camera_info_received"] == "0" and int(values["ground_frames_without_camera_info"]) >= 8
