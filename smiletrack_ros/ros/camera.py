"""One camera's share of the tracker node: its topics, tracker, clock checks and counters.

A node tracks one camera (its topics as given) or, with the ``cameras`` parameter,
several: each camera ``NAME`` reads ``NAME/<image_topic>`` and writes ``NAME/<tracks_topic>``
etc. (relative to the node's namespace), with a tracker, a stamp check and diagnostics of
its own, while the node's one detector and one embedder serve every camera. No rclpy here:
the node owns the subscriptions and publishers and keeps them in ``inputs`` / ``outputs``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from smiletrack_ros.pipeline import Pipeline
from smiletrack_ros.ros.frame_gaps import FrameGaps
from smiletrack_ros.ros.node_stats import NodeStats
from smiletrack_ros.ros.stamp_guard import StampGuard
from smiletrack_ros.ros.stamp_pairing import StampPairer


def camera_topic(camera: str, topic: str) -> str:
    """``topic`` under the camera's name; absolute and private (``~``) names are kept as given."""
    if not camera or topic.startswith(("/", "~")):
        return topic
    return f"{camera}/{topic}"


@dataclass
class Camera:
    """``name`` "" for a node's only camera. The stage threads own ``pipeline`` (the track stage
    its tracker); the subscription callbacks own ``stamps``, ``pairer`` and ``gaps``."""

    name: str
    index: int
    pipeline: Pipeline
    stamps: StampGuard
    pairer: StampPairer | None
    gaps: FrameGaps
    stats: NodeStats = field(default_factory=NodeStats)
    inputs: list[Any] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)   # tracks, full, debug: publishers
    ground: Any = None                   # GroundPublisher when ground.enabled
    restarts_seen: int = 0               # stream restarts the stamp check saw (callbacks) ...
    restarts_done: int = 0               # ... and those the detect stage passed to the pipeline
    failures_in_a_row: int = 0           # the track stage only
    recoveries: int = 0
    missing_reported: int = 0

    def topic(self, topic: str) -> str:
        return camera_topic(self.name, topic)

    @property
    def label(self) -> str:
        return self.name or "camera"
