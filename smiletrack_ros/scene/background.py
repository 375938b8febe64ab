"""A textured street backdrop that wraps around horizontally, so the camera can pan forever."""
from __future__ import annotations

import numpy as np


def periodic_noise(shape: tuple[int, int], rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Zero-mean, unit-std 1/f^exponent noise; periodic in both axes (filtered in Fourier space)."""
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0
    spectrum = np.fft.rfft2(white) / radius**exponent
    spectrum[0, 0] = 0.0
    noise = np.fft.irfft2(spectrum, s=shape)
    return noise / max(float(noise.std()), 1e-9)


def _periodic_spacing(world_width: int, target_spacing: float) -> float:
    """A spacing that tiles ``world_width`` a whole number of times (keeps the wrap seamless)."""
    count = max(1, int(round(world_width / max(target_spacing, 1.0))))
    return world_width / count


def make_background(world_width: int, height: int, horizon_y: int, rng: np.random.Generator) -> np.ndarray:
    """HxWx3 uint8 BGR: a building facade with windows above ``horizon_y``, paving below."""
    canvas = np.empty((height, world_width, 3), np.float32)
    wall_colour = rng.uniform(90, 190, 3)
    ground_colour = rng.uniform(80, 150) + rng.uniform(-15, 15, 3)
    canvas[:horizon_y] = wall_colour
    canvas[horizon_y:] = ground_colour

    coarse = periodic_noise((height, world_width), rng, 1.6)
    fine = periodic_noise((height, world_width), rng, 0.6)
    canvas += (14.0 * coarse + 6.0 * fine)[:, :, None]

    # Windows: a periodic grid on the facade.
    spacing = _periodic_spacing(world_width, rng.uniform(0.08, 0.14) * world_width)
    win_w = spacing * rng.uniform(0.35, 0.55)
    rows = max(1, int(horizon_y // max(spacing * 0.9, 8)))
    row_pitch = horizon_y / rows
    win_h = row_pitch * rng.uniform(0.4, 0.6)
    glass = rng.uniform(40, 110, 3)
    xs = np.arange(world_width)
    in_window_col = ((xs + 0.5 * (spacing - win_w)) % spacing) < win_w
    ys = np.arange(horizon_y)
    in_window_row = ((ys + 0.5 * (row_pitch - win_h)) % row_pitch) < win_h
    window = in_window_row[:, None] & in_window_col[None, :]
    facade = canvas[:horizon_y]
    facade[window] = glass + 10.0 * fine[:horizon_y][window][:, None]

    # Paving: joints between slabs, denser towards the horizon (a hint of perspective).
    slab = _periodic_spacing(world_width, rng.uniform(0.05, 0.09) * world_width)
    ground = canvas[horizon_y:]
    depth = (np.arange(height - horizon_y) + 1.0) / (height - horizon_y)
    joint_cols = (xs % slab) < 2.0
    ground[:, joint_cols] *= 0.75
    row_phase = np.log1p(8.0 * depth) * 6.0
    joint_rows = (row_phase % 1.0) < 0.12
    ground[joint_rows] *= 0.8
    canvas[max(horizon_y - 2, 0):horizon_y + 1] *= 0.55  # kerb line
    return np.clip(canvas, 0, 255).astype(np.uint8)


def camera_view(background: np.ndarray, camera_x: float, width: int) -> np.ndarray:
    """A copy of the ``width`` columns seen from ``camera_x`` (world pixels), wrapping around the backdrop."""
    world_width = background.shape[1]
    start = int(round(camera_x)) % world_width
    if start + width <= world_width:
        return background[:, start:start + width].copy()
    return np.concatenate([background[:, start:], background[:, :start + width - world_width]], axis=1)
