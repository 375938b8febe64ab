"""Walkers on a metric floor, seen through the scene camera (``SceneConfig.camera``).

Each walker has a floor position (m) and velocity (m/s) in the camera's target
frame; its feet and head are projected to give its image place and size. People
walk on gently wandering paths (a heading random walk, no sharp turns); one who
leaves the image or the range limits is replaced by a new identity walking in
from a side. ``MetricCrowd`` offers what ``Scene`` asks of ``walkers.Crowd``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from smiletrack_ros.scene.config import SceneConfig
from smiletrack_ros.scene.figures import Appearance, Figure, random_appearance, render_figure

_STRIDE_M = 0.75          # metres walked per half stride cycle
_FIGURE_EXTENT = 0.968    # a figure's standing box height per unit of render height (figures.render_figure)
_BOTTOM_MARGIN_PX = 2.0   # feet kept this far above the image bottom
_SPAWN_TRIES = 200
_MIN_DEPTH_M = 0.5
_MAX_HEIGHT_IMAGES = 3.0  # a person taller than this many image heights is too near to draw


@dataclass(frozen=True)
class FloorTruth:
    """Metric truth of the people in a frame, aligned with ``FrameTruth.ids``: ``positions`` (N, 2) m
    and ``velocities`` (N, 2) m/s on the floor of the target frame, ``statures`` (N,) m."""

    positions: np.ndarray
    velocities: np.ndarray
    statures: np.ndarray


@dataclass
class MetricWalker:
    identity: int
    position: np.ndarray   # (2,) m
    heading: float         # radians, 0 = +x (away from the camera)
    speed: float           # m/s
    stature: float         # m
    phase: float
    look: Appearance
    x: float = 0.0         # image column of the feet (Scene's world x: the camera does not pan)
    foot_y: float = 0.0    # image row of the feet
    height_px: float = 0.0
    lean_px: float = 0.0   # image column of the head minus that of the feet (verticals converge)

    @property
    def velocity(self) -> np.ndarray:
        return self.speed * np.array([math.cos(self.heading), math.sin(self.heading)])


class MetricCrowd:
    def __init__(self, config: SceneConfig, rng: np.random.Generator):
        assert config.camera is not None
        self.config = config
        self.camera = config.camera
        self.rng = rng
        self.model = config.camera.model(config.width, config.height)
        self.pose = config.camera.pose()
        self.next_identity = 1
        lo, hi = config.camera.range_m
        far_v = self._project(np.array([hi, 0.0]), 0.0)[1]
        self.foot_lo = float(np.clip(far_v, 0.0, config.height - 1))
        self.foot_hi = float(config.height)
        self._height_lo = float(self._pixel_height(np.array([hi, 0.0]), config.camera.stature_m))
        self._height_hi = float(self._pixel_height(self._nearest_visible(), config.camera.stature_m))
        self.walkers: list[MetricWalker] = []
        for _ in range(config.num_people):
            self.walkers.append(self._new_walker(entering=False))

    # ---- what Scene asks ------------------------------------------------------------
    def height_at(self, foot_y: float | np.ndarray) -> float | np.ndarray:
        """Rough pixel height of a person with feet at ``foot_y`` (for placing false positives)."""
        t = np.clip((np.asarray(foot_y) - self.foot_lo) / max(self.foot_hi - self.foot_lo, 1.0), 0.0, 1.0)
        return self._height_lo + (self._height_hi - self._height_lo) * t

    def figure(self, walker: MetricWalker) -> Figure:
        """The walker drawn at its perspective height and sheared to its image's lean."""
        figure = render_figure(walker.look, walker.height_px / _FIGURE_EXTENT, walker.phase)
        shift = np.rint(figure.rows * (-walker.lean_px / max(walker.height_px, 1.0))).astype(np.int32)
        return Figure(rows=figure.rows, cols=figure.cols + shift, colours=figure.colours)

    def figure_anchor(self, walker: MetricWalker, figure: Figure, camera_x: float) -> tuple[int, int]:
        """Image position of the figure's origin such that its lowest pixel stands on the foot point
        (the stance foot is on the floor whatever the stride phase)."""
        return int(round(walker.x - camera_x)), int(round(walker.foot_y)) - figure.box()[3]

    def floor_truth(self, identities: np.ndarray) -> FloorTruth:
        by_id = {w.identity: w for w in self.walkers}
        chosen = [by_id[int(i)] for i in identities]
        return FloorTruth(positions=np.array([w.position for w in chosen], np.float64).reshape(-1, 2),
                          velocities=np.array([w.velocity for w in chosen], np.float64).reshape(-1, 2),
                          statures=np.array([w.stature for w in chosen], np.float64))

    def step(self, dt: float, camera_x: float) -> None:
        """Advance everyone by ``dt`` seconds; replace walkers that left the view or the range limits."""
        cam, rng = self.camera, self.rng
        lo, hi = cam.range_m
        for i, w in enumerate(self.walkers):
            w.heading = float(w.heading + rng.normal(0.0, cam.heading_drift * math.sqrt(dt)))
            w.speed = float(np.clip(w.speed + rng.normal(0.0, cam.speed_drift * math.sqrt(dt)), *cam.speed_mps))
            w.position = w.position + w.velocity * dt
            w.phase = (w.phase + math.pi * w.speed * dt / _STRIDE_M) % (2 * math.pi)
            self._place(w)
            distance = float(np.hypot(*w.position))
            margin = 0.5 * w.height_px + 2.0
            if not (lo <= distance <= hi and -margin <= w.x <= self.config.width + margin):
                self.walkers[i] = self._new_walker(entering=True)

    # ---- geometry ---------------------------------------------------------------------
    def _project(self, position: np.ndarray, z: float) -> np.ndarray:
        return self.model.project(self.pose.to_optical(np.array([[position[0], position[1], z]])))[0]

    def _pixel_height(self, position: np.ndarray, stature: float) -> float:
        return float(self._project(position, 0.0)[1] - self._project(position, stature)[1])

    def _nearest_visible(self) -> np.ndarray:
        lo, hi = self.camera.range_m
        for x in np.linspace(lo, hi, 200):
            if self._project(np.array([x, 0.0]), 0.0)[1] < self.config.height - _BOTTOM_MARGIN_PX:
                return np.array([x, 0.0])
        return np.array([hi, 0.0])

    def _place(self, w: MetricWalker) -> None:
        depth = self.pose.to_optical(np.array([[*w.position, 0.0], [*w.position, w.stature]]))[:, 2]
        feet = self._project(w.position, 0.0)
        head = self._project(w.position, w.stature)
        w.x, w.foot_y, w.height_px = float(feet[0]), float(feet[1]), float(feet[1] - head[1])
        w.lean_px = float(head[0] - feet[0])
        if depth.min() < _MIN_DEPTH_M or not 0 < w.height_px <= _MAX_HEIGHT_IMAGES * self.config.height:
            w.x, w.foot_y, w.height_px = -math.inf, math.inf, 0.0   # beside or behind the camera: out of view

    def _new_walker(self, entering: bool) -> MetricWalker:
        cfg, cam, rng = self.config, self.camera, self.rng
        taken = np.array([w.look.shirt_colour for w in self.walkers], np.float32).reshape(-1, 3)
        look = random_appearance(rng, taken)
        identity, self.next_identity = self.next_identity, self.next_identity + 1
        w = MetricWalker(identity=identity, position=np.zeros(2), heading=0.0,
                         speed=float(rng.uniform(*cam.speed_mps)), stature=cam.stature_m * look.stature,
                         phase=float(rng.uniform(0, 2 * math.pi)), look=look)
        lo, hi = cam.range_m
        half_fov = math.radians(cam.hfov_deg) / 2
        for _ in range(_SPAWN_TRIES):
            distance = float(rng.uniform(lo, hi))
            if entering:   # just outside a side edge, heading into the view
                side = float(rng.choice([-1.0, 1.0]))
                bearing = side * half_fov * 1.02
                heading = bearing + math.pi - side * float(rng.uniform(0.4, 1.2))
            else:
                bearing = float(rng.uniform(-0.9, 0.9)) * half_fov
                heading = float(rng.uniform(-math.pi, math.pi))
            w.position = distance * np.array([math.cos(bearing), math.sin(bearing)])
            w.heading = heading
            self._place(w)
            if w.foot_y < cfg.height - _BOTTOM_MARGIN_PX:
                return w
        return w
