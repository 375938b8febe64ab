"""The node's ground output over real DDS: images + camera_info in, Detection3DArray + MarkerArray out.

The node runs as a process (the installed package, cwd outside the repo) with external
detections: boxes made by projecting people standing at known floor positions through the
camera that the camera_info and the ground.camera_* parameters describe.
"""
import math
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
pytest.importorskip("visualization_msgs.msg")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from smiletrack_ros.msg import Track, TrackArray  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import Detection2DArray, Detection3DArray  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from smiletrack_ros.detections import Detections  # noqa: E402
from smiletrack_ros.ground import CameraModel, CameraPose  # noqa: E402
from smiletrack_ros.image_codec import bgr_to_raw_fields  # noqa: E402
from smiletrack_ros.ros.messages import detection_array_message  # noqa: E402
from smiletrack_ros.ros.process import node_command, same_package_env  # noqa: E402

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


def _domain(offset: int) -> int:
    return (int(os.environ["ROS_DOMAIN_ID"]) + 120 + offset) % 200 + 1


def _box(position: np.ndarray, stature: float = 1.75) -> np.ndarray:
    """The box around an upright person's image (centred between the head's and feet's columns)."""
    feet, head = CAMERA.project(POSE.to_optical(np.array([[*position, 0.0], [*position, stature]])))
    half, middle = 0.2 * (feet[1] - head[1]), 0.5 * (feet[0] + head[0])
    return np.array([middle - half, head[1], middle + half, feet[1]])


def _header(stamp: float) -> Header:
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
    return header


def _ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class Harness:
    def __init__(self, domain: int):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("ground_test_harness", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "image", reliable)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", reliable)
        self.det_pub = self.node.create_publisher(Detection2DArray, "detections", reliable)
        self.out: dict[str, dict[int, object]] = {"2d": {}, "3d": {}, "markers": {}, "full": {}}
        for kind, msg_type, topic in (("2d", Detection2DArray, "tracks"), ("3d", Detection3DArray, "tracks_3d"),
                                      ("markers", MarkerArray, "tracks_markers"), ("full", TrackArray, "tracks_full")):
            self.node.create_subscription(msg_type, topic, self._store(kind), reliable)
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def _store(self, kind):
        def store(msg):
            header = msg.markers[0].header if kind == "markers" else msg.header
            self.out[kind][_ns(header)] = msg
        return store

    def spin_until(self, condition, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def send(self, stamp: float, boxes: np.ndarray, camera_info: bool) -> Header:
        header = _header(stamp)
        if camera_info:
            self.info_pub.publish(CameraInfo(header=header, width=WIDTH, height=HEIGHT, k=K, d=[0.0] * 5,
                                             distortion_model="plumb_bob"))
        n = len(boxes)
        dets = Detections(boxes.astype(np.float32), np.full(n, 0.9, np.float32), np.zeros(n, np.int64))
        self.det_pub.publish(detection_array_message(header, dets, ("person",)))
        image = Image(header=header, **bgr_to_raw_fields(np.full((HEIGHT, WIDTH, 3), 90, np.uint8)))
        self.image_pub.publish(image)
        return header

    def close(self):
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def running(tmp_path, request):
    """Starts the node on its own domain (parametrised: with camera_info or without)."""
    domain = _domain(request.param)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": PARAMS}}))
    env = same_package_env(dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                                PYTHONUNBUFFERED="1"))
    proc = subprocess.Popen(node_command("--params-file", str(params_file)), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    harness = Harness(domain)
    up = harness.spin_until(lambda: proc.poll() is not None or (
        harness.image_pub.get_subscription_count() > 0 and harness.info_pub.get_subscription_count() > 0
        and harness.det_pub.get_subscription_count() > 0
        and harness.node.count_publishers("tracks_3d") > 0 and harness.node.count_publishers("tracks") > 0), 25.0)
    if not up or proc.poll() is not None:
        proc.kill()
        pytest.fail(f"node did not come up (exit {proc.poll()}): {proc.communicate()[1]}")
    harness.spin_until(lambda: False, 0.3)
    yield harness, proc
    harness.close()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    print(err)   # shown when the test failed


def _walk(harness: Harness, frames: int, camera_info: bool, fps: float = 10.0) -> list[tuple[Header, dict]]:
    sent = []
    for k in range(frames):
        t = 100.0 + k / fps
        truth = {name: p + v * (k / fps) for name, (p, v) in PEOPLE.items()}
        header = harness.send(t, np.stack([_box(p) for p in truth.values()]), camera_info)
        assert harness.spin_until(lambda h=header: _ns(h) in harness.out["2d"], 5.0), f"no 2D tracks for frame {k}"
        sent.append((header, truth))
    return sent


@pytest.mark.parametrize("running", [0], indirect=True)
def test_camera_info_gives_3d_detections_and_markers_with_the_2d_ids(running):
    harness, _ = running
    sent = _walk(harness, 20, camera_info=True)
    harness.spin_until(lambda: all(_ns(h) in harness.out["markers"] and _ns(h) in harness.out["full"]
                                   for h, _ in sent[2:]), 5.0)
    checked = 0
    for header, truth in sent[2:]:           # tracks are confirmed from the second frame
        stamp = _ns(header)
        two_d, three_d, markers = harness.out["2d"][stamp], harness.out["3d"][stamp], harness.out["markers"][stamp]
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
    full = harness.out["full"][_ns(header)]
    measured = [t for t in full.tracks if t.ground_status == Track.GROUND_MEASURED]
    assert len(measured) == 2
    for t in measured:       # velocity after 1.8 s of noiseless walking
        v = np.array([t.ground_velocity_x, t.ground_velocity_y])
        assert min(np.linalg.norm(v - pv) for _, pv in PEOPLE.values()) < 0.1
        assert np.all(np.isfinite(t.ground_covariance)) and t.ground_covariance[0] > 0


@pytest.mark.parametrize("running", [1], indirect=True)
def test_without_camera_info_no_3d_output_a_diagnostic_and_2d_unaffected(running):
    harness, _ = running
    sent = _walk(harness, 8, camera_info=False)
    harness.spin_until(lambda: _ns(sent[-1][0]) in harness.out["full"], 5.0)
    assert all(len(harness.out["2d"][_ns(h)].detections) == 2 for h, _ in sent[2:])
    assert harness.spin_until(lambda: any("no camera_info" in d.status[0].message for d in harness.diagnostics
                                          if d.status), 5.0)
    harness.spin_until(lambda: False, 0.5)
    assert harness.out["3d"] == {} and harness.out["markers"] == {}
    last = harness.out["full"][_ns(sent[-1][0])]
    assert {(t.ground_status, t.ground_refusal) for t in last.tracks} == {(Track.GROUND_NONE,
                                                                         Track.REFUSAL_NO_CAMERA_MODEL)}
    values = {kv.key: kv.value for kv in harness.diagnostics[-1].status[0].values}
    assert values["ground_camera_info_received"] == "0" and int(values["ground_frames_without_camera_info"]) >= 8
