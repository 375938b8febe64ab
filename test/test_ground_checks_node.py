"""The node's ground output refuses what it cannot project right, in a real node process over DDS.

``ground.use_tf`` where tf2_ros is missing: refused at start-up. No package registry reachable
here ships tf2_ros (with tf2_py and the C++ tf2) for ROS 2, so the pose-from-TF path cannot run
here; what must hold without it is that a user who asked for TF gets a clear refusal, never 3D
output from a pose they did not ask for. An image whose size is not the camera_info's: no 3D
output, counted, a diagnostic naming both sizes; the 2D tracks go on.
"""
import importlib.util
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")

pytestmark = [pytest.mark.ros]
HAS_TF2_ROS = importlib.util.find_spec("tf2_ros") is not None
PARAMS = {"detector.backend": "external", "embedder.enabled": False, "ground.enabled": True,
          "ground.use_tf": True, "ground.target_frame": "base_footprint"}
SIZE_PARAMS = {"detector.backend": "external", "embedder.enabled": False, "diagnostics_period": 0.2,
               "input_qos.reliability": "reliable", "class_names": ["person"], "tracker.preset": "bytetrack",
               "ground.enabled": True, "ground.camera_height": 1.4, "ground.camera_pitch_deg": 12.0}


@pytest.mark.skipif(HAS_TF2_ROS, reason="tf2_ros is importable here: the node takes the camera pose from TF")
@pytest.mark.parametrize("managed", [False, True])
def test_use_tf_without_tf2_ros_fails_startup_naming_the_parameter(ros_nodes, managed):
    command = None
    if managed:   # the lifecycle node refuses it at construction too, before any transition
        command = [sys.executable, "-m", "smiletrack_ros.ros", "--managed", "--ros-args",
                   "--params-file", str(ros_nodes.params_file(PARAMS))]
    node = ros_nodes.start(PARAMS, command=command)
    assert node.wait_exit() == 2
    out = node.output()
    assert "invalid configuration" in out and "ground.use_tf" in out and "needs tf2_ros" in out, out
    assert "Traceback" not in out, out


@pytest.mark.skipif(HAS_TF2_ROS, reason="tf2_ros is importable here")
def test_use_tf_is_only_checked_when_the_ground_output_is_on(ros_nodes):
    node = ros_nodes.start(PARAMS | {"ground.enabled": False})
    deadline = time.monotonic() + 60.0
    while node.running() and "tracking " not in node.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert node.running() and "tracking " in node.output(), node.output()   # up and subscribed
    node.stop()


def test_an_image_of_another_size_than_the_camera_info_gets_no_3d_output_and_a_diagnostic(ros_nodes):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo
    from smiletrack_ros.msg import Track
    from vision_msgs.msg import Detection3DArray

    node = ros_nodes.start(SIZE_PARAMS)
    client = ros_nodes.client(node.domain)
    reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    info_pub = client.node.create_publisher(CameraInfo, "camera_info", reliable)
    received_3d: list = []
    client.node.create_subscription(Detection3DArray, "tracks_3d", received_3d.append, reliable)
    client.wait_connected(node)
    assert client.spin_until(lambda: info_pub.get_subscription_count() > 0, 10.0)
    height, width = 240, 320
    image = np.full((height, width, 3), 60, np.uint8)
    f = 0.6 * 2 * width   # a camera_info of twice the frames' resolution (a calibration of another mode)
    boxes = [[100.0, 60.0, 130.0, 200.0], [200.0, 70.0, 226.0, 190.0]]
    for k in range(8):
        stamp = 40.0 + 0.1 * k
        info_pub.publish(CameraInfo(header=client.header(stamp), width=2 * width, height=2 * height,
                                    distortion_model="plumb_bob", d=[0.0] * 5,
                                    k=[f, 0.0, width, 0.0, f, height, 0.0, 0.0, 1.0]))
        client.spin_until(lambda: False, 0.05)
        last = client.frame(stamp, boxes, image=image)
        assert len(last.detections) == 2                             # 2D tracking is unaffected
    expected = f"image {width}x{height} but camera_info on camera_info is {2 * width}x{2 * height}"
    assert client.spin_until(lambda: any(expected in s.message for d in client.diagnostics for s in d.status), 5.0)
    client.wait_count("ground_image_size_mismatches", 8)
    client.spin_until(lambda: False, 0.5)
    assert received_3d == []
    full = client.full[client.key(last.header)]
    assert {(t.ground_status, t.ground_refusal) for t in full.tracks} == {(Track.GROUND_NONE,
                                                                         Track.REFUSAL_NO_CAMERA_MODEL)}
    node.stop()
