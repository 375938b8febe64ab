"""People-like figures: clothing drawn from a seeded generator, rendered at any size and stride phase.

A figure is a head ellipse with hair, a torso, swinging arms and legs and
shoes. Garments carry a texture (solid, stripes, checks or smooth noise) laid
out in body-height units, so it moves and scales with the person.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

GARMENT_KINDS = ("solid", "stripes", "checks", "noise")
_SKIN_TONES = np.array([[60, 85, 140], [85, 120, 180], [110, 150, 205], [140, 180, 230], [45, 60, 95]], np.float32)
_HAIR_TONES = np.array([[20, 20, 25], [25, 45, 80], [40, 70, 120], [120, 140, 160], [35, 35, 45]], np.float32)

# part ids in a figure's part map
_SKIN, _HAIR, _SHIRT, _TROUSERS, _SHOES = 1, 2, 3, 4, 5
_SHIFT = 3  # fixed-point bits for sub-pixel drawing
_SCALE = 1 << _SHIFT


@dataclass(frozen=True)
class Garment:
    kind: str
    colour_a: np.ndarray   # (3,) float32 BGR
    colour_b: np.ndarray   # (3,) float32 BGR
    period: float          # pattern period in body heights
    angle: float           # stripe direction, radians
    noise_tile: np.ndarray  # (8, 8) float32 in [0, 1] for "noise"

    def colours_at(self, rows: np.ndarray, cols: np.ndarray, height_px: float,
                   shape: tuple[int, int]) -> np.ndarray:
        """The garment's colours at canvas pixels (rows, cols) of a figure ``height_px`` tall, (M, 3)."""
        if self.kind == "solid":
            return np.broadcast_to(self.colour_a, (len(rows), 3))
        if self.kind == "noise":
            blend = cv2.resize(self.noise_tile, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)[rows, cols]
        else:
            scale = 1.0 / (height_px * self.period)
            u, v = cols * scale, rows * scale
            if self.kind == "stripes":
                blend = np.floor(u * np.cos(self.angle) + v * np.sin(self.angle)) % 2
            else:
                blend = (np.floor(u) + np.floor(v)) % 2
        blend = blend.astype(np.float32)[:, None]
        return self.colour_a * (1.0 - blend) + self.colour_b * blend


@dataclass(frozen=True)
class Appearance:
    skin: np.ndarray
    hair: np.ndarray
    shoes: np.ndarray
    shirt: Garment
    trousers: Garment
    build: float    # shoulder / hip width factor
    stature: float  # height factor around the perspective height

    @property
    def shirt_colour(self) -> np.ndarray:
        return self.shirt.colour_a


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(60, 255), rng.uniform(50, 250)]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _distinct_colour(rng: np.random.Generator, taken: np.ndarray, candidates: int = 6) -> np.ndarray:
    """The candidate colour farthest from the colours already in the scene."""
    options = np.stack([_random_colour(rng) for _ in range(candidates)])
    if len(taken) == 0:
        return options[0]
    distance = np.linalg.norm(options[:, None, :] - taken[None, :, :], axis=2).min(axis=1)
    return options[int(np.argmax(distance))]


def _garment(rng: np.random.Generator, colour_a: np.ndarray) -> Garment:
    kind = GARMENT_KINDS[int(rng.integers(len(GARMENT_KINDS)))]
    colour_b = _random_colour(rng) if rng.random() < 0.6 else colour_a * rng.uniform(0.35, 0.7)
    return Garment(kind=kind, colour_a=colour_a, colour_b=colour_b.astype(np.float32),
                   period=float(rng.uniform(0.025, 0.07)), angle=float(rng.choice([0.0, np.pi / 2, np.pi / 4])),
                   noise_tile=rng.random((8, 8)).astype(np.float32))


def random_appearance(rng: np.random.Generator, taken_shirts: np.ndarray) -> Appearance:
    """A new person's look; the shirt colour is kept away from ``taken_shirts`` (K, 3)."""
    shirt = _garment(rng, _distinct_colour(rng, taken_shirts))
    trousers = _garment(rng, _random_colour(rng) * rng.uniform(0.4, 1.0))
    return Appearance(
        skin=_SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))] * rng.uniform(0.9, 1.1),
        hair=_HAIR_TONES[int(rng.integers(len(_HAIR_TONES)))] * rng.uniform(0.8, 1.2),
        shoes=np.full(3, rng.uniform(15, 90), np.float32),
        shirt=shirt, trousers=trousers,
        build=float(rng.uniform(0.85, 1.15)), stature=float(rng.uniform(0.9, 1.08)))


@dataclass(frozen=True)
class Figure:
    """A rendered person as its pixels: ``rows``/``cols`` (M,) int32 relative to the point
    between the feet, ``colours`` (M, 3) uint8 BGR."""

    rows: np.ndarray
    cols: np.ndarray
    colours: np.ndarray

    def box(self) -> tuple[int, int, int, int]:
        """Tight x1, y1, x2, y2 (exclusive ends) relative to the feet."""
        return (int(self.cols.min()), int(self.rows.min()), int(self.cols.max()) + 1, int(self.rows.max()) + 1)


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _SCALE)), int(round(y * _SCALE))


def _limb(parts: np.ndarray, part: int, start: tuple[float, float], angle: float, length: float,
          thickness: float) -> tuple[float, float]:
    end = (start[0] + length * np.sin(angle), start[1] + length * np.cos(angle))
    cv2.line(parts, _pt(*start), _pt(*end), part, max(1, int(round(thickness))), cv2.LINE_8, _SHIFT)
    return end


def render_figure(look: Appearance, height_px: float, phase: float) -> Figure:
    """Draw ``look`` at a standing height of ``height_px`` with the stride at ``phase`` (radians)."""
    h = float(height_px)
    canvas_h, canvas_w = int(np.ceil(h)) + 2, int(np.ceil(0.7 * h)) + 2
    cx = canvas_w / 2.0
    parts = np.zeros((canvas_h, canvas_w), np.uint8)
    b = look.build
    swing = 0.38 * np.sin(phase)

    hip_y, leg_len, leg_w = 0.48 * h, 0.47 * h, 0.08 * h * b
    for side, sign in ((-1.0, 1.0), (1.0, -1.0)):
        foot = _limb(parts, _TROUSERS, (cx + side * 0.045 * h * b, hip_y), sign * swing, leg_len, leg_w)
        cv2.ellipse(parts, _pt(foot[0] + sign * 0.01 * h, foot[1]), _pt(0.045 * h, 0.022 * h), 0, 0, 360,
                    _SHOES, -1, cv2.LINE_8, _SHIFT)
    shoulder_y = 0.15 * h
    torso = np.array([_pt(cx - 0.11 * h * b, shoulder_y), _pt(cx + 0.11 * h * b, shoulder_y),
                      _pt(cx + 0.09 * h * b, hip_y + 0.02 * h), _pt(cx - 0.09 * h * b, hip_y + 0.02 * h)], np.int32)
    cv2.fillConvexPoly(parts, torso, _SHIRT, cv2.LINE_8, _SHIFT)
    for side, sign in ((-1.0, -1.0), (1.0, 1.0)):
        hand = _limb(parts, _SHIRT, (cx + side * 0.1 * h * b, shoulder_y + 0.02 * h), sign * 0.8 * swing,
                     0.3 * h, 0.05 * h * b)
        cv2.circle(parts, _pt(*hand), int(round(0.022 * h * _SCALE)), _SKIN, -1, cv2.LINE_8, _SHIFT)
    cv2.ellipse(parts, _pt(cx, 0.072 * h), _pt(0.052 * h, 0.068 * h), 0, 0, 360, _SKIN, -1, cv2.LINE_8, _SHIFT)
    cv2.ellipse(parts, _pt(cx, 0.06 * h), _pt(0.055 * h, 0.058 * h), 0, 180, 360, _HAIR, -1, cv2.LINE_8, _SHIFT)

    rows, cols = np.nonzero(parts)
    labels = parts[rows, cols]
    colours = np.empty((len(rows), 3), np.float32)
    for part, colour in ((_SKIN, look.skin), (_HAIR, look.hair), (_SHOES, look.shoes)):
        colours[labels == part] = colour
    for part, garment in ((_SHIRT, look.shirt), (_TROUSERS, look.trousers)):
        mine = labels == part
        colours[mine] = garment.colours_at(rows[mine], cols[mine], h, parts.shape)
    # Side shading gives the body some volume.
    shade = np.clip(1.0 - 0.25 * ((cols - cx) / (0.35 * h)) ** 2, 0.6, 1.0).astype(np.float32)
    colours *= shade[:, None]
    return Figure(rows=(rows - int(round(0.97 * h))).astype(np.int32), cols=(cols - int(round(cx))).astype(np.int32),
                  colours=np.clip(colours, 0, 255).astype(np.uint8))
