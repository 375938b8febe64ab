"""The node resets its tracker after two failed frames in a row (issue 16.3, node side).

The node runs in this process, over real rclpy, and frames go through its real worker. The
failure is injected in front of the real tracker's update() (a MemoryError, as the issue's
``bank_size`` probe raised): no real input makes a healthy tracker fail on purpose.
"""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from smiletrack_ros.detections import Detections  # noqa: E402
from smiletrack_ros.image_codec import bgr_to_raw_fields  # noqa: E402
from smiletrack_ros.ros.messages import detection_array_message  # noqa: E402
from smiletrack_ros.ros.node import Frame, TrackerNode  # noqa: E402

pytestmark = pytest.mark.ros
PARAMS = {"detector.backend": "external", "embedder.enabled": False, "class_names": ["person"],
          "tracker.preset": "bytetrack"}


@pytest.fixture
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    tracker_node = TrackerNode(context=context,
                               parameter_overrides=[Parameter(k, value=v) for k, v in PARAMS.items()])
    try:
        yield tracker_node
    finally:
        tracker_node.shutdown()
        tracker_node.destroy_node()
        rclpy.shutdown(context=context)


def _frame(k: int) -> Frame:
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 100 + k // 10, (k % 10) * 100_000_000
    image = Image(header=header, **bgr_to_raw_fields(np.zeros((240, 320, 3), np.uint8)))
    boxes = np.array([[20 + k, 30, 60 + k, 130], [250 - k, 90, 290 - k, 200]], np.float32)
    dets = detection_array_message(header, Detections(boxes, np.full(2, 0.9, np.float32),
                                                            np.zeros(2, np.int64)), ("person",))
    return Frame(image, dets, time.monotonic())


def test_two_failures_in_a_row_reset_the_tracker_and_tracking_resumes(node):
    camera = node._cameras[0]
    tracker = camera.pipeline.tracker
    real_update = tracker.update
    fail = []

    def update(*args, **kwargs):
        if fail and fail.pop(0):
            raise MemoryError("injected: allocation failed during a track birth")
        return real_update(*args, **kwargs)

    tracker.update = update

    def run(k: int, failing: bool = False) -> list[int]:
        fail.append(failing)
        node._worker.submit(_frame(k), key=camera.index)
        assert node._worker.wait_idle(5.0)
        return sorted(t.track_id for t in tracker.live_tracks())

    ids = [run(k) for k in range(4)][-1]
    assert len(ids) == 2
    assert run(4, failing=True) == ids                   # one failure: the tracks are kept
    assert run(5) == ids and camera.recoveries == 0
    run(6, failing=True)
    start = time.perf_counter()
    assert run(7, failing=True) == []                    # the second in a row: reset
    recovered = time.perf_counter() - start
    assert camera.recoveries == 1 and camera.stats.errors == 3
    after = [run(k) for k in range(8, 12)][-1]
    assert len(after) == 2 and not set(after) & set(ids)          # new tracks, ids never reused
    print(f"reset after the second failure within {recovered * 1e3:.1f} ms (that frame included)")
