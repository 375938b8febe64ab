"""The generated interfaces travel between two rclpy nodes over real DDS, every field intact."""
import math
import time

import pytest

pytest.importorskip("rclpy")
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from smiletrack_ros.msg import Track, TrackArray
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

pytestmark = pytest.mark.ros


def _track_array() -> TrackArray:
    msg = TrackArray()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1234, 567_000_000
    msg.header.frame_id = "camera_optical"
    for i in range(3):
        t = Track()
        t.id = 2**40 + i
        t.class_id = f"person{i}"
        t.score = 0.25 * (i + 1)
        t.state = Track.STATE_LOST if i == 2 else Track.STATE_TRACKED
        t.bbox.center.position.x = 100.5 + i
        t.bbox.center.position.y = 200.25 - i
        t.bbox.center.theta = 0.0
        t.bbox.size_x, t.bbox.size_y = 40.0 + i, 90.0
        t.velocity_x, t.velocity_y = -3.5, 1.25 * i
        t.age, t.hits, t.frames_since_update = 10 + i, 7, i
        t.appearance_similarity = math.nan if i == 0 else 0.5 + 0.125 * i
        t.detection_index = -1 if i == 2 else i
        msg.tracks.append(t)
    return msg


def _detection_array() -> Detection2DArray:
    msg = Detection2DArray()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 99, 1
    msg.header.frame_id = "cam"
    for i in range(2):
        d = Detection2D()
        d.header = msg.header
        d.id = str(17 + i)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = "person"
        hyp.hypothesis.score = 0.75 - 0.5 * i
        hyp.pose.pose.position.x = 1.0 * i
        hyp.pose.covariance[0] = 0.5
        d.results.append(hyp)
        d.bbox.center.position.x, d.bbox.center.position.y = 320.0 + i, 240.0
        d.bbox.center.theta = 0.125
        d.bbox.size_x, d.bbox.size_y = 50.0, 120.0
        msg.detections.append(d)
    return msg


def _fields(msg):
    """Decoded message as nested plain data (NaN made comparable)."""
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: _fields(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, (list, tuple)) or type(msg).__name__ == "ndarray":
        return [_fields(v) for v in msg]
    if isinstance(msg, float) and math.isnan(msg):
        return "nan"
    return msg


@pytest.mark.parametrize("msg_type, make", [(TrackArray, _track_array), (Detection2DArray, _detection_array)])
def test_message_arrives_with_every_field(msg_type, make):
    rclpy.init()
    try:
        pub_node = rclpy.create_node("iface_pub")
        sub_node = rclpy.create_node("iface_sub")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        received = []
        sub_node.create_subscription(msg_type, "iface_test", received.append, qos)
        pub = pub_node.create_publisher(msg_type, "iface_test", qos)
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(pub_node)
        executor.add_node(sub_node)
        sent = make()
        deadline = time.monotonic() + 10.0
        while not received and time.monotonic() < deadline:
            if pub.get_subscription_count():
                pub.publish(sent)
            executor.spin_once(timeout_sec=0.1)
        assert received, f"no {msg_type.__name__} arrived over DDS within 10 s"
        assert _fields(received[0]) == _fields(sent)
    finally:
        rclpy.shutdown()
