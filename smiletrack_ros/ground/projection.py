"""Boxes -> people on the floor: foot point ray meets z = 0, with a covariance and a height check.

The foot point is the bottom centre of a box in the (distorted) image. Its ray,
undistorted and turned into the target frame, meets the floor at the person's
position. The position's covariance is the pixel noise pushed through the
Jacobian of that map (central differences, so every distortion model is
covered); it grows with range because the map stretches towards the horizon.
The box top gives the person's height (where the head ray passes the vertical
line through the foot point), which must be human to be believed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from smiletrack_ros.errors import SettingError
from smiletrack_ros.ground.camera import CameraModel
from smiletrack_ros.ground.pose import CameraPose

_JACOBIAN_STEP_PX = 0.25
_TYPICAL_HEIGHT = 1.7      # m, for the lean of a person's image (the box's own height is not known yet)
_LEAN_SPREAD = 0.5         # std (in leans) of where between the head and feet columns a box is centred
_HORIZON_EPS = 1e-9


class Refusal(IntEnum):
    """Why a track has no ground measurement in a frame (``NONE``: it has one)."""

    NONE = 0
    NO_CAMERA_MODEL = 1     # no camera_info (or pose) yet
    INVALID_BOX = 2         # non-finite or empty box
    TRUNCATED = 3           # the box touches the image bottom (or both sides): its foot point is not the feet
    ABOVE_HORIZON = 4       # the foot ray does not go down to the floor
    BEHIND_CAMERA = 5       # the foot ray points backwards (fisheye beyond 90 degrees)
    TOO_FAR = 6             # beyond max_range, or so near the horizon that pixel noise could lift it above
    IMPLAUSIBLE_HEIGHT = 7  # the box top puts the head outside [min_height, max_height]
    OUTLIER = 8             # far outside the track's predicted ground position (ground filter's gate)
    UNMATCHED = 9           # the track has no detection in this frame
    LOW_SCORE = 10          # a low-score detection: mostly occluded, its box need not reach the feet


class GroundConfigError(SettingError):
    """A ground projection or filter setting out of range; ``field`` names it."""


def positive_number(name: str, value: object, allow_zero: bool = False) -> float:
    """``value`` as a float, or a GroundConfigError naming the setting: the ground package's one check."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise GroundConfigError(name, f"must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PixelNoise:
    """Standard deviation of a detector's foot point, per axis: ``floor_px`` combined (in quadrature)
    with a fraction of the box width (x) and height (y), since a detector's box edges jitter in
    proportion to the box. Calibrate the fractions on the detector in use."""

    x_fraction: float = 0.03
    y_fraction: float = 0.04
    floor_px: float = 1.0

    def __post_init__(self) -> None:
        for name in ("x_fraction", "y_fraction", "floor_px"):
            object.__setattr__(self, name, positive_number(name, getattr(self, name), allow_zero=name != "floor_px"))

    def foot_sigma(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) boxes -> (N, 2) pixel std of their foot points (u, v)."""
        size = boxes[:, 2:4] - boxes[:, 0:2]
        return np.hypot(self.floor_px, size * np.array([self.x_fraction, self.y_fraction]))


@dataclass(frozen=True)
class ProjectionConfig:
    """``min_height``/``max_height``: believable standing heights (m); ``max_range``: farthest
    believable foot point (m, horizontal distance from the camera); ``horizon_sigmas``: a foot
    point whose ray would rise above the horizon when moved this many pixel sigmas up is refused
    (its range is not determined by the pixels); ``border_px``: a box edge this near the image
    bottom or sides, plus ``border_sigmas`` of its pixel noise, may be cut off by it;
    ``person_width``: box width per box height of a walking person, to place the feet of a box
    cut off by one side (its uncut edge minus half that width, with a quarter of that width added
    to the foot point's std); ``min_score``: detections scored lower are not measured (a
    detector's low scores are mostly occluded people, whose boxes cover only what shows)."""

    noise: PixelNoise = PixelNoise()
    min_height: float = 0.8
    max_height: float = 2.5
    max_range: float = 40.0
    horizon_sigmas: float = 3.0
    border_px: float = 1.0
    border_sigmas: float = 2.0
    person_width: float = 0.4
    min_score: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.noise, PixelNoise):
            raise GroundConfigError("noise", f"must be a PixelNoise, got {self.noise!r}")
        for name in ("min_height", "max_height", "max_range", "person_width"):
            object.__setattr__(self, name, positive_number(name, getattr(self, name)))
        if not 0.0 <= self.min_score <= 1.0:
            raise GroundConfigError("min_score", f"must be in [0, 1], got {self.min_score}")
        for name in ("horizon_sigmas", "border_px", "border_sigmas"):
            object.__setattr__(self, name, positive_number(name, getattr(self, name), allow_zero=True))
        if self.min_height >= self.max_height:
            raise GroundConfigError("min_height", f"must be below max_height ({self.max_height}), "
                                                  f"got {self.min_height}")


@dataclass(frozen=True, eq=False)
class GroundMeasurements:
    """Per box: ``positions`` (N, 2) x, y on the floor of the target frame (m; nan when refused),
    ``covariances`` (N, 2, 2) m^2, ``column_sigmas`` (N, 2) m: the floor displacement of a one-sigma
    error of the foot point's image column (its share of ``covariances``: the ground filter models
    part of it as correlated over frames), ``heights`` (N,) estimated standing height (m; nan when
    the head is cut off or the position refused), ``ranges`` (N,) horizontal distance from the
    camera, ``refusals`` (N,) ``Refusal`` codes (0: usable)."""

    positions: np.ndarray
    covariances: np.ndarray
    column_sigmas: np.ndarray
    heights: np.ndarray
    ranges: np.ndarray
    refusals: np.ndarray

    def __len__(self) -> int:
        return len(self.refusals)

    @property
    def usable(self) -> np.ndarray:
        return self.refusals == Refusal.NONE


class GroundProjector:
    """A camera at a pose over a flat floor; ``project(boxes)`` gives ``GroundMeasurements``."""

    def __init__(self, camera: CameraModel, pose: CameraPose, config: ProjectionConfig | None = None):
        if not isinstance(camera, CameraModel):
            raise GroundConfigError("camera", f"must be a CameraModel, got {type(camera).__name__}")
        if not isinstance(pose, CameraPose):
            raise GroundConfigError("pose", f"must be a CameraPose, got {type(pose).__name__}")
        self.camera = camera
        self.pose = pose
        self.config = config if config is not None else ProjectionConfig()

    def floor_points(self, pixels: np.ndarray, plane_z: float | np.ndarray = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) pixels -> ((N, 3) points where their rays meet the plane z = ``plane_z`` (the floor
        by default; nan where they do not), (N,) refusals: NONE, ABOVE_HORIZON (the ray does not
        reach the plane) or BEHIND_CAMERA)."""
        rays_optical = self.camera.rays(pixels)
        directions = rays_optical @ self.pose.rotation.T
        refusals = np.full(len(directions), Refusal.NONE, np.uint8)
        rise = np.broadcast_to(np.asarray(plane_z, np.float64), len(directions)) - self.pose.height
        dz = directions[:, 2]
        reaches = (np.abs(dz) > _HORIZON_EPS) & (np.sign(dz) == np.sign(rise)) & (rise != 0)
        refusals[~reaches] = Refusal.ABOVE_HORIZON
        refusals[rays_optical[:, 2] <= 0.0] = Refusal.BEHIND_CAMERA
        scale = np.where(refusals == Refusal.NONE, rise / np.where(reaches, dz, 1.0), np.nan)
        return self.pose.position + scale[:, None] * directions, refusals

    def head_points(self, boxes: np.ndarray, heights: np.ndarray, height_sigmas: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For boxes whose feet are cut off but whose head shows: where the ray through the box top
        meets the plane of the person's known standing height -> ((N, 2) positions, (N, 2, 2)
        covariances from the top edge's pixel noise and ``height_sigmas``, (N, 2) column sigmas as
        in ``GroundMeasurements``, (N,) refusals)."""
        cfg, cam = self.config, self.camera
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        heights = np.asarray(heights, np.float64).reshape(-1)
        n = len(boxes)
        sigma = cfg.noise.foot_sigma(boxes)
        margin = cfg.border_px + cfg.border_sigmas * sigma
        cut = ((boxes[:, 0] <= margin[:, 0]) | (boxes[:, 2] >= cam.width - margin[:, 0])
               | (boxes[:, 1] <= margin[:, 1]) | ~np.isfinite(heights))
        top = np.column_stack([(boxes[:, 0] + boxes[:, 2]) * 0.5, boxes[:, 1]])
        first, _ = self.floor_points(top, heights)
        lean = self._lean_px(first[:, :2], heights)
        top[:, 0] += 0.5 * lean                                   # the head is half the lean off the centre
        sigma[:, 0] = np.hypot(sigma[:, 0], _LEAN_SPREAD * lean)
        h, dh = _JACOBIAN_STEP_PX, 0.01
        offsets = np.array([[0.0, 0.0], [h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h], [0.0, 0.0], [0.0, 0.0],
                            [0.0, 0.0], [0.0, 0.0]])
        probes = top[:, None, :] + offsets[None, :, :]
        probes[:, 7, 1] -= cfg.horizon_sigmas * sigma[:, 1]
        probes[:, 8, 1] += cfg.horizon_sigmas * sigma[:, 1]
        planes = np.repeat(heights[:, None], 9, axis=1)
        planes[:, 5] += dh
        planes[:, 6] -= dh
        points, refusals = self.floor_points(probes.reshape(-1, 2), planes.reshape(-1))
        points, refusals = points.reshape(n, 9, 3), refusals.reshape(n, 9)
        out = np.where(cut, Refusal.TRUNCATED, refusals[:, 0]).astype(np.uint8)
        ground = points[:, 0, :2]
        ranges = np.hypot(*(ground - self.pose.position[:2]).T)
        unstable = np.any(refusals[:, 1:] != Refusal.NONE, axis=1) | ~(ranges <= cfg.max_range)
        out[(out == Refusal.NONE) & unstable] = Refusal.TOO_FAR
        J = np.stack([(points[:, 1, :2] - points[:, 2, :2]) / (2 * h),
                      (points[:, 3, :2] - points[:, 4, :2]) / (2 * h)], axis=2)
        J_height = (points[:, 5, :2] - points[:, 6, :2]) / (2 * dh)
        covariances = (J @ (sigma[:, :, None] ** 2 * np.eye(2)) @ J.transpose(0, 2, 1)
                       + np.asarray(height_sigmas, np.float64).reshape(-1, 1, 1) ** 2
                       * J_height[:, :, None] * J_height[:, None, :])
        usable = out == Refusal.NONE
        return (np.where(usable[:, None], ground, np.nan), np.where(usable[:, None, None], covariances, np.nan),
                np.where(usable[:, None], J[:, :, 0] * sigma[:, :1], np.nan), out)

    def project(self, boxes: np.ndarray, scores: np.ndarray | None = None) -> GroundMeasurements:
        """(N, 4) boxes x1, y1, x2, y2 in image pixels (and their detection scores, if known) ->
        their feet on the floor."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        cfg, cam = self.config, self.camera
        n = len(boxes)
        refusals = np.full(n, Refusal.NONE, np.uint8)
        valid = np.all(np.isfinite(boxes), axis=1) & np.all(boxes[:, 2:4] > boxes[:, 0:2], axis=1)
        refusals[~valid] = Refusal.INVALID_BOX
        safe = np.where(valid[:, None], boxes, [0.0, 0.0, 1.0, 1.0])
        sigma = cfg.noise.foot_sigma(safe)
        margin = cfg.border_px + cfg.border_sigmas * sigma
        left_cut, right_cut = safe[:, 0] <= margin[:, 0], safe[:, 2] >= cam.width - margin[:, 0]
        bottom_cut = safe[:, 3] >= cam.height - margin[:, 1]
        refusals[valid & (bottom_cut | (left_cut & right_cut))] = Refusal.TRUNCATED
        if scores is not None:
            low = ~(np.asarray(scores, np.float64).reshape(-1) >= cfg.min_score)
            refusals[(refusals == Refusal.NONE) & low] = Refusal.LOW_SCORE

        foot = np.column_stack([(safe[:, 0] + safe[:, 2]) * 0.5, safe[:, 3]])
        # a box cut by one side: the feet are half a person's width in from its uncut edge
        box_h = safe[:, 3] - safe[:, 1]
        half = np.maximum(0.5 * cfg.person_width * box_h, 0.5 * (safe[:, 2] - safe[:, 0]))
        one_side = left_cut ^ right_cut
        foot[:, 0] = np.where(left_cut & one_side, safe[:, 2] - half, np.where(right_cut & one_side,
                                                                               safe[:, 0] + half, foot[:, 0]))
        sigma[:, 0] = np.where(one_side, np.hypot(sigma[:, 0], 0.25 * cfg.person_width * box_h), sigma[:, 0])
        # the feet are half the image's lean back from the box centre; the lean grows with the
        # person's height, taken from the box (two rounds: the lean moves the foot point a little)
        centre, lean, stature = foot[:, 0].copy(), np.zeros(n), np.full(n, _TYPICAL_HEIGHT)
        for _ in range(2):
            first, _ = self.floor_points(foot)
            lean = self._lean_px(first[:, :2], stature)
            foot[:, 0] = centre - 0.5 * lean
            first, _ = self.floor_points(foot)
            estimate = self._heights(centre + 0.5 * lean, safe[:, 1], first)
            stature = np.where((estimate > 0.3) & (estimate < 3.0), estimate, _TYPICAL_HEIGHT)
        sigma[:, 0] = np.hypot(sigma[:, 0], _LEAN_SPREAD * lean)   # where in between depends on the pose
        h = _JACOBIAN_STEP_PX
        offsets = np.array([[0.0, 0.0], [h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h], [0.0, 0.0]])
        probes = foot[:, None, :] + offsets[None, :, :]
        probes[:, 5, 1] -= cfg.horizon_sigmas * sigma[:, 1]   # the foot point raised by horizon_sigmas
        points, ray_refusals = self.floor_points(probes.reshape(-1, 2))
        points, ray_refusals = points.reshape(n, 6, 3), ray_refusals.reshape(n, 6)

        unset = refusals == Refusal.NONE
        refusals[unset] = ray_refusals[unset, 0]
        ground = points[:, 0, :2]
        ranges = np.hypot(*(ground - self.pose.position[:2]).T)
        near_horizon = np.any(ray_refusals[:, 1:] != Refusal.NONE, axis=1) | ~(ranges <= cfg.max_range)
        refusals[(refusals == Refusal.NONE) & near_horizon] = Refusal.TOO_FAR

        jacobian = np.stack([(points[:, 1, :2] - points[:, 2, :2]) / (2 * h),
                             (points[:, 3, :2] - points[:, 4, :2]) / (2 * h)], axis=2)   # (N, 2, 2)
        covariances = jacobian @ (sigma[:, :, None] ** 2 * np.eye(2)) @ jacobian.transpose(0, 2, 1)

        heights = self._heights(foot[:, 0] + lean, safe[:, 1], points[:, 0])
        head_cut = safe[:, 1] <= margin[:, 1]
        implausible = (heights > cfg.max_height) | (~head_cut & ~(heights >= cfg.min_height))
        refusals[(refusals == Refusal.NONE) & implausible] = Refusal.IMPLAUSIBLE_HEIGHT
        heights = np.where(head_cut, np.nan, heights)

        usable = refusals == Refusal.NONE
        return GroundMeasurements(positions=np.where(usable[:, None], ground, np.nan),
                                  covariances=np.where(usable[:, None, None], covariances, np.nan),
                                  column_sigmas=np.where(usable[:, None], jacobian[:, :, 0] * sigma[:, :1], np.nan),
                                  heights=np.where(usable, heights, np.nan),
                                  ranges=np.where(usable, ranges, np.nan), refusals=refusals)

    def _lean_px(self, positions: np.ndarray, heights: np.ndarray) -> np.ndarray:
        """Image column of the head minus that of the feet of upright people standing at
        ``positions`` (N, 2) with ``heights`` (0 where unknown or not in front of the camera).

        Verticals converge in a pitched camera's image, so a person's image leans and a box drawn
        around it is centred half way between the head's column and the feet's."""
        n = len(positions)
        lean = np.zeros(n)
        ends = np.zeros((n, 2, 3))
        ends[:, :, :2] = positions[:, None, :]
        ends[:, 0, 2] = heights
        optical = self.pose.to_optical(ends.reshape(-1, 3)).reshape(n, 2, 3)
        ahead = np.all(np.isfinite(optical), axis=(1, 2)) & np.all(optical[:, :, 2] > 0.1, axis=1)
        if ahead.any():
            uv = self.camera.project(optical[ahead].reshape(-1, 3)).reshape(-1, 2, 2)
            lean[ahead] = uv[:, 0, 0] - uv[:, 1, 0]
        return lean

    def _heights(self, column: np.ndarray, top_row: np.ndarray, feet: np.ndarray) -> np.ndarray:
        """Height above the floor where the ray through each box's top (above its foot point) passes
        nearest the vertical line through the foot point (nan where that line and ray are parallel)."""
        top = np.column_stack([column, top_row])
        d = self.camera.rays(top) @ self.pose.rotation.T
        w = self.pose.position - feet
        horizontal = 1.0 - d[:, 2] ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (d[:, 2] * w[:, 2] - np.einsum("ij,ij->i", d, w)) / horizontal
            height = t * d[:, 2] + w[:, 2]
        return np.where((horizontal > 1e-12) & (t > 0), height, np.nan)
