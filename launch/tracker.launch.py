"""Launch one SMILEtrack tracker node.

    ros2 launch smiletrack_ros tracker.launch.py config:=my_tracker.yaml image_topic:=/camera/image_raw device:=cuda

``my_tracker.yaml``: a copy of the shipped config/tracker.yaml with ``detector.weights`` set
(prb/onnx), or ``detector.backend: external`` to take detections from ``detections_topic``.
``image_topic``, ``device`` and ``use_sim_time`` override the file only when given; left out,
the file's values (or the node's defaults) stand. ``managed:=true`` starts a lifecycle node
(configure loads the models, activate subscribes; ``ros2 lifecycle set <node> configure``).
``dds_profile`` is the Fast DDS profile the node runs with (default: the shipped one, which
lets large best-effort images arrive; '' or an already set FASTDDS_DEFAULT_PROFILES_FILE
leaves the environment's).

Several cameras, either way:
- one node for all (one detector and one embedder, the frames that arrived together in one batch):
  ``cameras:=front,left,right`` reads front/<image_topic> ... and publishes front/tracks ...;
- one node per camera (the default route), several namespaced instances, e.g. from a parent launch file:
    IncludeLaunchDescription(PythonLaunchDescriptionSource(<this file>),
                             launch_arguments={"namespace": "cam_left", "image_topic": "/cam_left/image"}.items())
The shipped config is keyed ``/**:`` so it applies to every instance whatever its namespace.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchContext, LaunchDescription

PACKAGE = "smiletrack_ros"
EXECUTABLE = "tracker_node"
NODE_NAME = "smiletrack_tracker"
SHARE = get_package_share_directory(PACKAGE)
CONFIG = os.path.join(SHARE, "config", "tracker.yaml")
DDS_PROFILE = os.path.join(SHARE, "config", "fastdds_large_images.xml")
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
ARGUMENTS = {
    "config": (CONFIG, "parameters file (keyed /**:)"),
    "namespace": ("", "node namespace (one per camera)"),
    "image_topic": ("", "camera image topic (relative names resolve in the namespace); empty: the config's"),
    "cameras": ("", "comma-separated camera names for one node tracking them all (NAME/<image_topic> in, "
                    "NAME/tracks out); empty: the config's (default: one camera)"),
    "device": ("", "auto, cpu or cuda[:N] for the detector and the embedder; empty: the config's"),
    "use_sim_time": ("", "true: follow /clock (bag replay); empty: the config's (default false)"),
    "managed": ("false", "true: a lifecycle node, inactive until configured and activated"),
    "dds_profile": (DDS_PROFILE, "Fast DDS profile for the node; empty: the environment's"),
}


def _flag(name: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"launch argument {name} must be true or false, got {text!r}")
    return text.lower() == "true"


def _tracker(context: LaunchContext) -> list:
    arg = {name: context.launch_configurations[name] for name in ARGUMENTS}
    given = {}
    if arg["image_topic"]:
        given["image_topic"] = arg["image_topic"]
    if arg["cameras"]:
        given["cameras"] = [name.strip() for name in arg["cameras"].split(",") if name.strip()]
    if arg["device"]:
        given["detector.device"] = given["embedder.device"] = arg["device"]
    if arg["use_sim_time"]:
        given["use_sim_time"] = _flag("use_sim_time", arg["use_sim_time"])
    env = {}
    if arg["dds_profile"] and not any(os.environ.get(v) for v in PROFILE_VARIABLES):
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = arg["dds_profile"]
    managed = _flag("managed", arg["managed"])
    node = LifecycleNode if managed else Node
    return [node(package=PACKAGE, executable=EXECUTABLE, name=NODE_NAME, namespace=arg["namespace"],
                 output="screen", emulate_tty=True, additional_env=env,
                 arguments=["--managed"] if managed else [],
                 parameters=[arg["config"], given] if given else [arg["config"]])]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, (default, text) in ARGUMENTS.items()),
        OpaqueFunction(function=_tracker),
    ])
