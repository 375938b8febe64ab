"""Where the people are: walkers on a ground band, crossing the view and replaced when they leave it.

Positions are world pixels: x along the (horizontally panning) street, y the
image row of the feet. Heights follow the foot row (perspective), so foot y is
also the depth order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smiletrack_ros.scene.config import SceneConfig
from smiletrack_ros.scene.figures import Appearance, Figure, random_appearance, render_figure

_MAX_HEADING = 0.6   # radians away from the horizontal
_HEADING_DRIFT = 0.5  # heading random-walk std per sqrt(second)
_VERTICAL_FORESHORTENING = 0.35
_STRIDE_HEIGHTS = 0.55  # body heights walked per half stride cycle


@dataclass
class Walker:
    identity: int
    x: float
    foot_y: float
    direction: float  # +1 walks right, -1 walks left
    heading: float
    speed: float      # body heights per second
    phase: float
    look: Appearance


class Crowd:
    """``num_people`` walkers kept in view; identities come from a per-instance counter."""

    def __init__(self, config: SceneConfig, rng: np.random.Generator):
        self.config = config
        self.rng = rng
        self.next_identity = 1
        self.foot_lo = config.ground_band[0] * config.height
        self.foot_hi = config.ground_band[1] * config.height
        self.walkers: list[Walker] = []
        for _ in range(config.num_people):
            self.walkers.append(self._new_walker(camera_x=0.0, entering=False))

    def height_at(self, foot_y: float | np.ndarray) -> float | np.ndarray:
        """Standing height in pixels for feet at ``foot_y`` (linear perspective)."""
        lo, hi = self.config.person_height
        t = (np.asarray(foot_y) - self.foot_lo) / (self.foot_hi - self.foot_lo)
        return (lo + (hi - lo) * t) * self.config.height

    def figure(self, walker: Walker) -> Figure:
        return render_figure(walker.look, float(self.height_at(walker.foot_y)) * walker.look.stature, walker.phase)

    def figure_anchor(self, walker: Walker, figure: Figure, camera_x: float) -> tuple[int, int]:
        """Image position of the figure's origin (the point between its feet)."""
        return int(round(walker.x - camera_x)), int(round(walker.foot_y))

    def _new_walker(self, camera_x: float, entering: bool) -> Walker:
        rng, cfg = self.rng, self.config
        foot_y = float(rng.uniform(self.foot_lo, self.foot_hi))
        direction = float(rng.choice([-1.0, 1.0]))
        speed = float(rng.uniform(*cfg.walk_speed))
        height = float(self.height_at(foot_y))
        if entering:
            # just outside the side from which it moves into view, relative to the panning camera
            into_view_from_left = direction * speed * height > cfg.camera_pan
            x = camera_x + (-0.35 * height if into_view_from_left else cfg.width + 0.35 * height)
        else:
            x = camera_x + float(rng.uniform(0, cfg.width))
        taken = np.array([w.look.shirt_colour for w in self.walkers], np.float32).reshape(-1, 3)
        identity, self.next_identity = self.next_identity, self.next_identity + 1
        return Walker(identity=identity, x=x, foot_y=foot_y, direction=direction,
                      heading=float(rng.uniform(-0.3, 0.3)), speed=speed,
                      phase=float(rng.uniform(0, 2 * np.pi)), look=random_appearance(rng, taken))

    def step(self, dt: float, camera_x: float) -> None:
        """Advance everyone by ``dt`` seconds; replace walkers that have left the view."""
        cfg, rng = self.config, self.rng
        for i, w in enumerate(self.walkers):
            height = float(self.height_at(w.foot_y)) * w.look.stature
            w.heading = float(np.clip(w.heading + rng.normal(0.0, _HEADING_DRIFT * np.sqrt(dt)),
                                      -_MAX_HEADING, _MAX_HEADING))
            distance = w.speed * height * dt
            w.x += w.direction * distance * np.cos(w.heading)
            w.foot_y += distance * np.sin(w.heading) * _VERTICAL_FORESHORTENING
            if not self.foot_lo <= w.foot_y <= self.foot_hi:
                w.foot_y = float(np.clip(w.foot_y, self.foot_lo, self.foot_hi))
                w.heading = -w.heading
            w.phase = (w.phase + np.pi * distance / (_STRIDE_HEIGHTS * height)) % (2 * np.pi)
            margin = 0.5 * height
            view_x = w.x - camera_x
            if view_x < -margin or view_x > cfg.width + margin:
                self.walkers[i] = self._new_walker(camera_x, entering=True)
