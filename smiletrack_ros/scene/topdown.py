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


def busiest_time(trails: Mapping[int, Trail]) -> float:
    """The latest time at which nearly the most tracks (one fewer at worst) have an estimate, so
    that the picture is full and the paths have a history."""
    counts: dict[float, int] = {}
    for trail in trails.values():
        for t in trail.times[_MIN_POINTS:]:
            counts[t] = counts.get(t, 0) + 1
    most = max(counts.values(), default=0)
    return max((t for t, n in counts.items() if n >= most - 1), default=0.0)


def render_topdown(trails: Mapping[int, Trail], camera: SceneCamera, path: str | Path, title: str = "",
                   at: float | None = None, arrow_seconds: float = 1.0) -> Path:
    """Writes a PNG of the floor seen from above at time ``at`` (default: ``busiest_time``): the
    camera's field of view, each track's estimated path so far (solid) and true path (dotted), and
    for the tracks present at ``at`` their position with a 2-sigma covariance ellipse, id label and
    a velocity arrow (where they will be in ``arrow_seconds``). Axes: x forward, y left (metres), as
    in the target frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    at = busiest_time(trails) if at is None else at
    lo, hi = camera.range_m
    fig, ax = plt.subplots(figsize=(7.5, 7.5), dpi=110)
    half = math.radians(camera.hfov_deg) / 2
    far = hi * 1.02
    arc = np.linspace(-half, half, 60)
    ax.fill(np.concatenate([[0], far * np.sin(arc)]), np.concatenate([[0], far * np.cos(arc)]),
            color="0.93", zorder=0, label="camera field of view")
    ax.plot([0], [0], marker=(3, 0, 0), markersize=14, color="k", zorder=5)
    colours = plt.get_cmap("tab20")
    for k, trail in enumerate(trails.values()):
        until = int(np.searchsorted(trail.times, at, side="right"))
        if until < _MIN_POINTS:
            continue
        colour = colours(k % 20)
        est, truth = np.asarray(trail.estimates[:until]), np.asarray(trail.truth[:until])
        present = trail.times[until - 1] == at
        ax.plot(est[:, 1], est[:, 0], "-", color=colour, lw=1.6 if present else 0.7)
        ax.plot(truth[:, 1], truth[:, 0], ":", color=colour, lw=1.2)
        if not present:   # gone before ``at``: its path only
            continue
        x, y, vx, vy = est[-1]
        values, vectors = np.linalg.eigh(trail.covariances[until - 1][:2, :2])
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
    ax.set_title((title or "ground tracks") + f" at t = {at:.1f} s\nid, {arrow_seconds:g} s velocity arrow and "
                 "2-sigma position ellipse of each person in view", fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
