"""A metric scene camera: people walk on a floor in metres and are seen through a pinhole camera.

With ``SceneConfig(camera=SceneCamera(...))`` the scene's walkers have floor
positions and velocities (the ground truth of ``smiletrack_ros.ground``) and
are drawn with the size and place the camera's perspective gives them.
Coordinates are those of the ground package's target frame: origin on the
floor below the camera, x forward, y left, z up.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from smiletrack_ros.ground import CameraModel, CameraPose
from smiletrack_ros.scene.config import SceneConfigError, _range_pair


@dataclass(frozen=True)
class SceneCamera:
    """``height_m`` above the floor, ``pitch_deg`` down from the horizontal, ``hfov_deg`` across the
    image (square pixels, no distortion). Walkers stay within ``range_m`` (horizontal distance from
    the camera) and walk at ``speed_mps``, turning with a heading random walk of ``heading_drift``
    radians per sqrt(second) and changing speed by ``speed_drift`` m/s per sqrt(second); their
    standing height is ``stature_m`` times their look's stature factor (0.9-1.08)."""

    height_m: float = 1.5
    pitch_deg: float = 10.0
    hfov_deg: float = 70.0
    range_m: tuple[float, float] = (1.0, 12.0)
    speed_mps: tuple[float, float] = (0.5, 1.8)
    heading_drift: float = 0.15
    speed_drift: float = 0.05
    stature_m: float = 1.75

    def __post_init__(self) -> None:
        for name in ("height_m", "pitch_deg", "hfov_deg", "heading_drift", "speed_drift", "stature_m"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SceneConfigError(f"camera.{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0.3 <= self.height_m <= 20.0:
            raise SceneConfigError(f"camera.height_m must be in [0.3, 20], got {self.height_m}")
        if not 0.0 <= self.pitch_deg <= 60.0:
            raise SceneConfigError(f"camera.pitch_deg must be in [0, 60], got {self.pitch_deg}")
        if not 20.0 <= self.hfov_deg <= 120.0:
            raise SceneConfigError(f"camera.hfov_deg must be in [20, 120], got {self.hfov_deg}")
        if not (0.0 <= self.heading_drift <= 3.0 and 0.0 <= self.speed_drift <= 1.0):
            raise SceneConfigError("camera.heading_drift must be in [0, 3] and camera.speed_drift in [0, 1]")
        if not 0.5 <= self.stature_m <= 2.5:
            raise SceneConfigError(f"camera.stature_m must be in [0.5, 2.5], got {self.stature_m}")
        object.__setattr__(self, "range_m", _range_pair("camera.range_m", self.range_m, 0.3, 100.0))
        object.__setattr__(self, "speed_mps", _range_pair("camera.speed_mps", self.speed_mps, 0.0, 5.0))

    def model(self, width: int, height: int) -> CameraModel:
        return CameraModel.pinhole(width, height, self.hfov_deg)

    def pose(self) -> CameraPose:
        return CameraPose.from_mounting(self.height_m, math.radians(self.pitch_deg))

    def horizon_row(self, width: int, height: int) -> float:
        """Image row of the horizon (may lie above the image)."""
        K = self.model(width, height).K
        return float(K[1, 2] - K[1, 1] * math.tan(math.radians(self.pitch_deg)))
