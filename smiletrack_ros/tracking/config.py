"""Tracker settings: one frozen, validated dataclass and three named presets.

``paper`` follows the SMILEtrack paper (adaptive high/low split, fused IoU +
appearance similarity, appearance gate, multi-template stage 2). ``official``
reproduces the public code's choices where they differ from the paper, so both
can be compared on the same data. ``bytetrack`` is the same cascade with motion
only. Every field can be overridden on top of a preset.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any


class ConfigError(ValueError):
    """A tracker setting is invalid; the message starts with the field name."""


STAGE1_COSTS = ("fused", "gated_iou")
TRACK_FEATURES = ("last", "ema")
STAGE2_APPEARANCES = ("bank", "none")


@dataclass(frozen=True)
class TrackerConfig:
    """All association settings. Costs are ``1 - similarity``; a pair matches
    only when its cost is at most the stage's ``*_match_threshold``.

    Build it with ``from_preset(name, **overrides)``: ``preset`` only records
    which preset the values started from (the defaults are the paper's)."""

    preset: str = "paper"
    # Detections scoring below this are dropped before association.
    min_score: float = 0.1
    # None: adaptive split (mean score of the higher half of the kept boxes).
    high_threshold: float | None = None
    # Unmatched boxes scoring at least this start (tentative) tracks, whichever
    # band they fell in; None: the frame's high threshold. The paper does not say;
    # 0.6 is the public code's value. With the adaptive split a fixed value matters:
    # the split calls about half of every frame's boxes low, true ones included.
    new_track_threshold: float | None = 0.6
    use_appearance: bool = True
    # Weight of IoU in the fused similarity alpha*IoU + (1-alpha)*appearance.
    alpha: float = 0.5
    # Pairs whose appearance similarity is below this are never matched.
    # None disables the gate.
    appearance_gate: float | None = 0.7
    # Pairs overlapping less than this never match on the fused similarity:
    # appearance confirms or vetoes a pair that motion makes plausible, it never
    # joins boxes that do not overlap (0.5 * 0 + 0.5 * 0.8 passes a 0.8 cost).
    min_iou: float = 0.1
    # "fused": the paper's similarity; "gated_iou": IoU cost, rejected where the
    # appearance distance fused with Mahalanobis distance exceeds 1 - gate.
    stage1_cost: str = "fused"
    # Track-side feature for stage 1 and the unconfirmed stage: latest or EMA.
    track_feature: str = "last"
    ema_momentum: float = 0.9
    # Weight of appearance distance vs squared Mahalanobis distance ("gated_iou").
    motion_fusion_lambda: float = 0.98
    # Chi-square 95% quantile, 4 degrees of freedom. Distances are taken in this
    # filter's (cx, cy, a, h) space; the public code's filter uses (cx, cy, w, h).
    mahalanobis_gate: float = 9.4877
    stage1_match_threshold: float = 0.8
    # "bank": max similarity over the feature bank; "none": IoU only.
    stage2_appearance: str = "bank"
    stage2_includes_lost: bool = True
    stage2_match_threshold: float = 0.5
    unconfirmed_match_threshold: float = 0.7
    # Appearance in the unconfirmed stage (same similarity as stage 1).
    unconfirmed_appearance: bool = True
    # Multiply IoU by the detection score for pairs scored by motion alone.
    fuse_score: bool = False
    remove_duplicates: bool = False
    duplicate_iou_distance: float = 0.15
    # Frames a track survives unmatched at 30 fps; scaled to seconds (buffer/30).
    track_buffer: int = 30
    bank_size: int = 50
    # Tracks born in the first frame after construction/reset are confirmed.
    activate_first_frame: bool = True
    class_aware: bool = False
    cmc: bool = False
    cmc_downscale: int = 2

    def __post_init__(self) -> None:
        _check_choice("preset", self.preset, tuple(PRESETS))
        _check_choice("stage1_cost", self.stage1_cost, STAGE1_COSTS)
        _check_choice("track_feature", self.track_feature, TRACK_FEATURES)
        _check_choice("stage2_appearance", self.stage2_appearance, STAGE2_APPEARANCES)
        for name in ("min_score", "alpha", "min_iou", "ema_momentum", "motion_fusion_lambda"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        for name in ("high_threshold", "new_track_threshold"):
            if getattr(self, name) is not None:
                _check_range(name, getattr(self, name), 0.0, 1.0)
        if self.appearance_gate is not None:
            _check_range("appearance_gate", self.appearance_gate, -1.0, 1.0)
        for name in ("stage1_match_threshold", "stage2_match_threshold",
                     "unconfirmed_match_threshold", "duplicate_iou_distance"):
            _check_range(name, getattr(self, name), 0.0, 2.0)
        _check_range("mahalanobis_gate", self.mahalanobis_gate, 0.0, math.inf)
        for name in ("track_buffer", "bank_size", "cmc_downscale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")
        for f in fields(self):
            if f.type == "bool" and not isinstance(getattr(self, f.name), bool):
                raise ConfigError(f"{f.name}: must be True or False, got {getattr(self, f.name)!r}")

    @classmethod
    def from_preset(cls, preset: str = "paper", **overrides: Any) -> TrackerConfig:
        """The named preset with ``overrides`` applied (unknown names are errors)."""
        _check_choice("preset", preset, tuple(PRESETS))
        known = {f.name for f in fields(cls)}
        for name in overrides:
            if name not in known:
                raise ConfigError(f"{name}: not a TrackerConfig field")
        return replace(cls(), preset=preset, **{**PRESETS[preset], **overrides})


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: must be one of {', '.join(choices)}; got {value!r}")


def _check_range(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise ConfigError(f"{name}: must be a number in [{low}, {high}], got {value!r}")


# Overrides relative to the dataclass defaults (which are the paper's choices).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "official": {
        "high_threshold": 0.5,
        "new_track_threshold": 0.6,
        "stage1_cost": "gated_iou",
        "track_feature": "ema",
        "stage2_appearance": "none",
        "stage2_includes_lost": False,
        "unconfirmed_appearance": False,
        "fuse_score": True,
        "remove_duplicates": True,
    },
    "bytetrack": {
        "high_threshold": 0.6,
        "new_track_threshold": 0.7,
        "use_appearance": False,
        "appearance_gate": None,
        "stage1_match_threshold": 0.9,
        "stage2_appearance": "none",
        "stage2_includes_lost": False,
        "unconfirmed_appearance": False,
        "fuse_score": True,
        "remove_duplicates": True,
    },
}
