"""A top-down picture of ground tracks, as RViz would show them: paths, ids, velocity arrows, 2-sigma ellipses."""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from smiletrack_ros.scene.camera import SceneCamera

if TYPE_CHECKING:
    from smiletrack_ros.scene.ground_eval import Trail

_MIN_POINTS = 5


def render_topdown(trails: Mapping[int, Trail], camera: SceneCamera, path: str | Path, title: str = "",
                   arrow_seconds: float = 1.0) -> Path:
    """Writes a PNG: the camera's field of view, each track's estimated path (solid) and true path
    (dotted), its last position with a 2-sigma covariance ellipse, id label and a velocity arrow
    (where it will be in ``arrow_seconds``). Axes: x forward, y left (metres), as in the target frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    lo, hi = camera.range_m
    fig, ax = plt.subplots(figsize=(7.5, 7.5), dpi=110)
    half = math.radians(camera.hfov_deg) / 2
    far = hi * 1.05
    ax.fill([0, far * math.cos(half), far * math.cos(half)], [0, far * math.sin(half), -far * math.sin(half)],
            color="0.93", zorder=0, label="camera field of view")
    ax.plot([0], [0], marker=(3, 0, -90), markersize=14, color="k", zorder=5)
    colours = plt.get_cmap("tab20")
    for k, trail in enumerate(t for t in trails.values() if len(t.estimates) >= _MIN_POINTS):
        colour = colours(k % 20)
        est, truth = np.asarray(trail.estimates), np.asarray(trail.truth)
        ax.plot(est[:, 1], est[:, 0], "-", color=colour, lw=1.6)
        ax.plot(truth[:, 1], truth[:, 0], ":", color=colour, lw=1.2)
        x, y, vx, vy = est[-1]
        cov = trail.last_covariance[:2, :2]
        values, vectors = np.linalg.eigh(cov)
        angle = math.degrees(math.atan2(vectors[0, 1], vectors[1, 1]))   # plotted axes are (y, x)
        ax.add_patch(Ellipse((y, x), 4 * math.sqrt(max(values[1], 0)), 4 * math.sqrt(max(values[0], 0)),
                             angle=angle, fill=False, color=colour, lw=1.0))
        ax.annotate("", xy=(y + vy * arrow_seconds, x + vx * arrow_seconds), xytext=(y, x),
                    arrowprops=dict(arrowstyle="->", color=colour, lw=2.0))
        ax.plot([y], [x], "o", color=colour, ms=5)
        ax.text(y + 0.15, x + 0.15, str(trail.track_id), color=colour, fontsize=10, weight="bold")
    ax.plot([], [], "-", color="0.3", label="estimated path (ground filter)")
    ax.plot([], [], ":", color="0.3", label="true path")
    ax.set_xlim(far * math.sin(half) + 0.5, -far * math.sin(half) - 0.5)   # y to the left, as seen from above
    ax.set_ylim(-0.5, far + 0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("y (m, left)")
    ax.set_ylabel("x (m, forward)")
    ax.grid(True, lw=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title or "ground tracks", fontsize=10)
    fig.text(0.01, 0.005, f"arrows: {arrow_seconds:g} s of velocity; ellipses: 2-sigma position covariance",
             fontsize=7, color="0.3")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out
