"""The tracker node as a process over real DDS: images + external detections in, tracks out.

The node runs from the installed package (cwd outside the repo) with a params file,
the external detector backend and no embedder, so no model weights are needed.
Frames go in lock-step (publish, wait for that stamp's tracks) so runs are deterministic.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from smiletrack_ros.msg import Track, TrackArray
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from smiletrack_ros.detections import Detections
from smiletrack_ros.ros.images import bgr_to_raw_fields
from smiletrack_ros.ros.messages import detections_to_detection_array

pytestmark = [pytest.mark.ros, pytest.mark.slow]
NODE = "/smiletrack_tracker"
WIDTH, HEIGHT = 320, 240
BASE_PARAMS = {"detector.backend": "external", "embedder.enabled": False, "diagnostics_period": 0.2,
               "input_qos.depth": 5, "class_names": ["person"], "tracker.preset": "bytetrack"}


def _domain(offset: int) -> int:
    return (int(os.environ["ROS_DOMAIN_ID"]) + offset) % 200 + 1


def _start_node(tmp_path: Path, domain: int, params: dict, namespace: str = "") -> subprocess.Popen:
    params_file = tmp_path / f"params_{domain}{namespace.replace('/', '_')}.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    remap = ["-r", f"__ns:={namespace}"] if namespace else []
    return subprocess.Popen([sys.executable, "-m", "smiletrack_ros.ros.node", "--ros-args", "--params-file",
                             str(params_file), *remap], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _stop(proc: subprocess.Popen, sig=signal.SIGINT, timeout: float = 5.0) -> tuple[float, str]:
    """Signals the node's process group; returns (seconds to exit, stderr)."""
    start = time.monotonic()
    os.killpg(proc.pid, sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"node did not stop within {timeout} s after {sig!r}: {err}")
    return time.monotonic() - start, err


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class Harness:
    """Test-side rclpy node publishing frames to the node and collecting its outputs."""

    def __init__(self, domain: int, namespace: str = ""):
        self.namespace, self.fqn = namespace, f"{namespace}{NODE}"
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("node_test_harness", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, f"{namespace}/image", reliable)
        self.compressed_pub = self.node.create_publisher(CompressedImage, f"{namespace}/image/compressed", reliable)
        self.debug_images: list[Image] = []
        self.node.create_subscription(Image, f"{namespace}/debug_image", self.debug_images.append, reliable)
        self.det_pub = self.node.create_publisher(Detection2DArray, f"{namespace}/detections", reliable)
        self.tracks: dict[int, Detection2DArray] = {}
        self.full: dict[int, TrackArray] = {}
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(Detection2DArray, f"{namespace}/tracks", self._on_tracks, reliable)
        self.node.create_subscription(TrackArray, f"{namespace}/tracks_full", self._on_full, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.set_client = self.node.create_client(SetParameters, f"{self.fqn}/set_parameters")

    def _on_tracks(self, msg):
        self.tracks[_stamp_ns(msg.header)] = msg

    def _on_diagnostics(self, msg):
        if msg.status and msg.status[0].hardware_id == self.fqn:    # several nodes share /diagnostics
            self.diagnostics.append(msg)

    def _on_full(self, msg):
        self.full[_stamp_ns(msg.header)] = msg

    def spin_until(self, condition, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def wait_connected(self, proc: subprocess.Popen, compressed: bool = False) -> None:
        image_pub = self.compressed_pub if compressed else self.image_pub
        ok = self.spin_until(lambda: proc.poll() is not None or (
            image_pub.get_subscription_count() > 0 and self.det_pub.get_subscription_count() > 0
            and self.node.count_publishers(f"{self.namespace}/tracks") > 0
            and self.node.count_publishers(f"{self.namespace}/tracks_full") > 0),
            timeout=20.0)
        if not ok or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"node did not come up (exit {proc.poll()}): {proc.communicate()[1]}")
        self.spin_until(lambda: False, 0.3)

    def send(self, stamp: float, boxes, image=None, frame_id="cam_front", scores=None) -> Header:
        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
        image = _scene(boxes) if image is None else image
        msg = image if isinstance(image, (Image, CompressedImage)) else Image(**bgr_to_raw_fields(image))
        msg.header = header
        scores = np.full(len(boxes), 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
        dets = Detections(np.asarray(boxes, np.float32).reshape(-1, 4), scores, np.zeros(len(boxes), np.int64))
        self.det_pub.publish(detections_to_detection_array(header, dets, ("person",)))
        (self.compressed_pub if isinstance(msg, CompressedImage) else self.image_pub).publish(msg)
        return header

    def frame(self, stamp: float, boxes, **kw) -> Detection2DArray:
        """Publishes one frame and waits for its tracks (one resend if DDS lost it)."""
        for _ in range(2):
            header = self.send(stamp, boxes, **kw)
            key = _stamp_ns(header)
            self.tracks.pop(key, None)
            self.full.pop(key, None)
            if self.spin_until(lambda key=key: key in self.tracks and key in self.full, 2.0):
                return self.tracks[key]
        pytest.fail(f"no tracks for stamp {stamp}")

    def set_parameter(self, name: str, value):
        assert self.set_client.wait_for_service(timeout_sec=5.0)
        future = self.set_client.call_async(
            SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()]))
        assert self.spin_until(future.done, 5.0)
        return future.result().results[0]

    def latest_diagnostics(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values}

    def close(self):
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _scene(boxes) -> np.ndarray:
    image = np.full((HEIGHT, WIDTH, 3), 60, np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        image[int(y1):int(y2), int(x1):int(x2)] = (40 * i + 80, 200 - 50 * i, 120)
    return image


def _walkers(k: int, occluded: bool = False) -> list:
    a = [20 + 3 * k, 40, 60 + 3 * k, 140]
    b = [260 - 3 * k, 70, 300 - 3 * k, 170]
    return [a] if occluded else [a, b]


def _ids(msg: Detection2DArray) -> list[str]:
    return sorted(d.id for d in msg.detections)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("node")
    domain = _domain(0)
    proc = _start_node(tmp, domain, BASE_PARAMS)
    harness = Harness(domain)
    try:
        harness.wait_connected(proc)
        yield harness, proc
    finally:
        harness.close()
        if proc.poll() is None:
            _stop(proc)


def test_ids_persist_and_survive_a_short_occlusion(live):
    h, _ = live
    t0 = 100.0
    seen = [h.frame(t0 + 0.1 * k, _walkers(k)) for k in range(6)]
    ids = _ids(seen[-1])
    assert len(ids) == 2 and _ids(seen[2]) == ids
    # b vanishes for 4 frames, then comes back where it walked to
    occluded = [h.frame(t0 + 0.1 * k, _walkers(k, occluded=True)) for k in range(6, 10)]
    assert all(len(m.detections) == 1 for m in occluded)
    back = [h.frame(t0 + 0.1 * k, _walkers(k)) for k in range(10, 14)]
    assert _ids(back[-1]) == ids


def test_headers_propagate_and_track_array_agrees(live):
    h, _ = live
    t0 = 200.0
    for k in range(5):
        msg = h.frame(t0 + 0.1 * k, _walkers(k), frame_id="cam_rear")
    key = _stamp_ns(msg.header)
    assert msg.header.frame_id == "cam_rear" and key == int(round((t0 + 0.4) * 1e9))
    assert all(d.header == msg.header for d in msg.detections)
    full = h.full[key]
    assert full.header == msg.header
    by_id = {str(t.id): t for t in full.tracks}
    for det in msg.detections:
        track = by_id[det.id]
        assert track.state == Track.STATE_TRACKED and track.detection_index >= 0
        assert track.class_id == det.results[0].hypothesis.class_id == "person"
        assert track.score == pytest.approx(det.results[0].hypothesis.score, abs=1e-6)
        assert track.bbox.center.position.x == pytest.approx(det.bbox.center.position.x, abs=1e-3)
        assert track.bbox.size_y == pytest.approx(det.bbox.size_y, abs=1e-3)
        assert track.hits >= 2 and track.age >= track.hits - 1
    # boxes are in source pixels: close to the published detections
    want = np.array(_walkers(4), float)
    got = sorted([d.bbox.center.position.x - d.bbox.size_x / 2 for d in msg.detections])
    np.testing.assert_allclose(got, sorted(want[:, 0]), atol=2.0)


def test_detection_index_points_into_the_received_message(live):
    h, _ = live
    t0 = 260.0
    for k in range(4):  # index 0: a box under the detector's score threshold, dropped before tracking
        boxes = [[150, 10, 170, 50], *_walkers(k)]
        msg = h.frame(t0 + 0.1 * k, boxes, scores=[0.01, 0.9, 0.9])
    full = h.full[_stamp_ns(msg.header)]
    matched = sorted((t.detection_index, round(t.bbox.center.position.x)) for t in full.tracks
                     if t.state == Track.STATE_TRACKED)
    assert [i for i, _ in matched] == [1, 2]
    for index, centre_x in matched:
        assert abs(centre_x - (boxes[index][0] + boxes[index][2]) / 2) <= 2


def test_malformed_images_are_rejected_and_tracking_continues(live):
    h, proc = live
    t0 = 300.0
    for k in range(4):
        good = h.frame(t0 + 0.1 * k, _walkers(k))
    ids = _ids(good)
    bad = Image(**bgr_to_raw_fields(_scene(_walkers(4))))
    bad.step = bad.step + 7                                  # step x height != data size
    odd = Image(**bgr_to_raw_fields(_scene(_walkers(6))))
    odd.encoding = "yuv422_yuy2"
    malformed = [(bad, "size_mismatch"), (Image(height=0, width=0, encoding="bgr8", step=0), "zero_size"),
                 (odd, "unsupported_encoding")]
    for k, (image, reason) in enumerate(malformed, start=4):
        h.send(t0 + 0.1 * k, _walkers(k), image=image)   # one at a time: the node keeps only the newest
        assert h.spin_until(lambda reason=reason: h.diagnostics and int(
            h.latest_diagnostics().get(f"rejected_{reason}", 0)) >= 1, 5.0), str(h.latest_diagnostics())
    assert proc.poll() is None
    after = [h.frame(t0 + 0.1 * k, _walkers(k)) for k in range(7, 10)]
    assert _ids(after[-1]) == ids
    diag = h.diagnostics[-1].status[0]
    assert diag.level == diag.WARN and "rejected" in diag.message
    values = h.latest_diagnostics()
    assert {"rate_hz", "latency_ms_mean", "frames_dropped_busy", "live_tracks", "device", "detector",
            "embedder"} <= set(values)
    assert values["detector"] == "external" and values["embedder"] == "off"


def test_runtime_parameter_change_takes_effect_and_is_validated(live):
    h, _ = live
    t0 = 400.0
    for k in range(3):
        msg = h.frame(t0 + 0.1 * k, _walkers(k))
    assert len(msg.detections) == 2
    result = h.set_parameter("detector.score_threshold", 0.95)   # above every detection's 0.9
    assert result.successful, result.reason
    try:
        assert h.frame(t0 + 0.3, _walkers(3)).detections == []
        refused = h.set_parameter("tracker.alpha", 3.0)
        assert not refused.successful and "alpha" in refused.reason
        read_only = h.set_parameter("image_topic", "other")
        assert not read_only.successful
        assert h.set_parameter("publish_debug_image", True).successful
    finally:
        assert h.set_parameter("detector.score_threshold", 0.05).successful
    for k in range(4, 8):
        msg = h.frame(t0 + 0.1 * k, _walkers(k))
    assert len(msg.detections) == 2
    assert h.spin_until(lambda: any(d.header == msg.header for d in h.debug_images), 3.0)
    debug = next(d for d in h.debug_images if d.header == msg.header)
    drawn = np.frombuffer(debug.data, np.uint8).reshape(HEIGHT, WIDTH, 3)
    assert debug.encoding == "bgr8" and not np.array_equal(drawn, _scene(_walkers(7)))
    assert h.set_parameter("publish_debug_image", False).successful


def test_time_going_backwards_resets_cleanly(live):
    h, proc = live
    t0 = 500.0
    for k in range(4):
        first = h.frame(t0 + 0.1 * k, _walkers(k))
    again = [h.frame(t0 - 5.0 + 0.1 * k, _walkers(k)) for k in range(4)]   # the bag loops
    assert proc.poll() is None
    assert len(again[-1].detections) == 2
    assert set(_ids(again[-1])).isdisjoint(_ids(first))             # fresh tracks, ids never reused
    assert h.spin_until(lambda: int(h.latest_diagnostics().get("time_resets", 0)) >= 1, 3.0)


def test_bad_parameter_fails_startup_naming_it(tmp_path):
    proc = _start_node(tmp_path, _domain(1), BASE_PARAMS | {"tracker.stage1_match_threshold": 5.0})
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "tracker.stage1_match_threshold" in err and "Traceback" not in err
    proc = _start_node(tmp_path, _domain(1), BASE_PARAMS | {"input_qos.reliability": "mostly"})
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "'input_qos.reliability'" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_the_node_quickly_without_traceback(tmp_path, sig):
    domain = _domain(2 + int(sig))
    proc = _start_node(tmp_path, domain, BASE_PARAMS)
    harness = Harness(domain)
    try:
        harness.wait_connected(proc)
        harness.frame(1.0, _walkers(0))
    finally:
        harness.close()
    elapsed, err = _stop(proc, sig)
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    assert "Traceback" not in err, err
    assert proc.returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_loading_exits_at_once(tmp_path, sig):
    proc = _start_node(tmp_path, _domain(60 + int(sig)), BASE_PARAMS)
    time.sleep(0.3)                                   # still importing
    elapsed, err = _stop(proc, sig)
    assert elapsed < 1.0 and "Traceback" not in err, err
    assert proc.returncode in (0, 128 + sig)


def test_installed_executable_reports_bad_parameters(tmp_path):
    """lib/smiletrack_ros/tracker_node, where launch_ros looks for it."""
    executable = Path(sys.prefix) / "lib" / "smiletrack_ros" / "tracker_node"
    if not executable.exists():
        pytest.skip(f"{executable} not installed (tools/setup_env.sh installs it)")
    params = tmp_path / "bad.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": BASE_PARAMS | {"output_qos.depth": 0}}}))
    env = dict(os.environ, ROS_DOMAIN_ID=str(_domain(70)))
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, str(executable), "--ros-args", "--params-file", str(params)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "'output_qos.depth'" in done.stderr and "Traceback" not in done.stderr


def test_compressed_images_with_sim_time(tmp_path):
    """use_sim_time without any /clock: tracking follows the image stamps, diagnostics still flow."""
    domain = _domain(30)
    proc = _start_node(tmp_path, domain, BASE_PARAMS | {"compressed": True, "use_sim_time": True})
    h = Harness(domain)
    try:
        h.wait_connected(proc, compressed=True)

        def jpeg(k):
            ok, data = cv2.imencode(".jpg", _scene(_walkers(k)))
            return CompressedImage(format="jpeg", data=data.tobytes())

        for k in range(4):
            msg = h.frame(10.0 + 0.1 * k, _walkers(k), image=jpeg(k))
        ids = _ids(msg)
        assert len(ids) == 2
        h.send(10.4, _walkers(4), image=CompressedImage(format="jpeg", data=b"\xff\xd8garbage"))
        assert h.spin_until(lambda: h.diagnostics and int(
            h.latest_diagnostics().get("rejected_corrupt_compressed", 0)) >= 1, 5.0)
        assert _ids(h.frame(10.5, _walkers(5), image=jpeg(5))) == ids
    finally:
        h.close()
        _stop(proc)


def test_namespaced_cameras_one_with_the_slm_embedder(tmp_path):
    """Two cameras = two namespaced nodes with the same relative topics; camera a runs the real SLM
    embedder (untrained weights written here, so no shipped file is needed)."""
    torch = pytest.importorskip("torch")
    from smiletrack_ros.embedding import ModelCard, SLMNet, SlmSpec, save_weights

    torch.manual_seed(0)
    weights = tmp_path / "slm_test.safetensors"
    save_weights(SLMNet(SlmSpec()), weights, ModelCard(spec=SlmSpec(), name="untrained-test"))
    domain = _domain(50)
    slm = {"embedder.enabled": True, "embedder.weights": str(weights), "embedder.device": "cpu",
           "tracker.preset": "paper"}
    procs = {"/cam_a": _start_node(tmp_path, domain, BASE_PARAMS | slm, "/cam_a"),
             "/cam_b": _start_node(tmp_path, domain, BASE_PARAMS, "/cam_b")}
    harnesses = {ns: Harness(domain, ns) for ns in procs}
    try:
        for ns, h in harnesses.items():
            h.wait_connected(procs[ns])
        for k in range(5):
            a = harnesses["/cam_a"].frame(20.0 + 0.1 * k, _walkers(k))
            b = harnesses["/cam_b"].frame(30.0 + 0.1 * k, _walkers(k, occluded=True))
        assert len(a.detections) == 2 and len(b.detections) == 1
        assert _ids(b) == ["1"] and _ids(a) == ["1", "2"]          # separate trackers, separate ids
        full = harnesses["/cam_a"].full[_stamp_ns(a.header)]
        assert all(0.0 <= t.appearance_similarity <= 1.0 for t in full.tracks if t.state == Track.STATE_TRACKED)
        ha = harnesses["/cam_a"]
        assert ha.spin_until(lambda: ha.diagnostics and "slm" in ha.latest_diagnostics()["embedder"], 5.0)
        assert ha.latest_diagnostics()["device"] == "cpu"
        hb = harnesses["/cam_b"]
        assert hb.spin_until(lambda: bool(hb.diagnostics), 5.0) and hb.latest_diagnostics()["embedder"] == "off"
    finally:
        for h in harnesses.values():
            h.close()
        try:
            _stop(procs["/cam_a"])
        finally:  # camera b is stopped even when camera a fails to stop in time
            _stop(procs["/cam_b"])
