"""The node under hostile input streams, beyond test_ros_node.py: invalid external detections,
detections or images whose stamps pair with nothing (missing, duplicate, out of order), and
malformed images interleaved with good frames. Each bad message must be counted in
/diagnostics, the node must keep running, and the ids of the tracks it follows must survive.

One node process serves the whole file. Each test starts its own stretch of time (later
than the previous test's, so the node never sees time going backwards) and reads counter
changes, not absolute counts. start/stop code is written here because test_ros_node.py is
not importable under ``--import-mode=importlib``.
"""
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from smiletrack_ros.detections import Detections
from smiletrack_ros.ros.images import bgr_to_raw_fields
from smiletrack_ros.ros.messages import detections_to_detection_array
from smiletrack_ros.ros.process import stop_node_process

pytestmark = [pytest.mark.ros, pytest.mark.slow]
NODE_FQN = "/smiletrack_tracker"
SIZE = (240, 320)
# Reliable input: the tests count every message, and best-effort DDS may drop a large image
# sample on a busy machine (seen: one of three unpaired images never arrived).
PARAMS = {"detector.backend": "external", "embedder.enabled": False, "diagnostics_period": 0.1,
          "input_qos.reliability": "reliable", "input_qos.depth": 10, "class_names": ["person"],
          "tracker.preset": "paper"}


def _header(stamp: float) -> Header:
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
    return header


def _key(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def _people(k: int) -> list[list[float]]:
    """Two people walking towards each other, apart for the whole test."""
    return [[20 + 2 * k, 30, 60 + 2 * k, 130], [250 - 2 * k, 90, 290 - 2 * k, 200]]


def _image(boxes) -> Image:
    bgr = np.full((*SIZE, 3), 50, np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        bgr[int(y1):int(y2), int(x1):int(x2)] = (90 + 60 * i, 160, 220 - 60 * i)
    return Image(**bgr_to_raw_fields(bgr))


def _detections(header: Header, boxes, scores=None) -> Detection2DArray:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.full(len(boxes), 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    return detections_to_detection_array(header, Detections(boxes, scores, np.zeros(len(boxes), np.int64)),
                                         ("person",))


class Client:
    """Publishes images and detection arrays separately; collects tracks and diagnostics."""

    def __init__(self, domain: int):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("hardening_client", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.images = self.node.create_publisher(Image, "/image", qos)
        self.dets = self.node.create_publisher(Detection2DArray, "/detections", qos)
        self.tracks: dict[int, Detection2DArray] = {}
        self.counters: dict[str, str] = {}
        self.node.create_subscription(Detection2DArray, "/tracks",
                                      lambda m: self.tracks.__setitem__(_key(m.header), m), qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.hardware_id == NODE_FQN:
                self.counters = {kv.key: kv.value for kv in status.values}

    def spin_until(self, condition, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                return False
            self.executor.spin_once(timeout_sec=0.02)
        return True

    def count(self, key: str) -> int:
        return int(self.counters.get(key, 0))

    def fresh_counters(self) -> dict[str, str]:
        """The next diagnostics message (counters published after everything sent so far)."""
        self.counters = {}
        assert self.spin_until(lambda: bool(self.counters), 3.0), "no diagnostics"
        return self.counters

    def wait_count(self, key: str, at_least: int) -> None:
        assert self.spin_until(lambda: self.count(key) >= at_least, 5.0), (key, at_least, str(self.counters))

    def publish(self, stamp: float, boxes=None, image: Image | None = None, dets: Detection2DArray | None = None,
                send_image: bool = True, send_dets: bool = True) -> int:
        header = _header(stamp)
        if send_dets:
            msg = dets if dets is not None else _detections(header, boxes)
            msg.header = header
            self.dets.publish(msg)
        if send_image:
            msg = image if image is not None else _image(boxes)
            msg.header = header
            self.images.publish(msg)
        return _key(header)

    def frame(self, stamp: float, boxes) -> list[str]:
        """A good frame, in lock-step: returns the ids tracked in it."""
        key = self.publish(stamp, boxes)
        assert self.spin_until(lambda: key in self.tracks, 5.0), f"no tracks for stamp {stamp}"
        return sorted(d.id for d in self.tracks[key].detections)

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hardening_node")
    (tmp / "params.yaml").write_text(yaml.safe_dump({"/**": {"ros__parameters": PARAMS}}))
    domain = (int(os.environ["ROS_DOMAIN_ID"]) + 90) % 200 + 1
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.pop("PYTHONPATH", None)  # the installed package, as a user runs it
    proc = subprocess.Popen([sys.executable, "-m", "smiletrack_ros.ros.node", "--ros-args", "--params-file",
                             str(tmp / "params.yaml")], cwd=tmp, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    client = Client(domain)
    try:
        up = client.spin_until(lambda: proc.poll() is not None or (
            client.images.get_subscription_count() and client.dets.get_subscription_count()
            and client.node.count_publishers("/tracks")), 20.0)
        assert up and proc.poll() is None, f"node did not start: {proc.stderr.read() if proc.poll() else ''}"
        client.spin_until(lambda: False, 0.3)
        yield client, proc
    finally:
        client.close()
        stop_node_process(proc)


def _start(client: Client, t0: float) -> tuple[list[str], dict[str, str]]:
    """Three frames of two people from ``t0`` -> the ids they keep, and the node's
    counters before the test's own input."""
    ids = [client.frame(t0 + 0.1 * k, _people(k)) for k in range(3)]
    assert len(ids[-1]) == 2 and ids[1] == ids[2]
    return ids[-1], client.fresh_counters()


def _assert_healthy(client: Client, proc, before: dict[str, str]) -> None:
    after = client.fresh_counters()
    assert proc.poll() is None
    assert after["processing_errors"] == before["processing_errors"] == "0"
    assert after["time_resets"] == before["time_resets"]


def test_invalid_external_detections_are_rejected_and_tracks_kept(node):
    client, proc = node
    t0 = 100.0
    ids, before = _start(client, t0)
    rejected = client.count("rejected_bad_detections")
    good = _people(3)
    invalid = [
        _detections(_header(0), [good[0], [math.nan, 40, 80, 140]]),     # a nan box beside a good one
        _detections(_header(0), [good[0], [50, 40, 10, 140]]),           # negative width
        _detections(_header(0), good, scores=[0.9, math.nan]),             # nan score
    ]
    for k, dets in enumerate(invalid, start=3):
        key = client.publish(t0 + 0.1 * k, _people(k), dets=dets)
        client.wait_count("rejected_bad_detections", rejected + k - 2)
        assert key not in client.tracks                                   # nothing published for it
    assert [client.frame(t0 + 0.1 * k, _people(k)) for k in range(6, 9)][-1] == ids
    _assert_healthy(client, proc, before)


def test_stamps_that_pair_with_nothing_are_counted_and_tracks_kept(node):
    client, proc = node
    t0 = 200.0
    ids, before = _start(client, t0)
    last = t0 + 0.2
    client.publish(last + 0.05, _people(3), send_image=False)     # detections of an image never sent
    client.publish(last, _people(2), send_dets=False)             # the last image again
    client.publish(t0 + 0.1, _people(1), send_dets=False)         # an image older than the last one
    client.publish(last + 0.07, _people(3), send_dets=False)      # an image whose detections never come
    assert client.frame(t0 + 0.3, _people(3)) == ids              # pairing it discards the four above
    client.wait_count("unpaired_detections", int(before["unpaired_detections"]) + 1)
    client.wait_count("unpaired_images", int(before["unpaired_images"]) + 3)
    assert [client.frame(t0 + 0.1 * k, _people(k)) for k in range(4, 7)][-1] == ids
    _assert_healthy(client, proc, before)


def test_a_duplicate_frame_is_tracked_again_without_reset(node):
    client, proc = node
    t0 = 300.0
    ids, before = _start(client, t0)
    client.tracks.clear()
    assert client.frame(t0 + 0.2, _people(2)) == ids              # the same stamp and content once more
    assert [client.frame(t0 + 0.1 * k, _people(k)) for k in range(3, 6)][-1] == ids
    _assert_healthy(client, proc, before)


def test_malformed_images_between_good_frames(node):
    client, proc = node
    t0 = 400.0
    ids, before = _start(client, t0)
    stepped = _image(_people(3))
    stepped.step += 3
    yuv = _image(_people(5))
    yuv.encoding = "yuv422_yuy2"
    truncated = _image(_people(7))
    truncated.data = truncated.data[:-1]
    sent = {"size_mismatch": 0, "unsupported_encoding": 0}
    for k, image, reason in ((3, stepped, "size_mismatch"), (5, yuv, "unsupported_encoding"),
                             (7, truncated, "size_mismatch")):
        sent[reason] += 1
        client.publish(t0 + 0.1 * k, _people(k), image=image)
        client.wait_count(f"rejected_{reason}", int(before.get(f"rejected_{reason}", 0)) + sent[reason])
        assert client.frame(t0 + 0.1 * (k + 1), _people(k + 1)) == ids
    after = client.fresh_counters()
    assert int(after["rejected_size_mismatch"]) == int(before.get("rejected_size_mismatch", 0)) + 2
    assert int(after["rejected_unsupported_encoding"]) == int(before.get("rejected_unsupported_encoding", 0)) + 1
    assert int(after["frames_dropped_busy"]) == int(before["frames_dropped_busy"])
    _assert_healthy(client, proc, before)
