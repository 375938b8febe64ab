"""The node's ground-plane parameters (``ground.*``) as data, and their validation (no rclpy).

The camera pose comes from the ``ground.camera_*`` mounting parameters (the camera
link's x, y, height, roll, pitch, yaw in ``ground.target_frame``: any rigid
transform), or, with ``ground.use_tf``, from TF (``camera_info.header.frame_id``
-> ``ground.target_frame``). That needs tf2_ros (a sourced ROS 2 install): without
it ``ground.use_tf: true`` is refused at start-up, never silently replaced by the
mounting parameters.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from smiletrack_ros.errors import SettingError
from smiletrack_ros.ground import CameraPose, MotionConfig, PixelNoise, ProjectionConfig
from smiletrack_ros.ros.settings import ParameterError, ParamSpec, _topic

_D = ProjectionConfig()
_N = PixelNoise()
_M = MotionConfig()

GROUND_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("ground.enabled", "bool", False, "project tracks to the floor (needs camera_info and the camera pose) "
              "and publish ground.detections_topic / ground.markers_topic"),
    ParamSpec("ground.camera_info_topic", "string", "", "sensor_msgs/CameraInfo topic; empty: camera_info beside "
              "image_topic (image_raw -> camera_info in the same namespace), as image pipelines name it"),
    ParamSpec("ground.target_frame", "string", "base_link", "frame whose z = 0 is the floor; header frame of the "
              "3D outputs"),
    ParamSpec("ground.use_tf", "bool", False, "camera pose from TF (camera_info frame -> target_frame); needs "
              "tf2_ros (refused at start-up without it); false: from the ground.camera_* parameters"),
    ParamSpec("ground.camera_height", "double", 1.5, "camera height above the floor, m (optical centre)"),
    ParamSpec("ground.camera_pitch_deg", "double", 10.0, "camera pitch, degrees, positive looking down"),
    ParamSpec("ground.camera_roll_deg", "double", 0.0, "camera roll about its viewing axis, degrees"),
    ParamSpec("ground.camera_yaw_deg", "double", 0.0, "camera yaw in the target frame, degrees (0: looking along x)"),
    ParamSpec("ground.camera_x", "double", 0.0, "camera position in the target frame, m"),
    ParamSpec("ground.camera_y", "double", 0.0, "camera position in the target frame, m"),
    ParamSpec("ground.noise_x_fraction", "double", _N.x_fraction, "foot point std across, fraction of the box width"),
    ParamSpec("ground.noise_y_fraction", "double", _N.y_fraction, "foot point std down, fraction of the box height"),
    ParamSpec("ground.noise_floor_px", "double", _N.floor_px, "foot point std floor, pixels"),
    ParamSpec("ground.min_height", "double", _D.min_height, "shortest believable standing height, m"),
    ParamSpec("ground.max_height", "double", _D.max_height, "tallest believable standing height, m"),
    ParamSpec("ground.max_range", "double", _D.max_range, "farthest believable foot point, m from the camera"),
    ParamSpec("ground.min_score", "double", _D.min_score, "detections scored lower are not projected "
              "(mostly occluded: their boxes need not reach the feet)"),
    ParamSpec("ground.acceleration_psd", "double", _M.acceleration_psd, "walking people's white-acceleration "
              "noise in every direction (speeding up, slowing down), m^2/s^3 (ground filter)"),
    ParamSpec("ground.turn_psd", "double", _M.turn_psd, "white noise of walking people's heading rate, rad^2/s: "
              "acceleration across the walking direction, in proportion to the speed (ground filter)"),
    ParamSpec("ground.sway_share", "double", _M.sway_share, "share (0-1) of the foot point's column variance "
              "that is correlated over frames (limb swing, posture): a state of the ground filter; 0: all white"),
    ParamSpec("ground.sway_time", "double", _M.sway_time, "correlation time of that sway, s"),
    ParamSpec("ground.detections_topic", "string", "tracks_3d", "output: vision_msgs/Detection3DArray, id = track "
              "id, box centre at the person's mid-height above the ground position"),
    ParamSpec("ground.markers_topic", "string", "tracks_markers", "output: visualization_msgs/MarkerArray for RViz "
              "(cylinder, id text and velocity arrow per person)"),
)


@dataclass(frozen=True)
class GroundSettings:
    enabled: bool
    camera_info_topic: str
    target_frame: str
    use_tf: bool
    pose: CameraPose
    projection: ProjectionConfig
    motion: MotionConfig
    detections_topic: str
    markers_topic: str

    @classmethod
    def from_values(cls, values: Mapping[str, Any], image_topic: str = "image") -> GroundSettings:
        """``values``: parameter name -> value (every ``ground.*`` parameter)."""
        v = {k[len("ground."):]: values[k] for k in (s.name for s in GROUND_PARAMS)}
        info_topic = v["camera_info_topic"] or camera_info_beside(image_topic)
        _topic("ground.camera_info_topic", info_topic)
        for name in ("detections_topic", "markers_topic"):
            _topic(f"ground.{name}", v[name])
        frame = v["target_frame"].strip().lstrip("/")
        if not frame:
            raise ParameterError("ground.target_frame", "must name a frame")
        with _as_parameter():
            pose = CameraPose.from_mounting(v["camera_height"], math.radians(v["camera_pitch_deg"]),
                                            math.radians(v["camera_roll_deg"]), math.radians(v["camera_yaw_deg"]),
                                            v["camera_x"], v["camera_y"])
        with _as_parameter():
            noise = PixelNoise(v["noise_x_fraction"], v["noise_y_fraction"], v["noise_floor_px"])
        with _as_parameter():
            projection = ProjectionConfig(noise=noise, min_height=v["min_height"], max_height=v["max_height"],
                                          max_range=v["max_range"], min_score=v["min_score"])
            motion = MotionConfig(acceleration_psd=v["acceleration_psd"], turn_psd=v["turn_psd"],
                                  sway_share=v["sway_share"], sway_time=v["sway_time"])
        if v["use_tf"] and v["enabled"]:
            _check_tf2_ros()
        return cls(enabled=bool(v["enabled"]), camera_info_topic=info_topic, target_frame=frame,
                   use_tf=bool(v["use_tf"]), pose=pose, projection=projection, motion=motion,
                   detections_topic=v["detections_topic"], markers_topic=v["markers_topic"])


def _check_tf2_ros() -> None:
    """``ground.use_tf`` needs tf2_ros: without it the node would publish positions from a pose
    the user did not ask for."""
    try:
        import tf2_ros  # noqa: F401
    except ImportError as exc:
        raise ParameterError("ground.use_tf", f"needs tf2_ros, which is not importable here ({exc}); source a "
                                              "ROS 2 install that has tf2_ros, or set ground.use_tf false and "
                                              "give the camera pose with the ground.camera_* parameters") from exc


def camera_info_beside(image_topic: str) -> str:
    """``camera/image_raw`` -> ``camera/camera_info`` (image_transport's convention)."""
    head, _, _ = image_topic.rpartition("/")
    return f"{head}/camera_info" if head else "camera_info"


_PARAMETER_OF_FIELD = {"height": "camera_height", "pitch": "camera_pitch_deg", "roll": "camera_roll_deg",
                       "yaw": "camera_yaw_deg", "x": "camera_x", "y": "camera_y", "x_fraction": "noise_x_fraction",
                       "y_fraction": "noise_y_fraction", "floor_px": "noise_floor_px"}


@contextmanager
def _as_parameter() -> Iterator[None]:
    """Re-raises a library SettingError as the ParameterError of the ground parameter it is about."""
    try:
        yield
    except SettingError as exc:
        raise ParameterError(f"ground.{_PARAMETER_OF_FIELD.get(exc.field, exc.field)}", exc.reason) from exc
