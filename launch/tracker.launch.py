"""Launch one SMILEtrack tracker node.

    ros2 launch smiletrack_ros tracker.launch.py config:=my_tracker.yaml image_topic:=/camera/image_raw device:=cuda

``my_tracker.yaml``: a copy of the shipped config/tracker.yaml with ``detector.weights`` set
(prb/onnx), or ``detector.backend: external`` to take detections from ``detections_topic``.

Several cameras = several namespaced instances, e.g. from a parent launch file:
    IncludeLaunchDescription(PythonLaunchDescriptionSource(<this file>),
                             launch_arguments={"namespace": "cam_left", "image_topic": "/cam_left/image"}.items())
The shipped config is keyed ``/**:`` so it applies to every instance whatever its namespace.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription

PACKAGE = "smiletrack_ros"
EXECUTABLE = "tracker_node"
CONFIG = os.path.join(get_package_share_directory(PACKAGE), "config", "tracker.yaml")


def generate_launch_description() -> LaunchDescription:
    config = LaunchConfiguration("config")
    namespace = LaunchConfiguration("namespace")
    image_topic = LaunchConfiguration("image_topic")
    device = LaunchConfiguration("device")
    use_sim_time = LaunchConfiguration("use_sim_time")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=CONFIG, description="parameters file (keyed /**:)"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace (one per camera)"),
        DeclareLaunchArgument("image_topic", default_value="image",
                              description="camera image topic (relative names resolve in the namespace)"),
        DeclareLaunchArgument("device", default_value="auto",
                              description="auto, cpu or cuda[:N] for the detector and the embedder"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="follow /clock (bag replay)"),
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            namespace=namespace,
            output="screen",
            emulate_tty=True,
            parameters=[
                config,
                {
                    "image_topic": image_topic,
                    "detector.device": device,
                    "embedder.device": device,
                    "use_sim_time": ParameterValue(use_sim_time, value_type=bool),
                },
            ],
        ),
    ])
