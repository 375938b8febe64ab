"""Replays a FrameCache through our tracker presets, timing update() only."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bench.suite.framecache import FrameCache

PRESETS = ("paper", "official", "bytetrack")
# Diagnostics beside the presets, to show what the embeddings add (or cost) on a
# given input: the paper's cascade without appearance, and without the 0.7 gate.
MOTION_ONLY = {"use_appearance": False, "appearance_gate": None}
NO_GATE = {"appearance_gate": None}


@dataclass
class OursRun:
    rows: np.ndarray     # (N, 7) frame, id, x1, y1, x2, y2, score
    ms: list[float]      # update() per frame


def run_preset(cache: FrameCache, preset: str, **overrides: object) -> OursRun:
    """Each preset with its own defaults (plus ``overrides``); timestamps from the
    frame numbers and the sequence's frame rate, embeddings when the cache has them."""
    from smiletrack_ros.tracking import SmileTracker, TrackerConfig

    tracker = SmileTracker(TrackerConfig.from_preset(preset, **overrides), frame_rate=cache.frame_rate)
    times: list[float] = []
    rows: list[tuple] = []
    for item in cache:
        start = time.perf_counter()
        tracks = tracker.update(item.boxes, item.scores, class_ids=item.class_ids, embeddings=item.embeddings,
                                timestamp=(item.frame - 1) / cache.frame_rate)
        times.append((time.perf_counter() - start) * 1e3)
        rows.extend((item.frame, t.track_id, *map(float, t.box), t.score) for t in tracks)
    return OursRun(np.asarray(rows, np.float64).reshape(-1, 7), times)
