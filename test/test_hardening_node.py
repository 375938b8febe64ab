"""The node under hostile input streams, beyond test_ros_node.py: invalid external detections,
detections or images whose stamps pair with nothing (missing, duplicate, out of order), and
malformed images interleaved with good frames. Each bad message must be counted in
/diagnostics, the node must keep running, and the ids of the tracks it follows must survive.

One node process serves the whole file (started and driven through conftest's ``ros_nodes``).
Each test starts its own stretch of time (later than the previous test's, so the node never
sees time going backwards) and reads counter changes, not absolute counts.
"""
import math

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
from sensor_msgs.msg import Image  # noqa: E402

from smiletrack_ros.ros.images import bgr_to_raw_fields  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
SIZE = (240, 320)
# Reliable input: the tests count every message, and best-effort DDS may drop a large image
# sample on a busy machine (seen: one of three unpaired images never arrived).
PARAMS = {"detector.backend": "external", "embedder.enabled": False, "diagnostics_period": 0.1,
          "input_qos.reliability": "reliable", "input_qos.depth": 10, "class_names": ["person"],
          "tracker.preset": "paper"}


def _people(k: int) -> list[list[float]]:
    """Two people walking towards each other, apart for the whole test."""
    return [[20 + 2 * k, 30, 60 + 2 * k, 130], [250 - 2 * k, 90, 290 - 2 * k, 200]]


def _image(boxes) -> Image:
    bgr = np.full((*SIZE, 3), 50, np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        bgr[int(y1):int(y2), int(x1):int(x2)] = (90 + 60 * i, 160, 220 - 60 * i)
    return Image(**bgr_to_raw_fields(bgr))


def _detections(client, boxes, scores=None):
    return client.detection_array(client.header(0), boxes, scores)


@pytest.fixture(scope="module")
def node(ros_nodes):
    proc = ros_nodes.start(PARAMS)
    client = ros_nodes.client(proc.domain)
    client.wait_connected(proc)
    yield client, proc
    client.close()
    proc.stop()


def _frame(client, stamp: float, boxes) -> list[str]:
    """A good frame, in lock-step: the ids tracked in it."""
    return client.ids(client.frame(stamp, boxes, image=_image(boxes)))


def _start(client, t0: float) -> tuple[list[str], dict[str, str]]:
    """Three frames of two people from ``t0`` -> the ids they keep, and the node's
    counters before the test's own input."""
    ids = [_frame(client, t0 + 0.1 * k, _people(k)) for k in range(3)]
    assert len(ids[-1]) == 2 and ids[1] == ids[2]
    return ids[-1], client.fresh_counters()


def _assert_healthy(client, proc, before: dict[str, str]) -> None:
    after = client.fresh_counters()
    assert proc.running()
    assert after["processing_errors"] == before["processing_errors"] == "0"
    assert after["time_resets"] == before["time_resets"]


def test_invalid_external_detections_are_rejected_and_tracks_kept(node):
    client, proc = node
    t0 = 100.0
    ids, before = _start(client, t0)
    rejected = client.count("rejected_bad_detections")
    good = _people(3)
    invalid = [
        _detections(client, [good[0], [math.nan, 40, 80, 140]]),     # a nan box beside a good one
        _detections(client, [good[0], [50, 40, 10, 140]]),           # negative width
        _detections(client, good, scores=[0.9, math.nan]),             # nan score
    ]
    for k, dets in enumerate(invalid, start=3):
        key = client.key(client.send(t0 + 0.1 * k, _people(k), dets=dets))
        client.wait_count("rejected_bad_detections", rejected + k - 2)
        assert key not in client.tracks                                   # nothing published for it
    assert [_frame(client, t0 + 0.1 * k, _people(k)) for k in range(6, 9)][-1] == ids
    _assert_healthy(client, proc, before)


def test_stamps_that_pair_with_nothing_are_counted_and_tracks_kept(node):
    client, proc = node
    t0 = 200.0
    ids, before = _start(client, t0)
    last = t0 + 0.2
    client.send(last + 0.05, _people(3), send_image=False)     # detections of an image never sent
    client.send(last, _people(2), send_dets=False)             # the last image again
    client.send(t0 + 0.1, _people(1), send_dets=False)         # an image older than the last one
    client.send(last + 0.07, _people(3), send_dets=False)      # an image whose detections never come
    assert _frame(client, t0 + 0.3, _people(3)) == ids              # pairing it discards the four above
    client.wait_count("unpaired_detections", int(before["unpaired_detections"]) + 1)
    client.wait_count("unpaired_images", int(before["unpaired_images"]) + 3)
    assert [_frame(client, t0 + 0.1 * k, _people(k)) for k in range(4, 7)][-1] == ids
    _assert_healthy(client, proc, before)


def test_a_duplicate_frame_is_tracked_again_without_reset(node):
    client, proc = node
    t0 = 300.0
    ids, before = _start(client, t0)
    client.tracks.clear()
    assert _frame(client, t0 + 0.2, _people(2)) == ids              # the same stamp and content once more
    assert [_frame(client, t0 + 0.1 * k, _people(k)) for k in range(3, 6)][-1] == ids
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
        client.send(t0 + 0.1 * k, _people(k), image=image)
        client.wait_count(f"rejected_{reason}", int(before.get(f"rejected_{reason}", 0)) + sent[reason])
        assert _frame(client, t0 + 0.1 * (k + 1), _people(k + 1)) == ids
    after = client.fresh_counters()
    assert int(after["rejected_size_mismatch"]) == int(before.get("rejected_size_mismatch", 0)) + 2
    assert int(after["rejected_unsupported_encoding"]) == int(before.get("rejected_unsupported_encoding", 0)) + 1
    assert int(after["frames_dropped_busy"]) == int(before["frames_dropped_busy"])
    _assert_healthy(client, proc, before)
