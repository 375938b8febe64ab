"""``ground.use_tf`` in a real node process: where tf2_ros is missing the node refuses it at start-up.

No package registry reachable here ships tf2_ros (with tf2_py and the C++ tf2) for ROS 2, so
the pose-from-TF path cannot run here; what must hold without it is that a user who asked for
TF gets a clear refusal, never 3D output from a pose they did not ask for.
"""
import importlib.util
import sys
import time

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")

pytestmark = [pytest.mark.ros]
HAS_TF2_ROS = importlib.util.find_spec("tf2_ros") is not None
PARAMS = {"detector.backend": "external", "embedder.enabled": False, "ground.enabled": True,
          "ground.use_tf": True, "ground.target_frame": "base_footprint"}


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
