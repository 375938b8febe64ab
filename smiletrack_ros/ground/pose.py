"""Where the camera is: the rigid transform from its optical frame to the ground (target) frame.

The target frame is ROS's body convention (x forward, y left, z up) with the
floor at z = 0, as ``base_link`` or ``base_footprint`` on a ground robot. A pose
is given either as the 4x4 transform ``T_target_optical`` (what TF calls the
``optical_frame -> target_frame`` transform: it maps optical-frame points into
the target frame) or by the mounting: height above the floor, pitch (positive
looks down), roll and yaw, as a ``camera_link`` is mounted with ``rpy`` in a URDF.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from smiletrack_ros.errors import SettingError

# Optical frame (x right, y down, z forward) expressed in a body frame (x forward, y left, z up):
# the fixed rotation of REP 103's camera_link -> camera_optical_frame.
OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class CameraPoseError(SettingError):
    """A camera pose that cannot be used; ``field`` names the part."""


def _rotation_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll): URDF's fixed-axis roll, pitch, yaw."""
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch),
                              math.cos(yaw), math.sin(yaw))
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


@dataclass(frozen=True, eq=False)
class CameraPose:
    """``matrix``: 4x4 ``T_target_optical``; the camera must be above the floor (z > 0)."""

    matrix: np.ndarray

    def __post_init__(self) -> None:
        try:
            T = np.asarray(self.matrix, np.float64).reshape(4, 4)
        except (TypeError, ValueError):
            raise CameraPoseError("transform", f"must be 16 numbers (a 4x4 matrix), got {self.matrix!r}") from None
        if not np.all(np.isfinite(T)):
            raise CameraPoseError("transform", "must be finite")
        if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0]):
            raise CameraPoseError("transform", f"last row must be 0 0 0 1, got {T[3].tolist()}")
        R = T[:3, :3]
        if not (np.allclose(R @ R.T, np.eye(3), atol=1e-6) and np.linalg.det(R) > 0):
            raise CameraPoseError("transform", "the 3x3 block must be a rotation (orthonormal, det +1)")
        if not T[2, 3] > 0.0:
            raise CameraPoseError("height", f"the camera must be above the floor (z > 0), got z = {T[2, 3]}")
        object.__setattr__(self, "matrix", T)

    @classmethod
    def from_mounting(cls, height: float, pitch: float, roll: float = 0.0, yaw: float = 0.0,
                      x: float = 0.0, y: float = 0.0) -> CameraPose:
        """Height in metres; pitch (positive: looking down), roll, yaw in radians, applied as
        URDF ``rpy`` to a body frame at (x, y, height), whose optical frame then looks along x."""
        for name, value in (("height", height), ("pitch", pitch), ("roll", roll), ("yaw", yaw), ("x", x), ("y", y)):
            if not math.isfinite(value):
                raise CameraPoseError(name, f"must be finite, got {value}")
        if not abs(pitch) < math.pi / 2:
            raise CameraPoseError("pitch", f"must be within +-90 degrees, got {math.degrees(pitch):.1f}")
        T = np.eye(4)
        T[:3, :3] = _rotation_rpy(roll, pitch, yaw) @ OPTICAL_IN_BODY
        T[:3, 3] = (x, y, height)
        return cls(T)

    @property
    def rotation(self) -> np.ndarray:
        return self.matrix[:3, :3]

    @property
    def position(self) -> np.ndarray:
        return self.matrix[:3, 3]

    @property
    def height(self) -> float:
        return float(self.matrix[2, 3])

    def to_optical(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) target-frame points -> optical frame."""
        return (np.asarray(points, np.float64) - self.position) @ self.rotation
