"""External detections one row at a time (issue 16.5) and the array length read from the
serialised message before rclpy deserialises it (issue 16.8); no DDS needed."""
import math

import numpy as np
import pytest

pytest.importorskip("vision_msgs.msg")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
from rclpy.serialization import serialize_message  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import Detection2D, Detection2DArray  # noqa: E402

from smiletrack_ros.detections import Detections  # noqa: E402
from smiletrack_ros.ros.detection_rows import read_detection_array  # noqa: E402
from smiletrack_ros.ros.input_limits import detection_count  # noqa: E402
from smiletrack_ros.ros.messages import detection_array_message  # noqa: E402

NAMES = ("person", "car")


def _array(n: int, frame_id: str = "cam") -> Detection2DArray:
    boxes = np.array([[10 + 20 * i, 20, 30 + 20 * i, 80] for i in range(n)], np.float32).reshape(-1, 4)
    dets = Detections(boxes, np.linspace(0.5, 0.9, n).astype(np.float32), np.zeros(n, np.int64))
    return detection_array_message(Header(frame_id=frame_id), dets, NAMES)


@pytest.mark.parametrize("spoil, reason", [
    (lambda d: setattr(d.bbox, "size_x", 1e39), "detection_box"),             # finite double, inf as float32
    (lambda d: (setattr(d.bbox.center.position, "x", 3e38), setattr(d.bbox, "size_x", 1e38)),
     "detection_box"),                                                         # x2 past float32's max
    (lambda d: setattr(d.bbox, "size_y", math.nan), "detection_box"),
    (lambda d: setattr(d.bbox, "size_x", -4.0), "detection_box"),
    (lambda d: setattr(d.results[0].hypothesis, "score", math.inf), "detection_score"),
    (lambda d: setattr(d.results[0].hypothesis, "score", 1e39), "detection_score"),
    (lambda d: setattr(d.results[0].hypothesis, "class_id", "9" * 30), "detection_class"),   # no int64
    (lambda d: setattr(d.results[0].hypothesis, "class_id", "bicycle"), "detection_class"),
])
def test_a_bad_row_is_dropped_and_counted_and_the_rest_kept(spoil, reason):
    msg = _array(4)
    spoil(msg.detections[1])
    read = read_detection_array(msg, NAMES)
    assert dict(read.dropped) == {reason: 1} and len(read.problems) == 1
    assert read.rows.tolist() == [0, 2, 3]
    good = read_detection_array(_array(4), NAMES).detections
    np.testing.assert_array_equal(read.detections.boxes, good.boxes[[0, 2, 3]])
    np.testing.assert_array_equal(read.detections.scores, good.scores[[0, 2, 3]])
    assert np.isfinite(read.detections.boxes).all() and read.detections.class_ids.dtype == np.int64


def test_rows_read_as_before():
    msg = _array(3)
    msg.detections.append(Detection2D())                  # no hypotheses: class 0, score 1
    msg.detections[0].results[0].hypothesis.class_id = "car"
    msg.detections[2].results[0].hypothesis.class_id = "7"
    read = read_detection_array(msg, NAMES)
    assert not read.dropped and read.rows.tolist() == [0, 1, 2, 3]
    assert read.detections.class_ids.tolist() == [1, 0, 7, 0] and read.detections.scores[3] == 1.0
    np.testing.assert_allclose(read.detections.boxes[:3], [[10, 20, 30, 80], [30, 20, 50, 80], [50, 20, 70, 80]])


def test_an_empty_array_reads_empty():
    read = read_detection_array(_array(0))
    assert len(read.detections) == 0 and read.detections.boxes.shape == (0, 4) and read.rows.shape == (0,)


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera_front_optical_frame"])
def test_detection_count_reads_the_serialised_length(n, frame_id):
    assert detection_count(serialize_message(_array(n, frame_id))) == n


def test_detection_count_refuses_truncated_bytes():
    data = serialize_message(_array(2, "x" * 40))
    for cut in (data[:10], data[:30]):
        with pytest.raises(ValueError):
            detection_count(cut)
