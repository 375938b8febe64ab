"""People on the floor, in metres: monocular ground-plane projection and per-track motion (numpy/OpenCV, no ROS).

``CameraModel`` (intrinsics and distortion, from a CameraInfo-shaped input) and
``CameraPose`` (mounting height/pitch/roll or a 4x4 optical -> target transform)
make a ``GroundProjector``, which maps boxes' foot points to the floor (z = 0 of
the target frame) with covariances, or says why not (``Refusal``).
``GroundTracker`` runs a constant-velocity filter per 2D track on those points (with the
foot point's correlated sway as a state, and turning walkers' process noise).
"""
from smiletrack_ros.ground.camera import DISTORTION_MODELS, CameraModel, CameraModelError
from smiletrack_ros.ground.motion import (
    ConstantVelocityFilter,
    FootPoint,
    GroundEstimate,
    GroundStatus,
    GroundTracker,
    MotionConfig,
)
from smiletrack_ros.ground.pose import CameraPose, CameraPoseError
from smiletrack_ros.ground.projection import (
    GroundConfigError,
    GroundMeasurements,
    GroundProjector,
    PixelNoise,
    ProjectionConfig,
    Refusal,
)

__all__ = ["DISTORTION_MODELS", "CameraModel", "CameraModelError", "CameraPose", "CameraPoseError",
           "ConstantVelocityFilter", "FootPoint", "GroundConfigError", "GroundEstimate", "GroundMeasurements",
           "GroundProjector", "GroundStatus", "GroundTracker", "MotionConfig", "PixelNoise", "ProjectionConfig",
           "Refusal"]
