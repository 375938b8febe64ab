"""A calibrated camera as ``sensor_msgs/CameraInfo`` describes it: pixels <-> rays in the optical frame.

The optical frame is the ROS one (x right, y down, z forward). Distortion
follows the CameraInfo models: ``plumb_bob`` (k1 k2 p1 p2 k3) and
``rational_polynomial`` (k1 k2 p1 p2 k3 k4 k5 k6), which OpenCV's ``undistortPointsIter``
inverts, and ``equidistant`` (fisheye k1..k4), inverted here so that rays more than
90 degrees off the axis come out pointing backwards instead of folding over.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from smiletrack_ros.errors import SettingError

DISTORTION_MODELS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
MAX_IMAGE_SIDE = 16384
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)


class CameraModelError(SettingError):
    """A camera description that cannot be used; ``field`` names the part (K, D, ...)."""


def _finite_array(field: str, value: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise CameraModelError(field, f"must be numbers, got {value!r}") from None
    if shape is not None:
        if array.size != math.prod(shape):
            raise CameraModelError(field, f"must hold {math.prod(shape)} numbers, got {array.size}")
        array = array.reshape(shape)
    if not np.all(np.isfinite(array)):
        raise CameraModelError(field, f"must be finite, got {array.tolist()}")
    return array


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Intrinsics ``K`` (3x3), distortion ``D`` for ``distortion_model``, image ``width`` x ``height``.

    An empty ``D`` means no distortion; a shorter ``D`` than the model's is padded with zeros
    (as drivers publish plumb_bob with 5 and rational_polynomial with 8 coefficients).
    """

    K: np.ndarray
    D: np.ndarray
    distortion_model: str
    width: int
    height: int

    def __post_init__(self) -> None:
        K = _finite_array("K", self.K, (3, 3))
        if not (K[0, 0] > 0 and K[1, 1] > 0 and K[2, 2] == 1.0 and K[1, 0] == K[2, 0] == K[2, 1] == 0.0):
            raise CameraModelError("K", f"must be an upper-triangular camera matrix with fx, fy > 0, got {K.tolist()}")
        if self.distortion_model not in DISTORTION_MODELS:
            raise CameraModelError("distortion_model", f"must be one of {sorted(DISTORTION_MODELS)}, "
                                                       f"got {self.distortion_model!r}")
        D = _finite_array("D", self.D).reshape(-1)
        wanted = DISTORTION_MODELS[self.distortion_model]
        if D.size > wanted and np.any(D[wanted:] != 0):
            raise CameraModelError("D", f"{self.distortion_model} takes {wanted} coefficients, got {D.size}")
        D = np.concatenate([D[:wanted], np.zeros(max(0, wanted - D.size))])
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_IMAGE_SIDE:
                raise CameraModelError(name, f"must be an int in [1, {MAX_IMAGE_SIDE}], got {value!r}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", D)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def from_camera_info(cls, info: Any) -> CameraModel:
        """From a ``sensor_msgs/CameraInfo`` message or a mapping with its field names
        (``k``, ``d``, ``distortion_model``, ``width``, ``height``; upper-case ``K``/``D`` too)."""
        def get(name: str) -> Any:
            if isinstance(info, Mapping):
                for key in (name, name.upper()):
                    if key in info:
                        return info[key]
                raise CameraModelError(name, "missing from the camera info")
            return getattr(info, name)

        model = get("distortion_model") or "plumb_bob"
        return cls(K=get("k"), D=get("d"), distortion_model=str(model), width=get("width"), height=get("height"))

    @classmethod
    def pinhole(cls, width: int, height: int, hfov_deg: float) -> CameraModel:
        """An undistorted camera with square pixels, principal point at the image centre."""
        if not 1.0 <= hfov_deg <= 170.0:
            raise CameraModelError("hfov_deg", f"must be in [1, 170] degrees, got {hfov_deg}")
        f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)
        K = np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])
        return cls(K=K, D=np.zeros(5), distortion_model="plumb_bob", width=width, height=height)

    @property
    def distorted(self) -> bool:
        return bool(np.any(self.D != 0))

    def rays(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) pixel coordinates -> (N, 3) unit rays in the optical frame (z < 0: behind the camera,
        which only a fisheye past 90 degrees can see)."""
        uv = np.asarray(pixels, np.float64).reshape(-1, 2)
        if len(uv) == 0:
            return np.zeros((0, 3))
        if self.distortion_model == "equidistant":
            rays = self._fisheye_rays(uv)
        else:
            if self.distorted:
                xy = cv2.undistortPointsIter(uv[:, None, :], self.K, self.D, None, None,
                                             _UNDISTORT_CRITERIA).reshape(-1, 2)
            else:
                xy = np.column_stack([(uv[:, 0] - self.K[0, 2] - self.K[0, 1] * (uv[:, 1] - self.K[1, 2])
                                       / self.K[1, 1]) / self.K[0, 0], (uv[:, 1] - self.K[1, 2]) / self.K[1, 1]])
            rays = np.column_stack([xy, np.ones(len(xy))])
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    def _fisheye_rays(self, uv: np.ndarray) -> np.ndarray:
        """Inverts theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8) by Newton steps."""
        fx, skew, cx, fy, cy = self.K[0, 0], self.K[0, 1], self.K[0, 2], self.K[1, 1], self.K[1, 2]
        yd = (uv[:, 1] - cy) / fy
        xd = (uv[:, 0] - cx - skew * yd) / fx
        theta_d = np.hypot(xd, yd)
        k = self.D
        theta = theta_d.copy()
        for _ in range(30):
            t2 = theta * theta
            f = theta * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3])))) - theta_d
            df = 1 + t2 * (3 * k[0] + t2 * (5 * k[1] + t2 * (7 * k[2] + t2 * 9 * k[3])))
            step = f / np.where(np.abs(df) > 1e-12, df, 1e-12)
            theta = theta - step
            if np.all(np.abs(step) < 1e-14):
                break
        scale = np.where(theta_d > 1e-15, np.sin(theta) / np.maximum(theta_d, 1e-15), 1.0)
        return np.column_stack([xd * scale, yd * scale, np.cos(theta)])

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points in the optical frame (z > 0) -> (N, 2) distorted pixel coordinates."""
        p = np.asarray(points, np.float64).reshape(-1, 1, 3)
        if len(p) == 0:
            return np.zeros((0, 2))
        zero = np.zeros(3)
        if self.distortion_model == "equidistant":
            return cv2.fisheye.projectPoints(p, zero, zero, self.K, self.D)[0].reshape(-1, 2)
        return cv2.projectPoints(p, zero, zero, self.K, self.D)[0].reshape(-1, 2)
