"""Tracker settings: one frozen, validated dataclass, its cascade of stages, and named presets.

``paper`` follows the SMILEtrack paper (adaptive high/low split, fused IoU +
appearance similarity, appearance gate, multi-template stage 2). ``official``
reproduces the public code's choices where they differ from the paper, so both
can be compared on the same data. ``bytetrack`` is the same cascade with motion
only. Every field can be overridden on top of a preset.

The cascade is data: ``TrackerConfig.stages`` is a tuple of ``Stage`` records,
run in order, each declaring which still-unmatched tracks and detections it
sees, its cost (a name in ``costs.COSTS``) and its threshold. A new stage is a
new record in that tuple; no tracker code changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from smiletrack_ros.errors import SettingError


class ConfigError(SettingError):
    """A tracker setting is invalid; ``field`` names it (and so does the message's start)."""


TRACK_FEATURES = ("last", "ema")
REID_GATES = ("speed", "mahalanobis", "both")
# Upper bounds of settings that size memory or time spans (hostile or mistaken values
# would otherwise allocate without limit or keep every track forever).
MAX_BANK_SIZE = 1000
MAX_LOST_TRACK_SECONDS = 3600.0
# Which still-unmatched tracks a stage sees, by state.
TRACK_POOLS = ("confirmed", "tracked", "lost", "tentative")
# Which still-unmatched detections: the high band, the low band, or those that could
# start a track (the high band, then low boxes scoring >= new_track_threshold).
DETECTION_POOLS = ("high", "low", "startable")


@dataclass(frozen=True)
class Stage:
    """One association step: still-unmatched ``tracks`` (a ``TRACK_POOLS`` name) against
    still-unmatched ``detections`` (a ``DETECTION_POOLS`` name), scored by ``cost`` (a
    ``costs.COSTS`` name); a pair matches when its cost is at most ``threshold``: a
    number, or the name of the TrackerConfig field that holds it (so that it can be
    tuned, e.g. at run time, like any other field)."""

    name: str
    tracks: str
    detections: str
    cost: str
    threshold: float | str

    def __post_init__(self) -> None:
        from .costs import COSTS  # costs needs only this module's names for typing

        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("stages", f"a stage needs a non-empty name, got {self.name!r}")
        for field_name, value, choices in (("tracks", self.tracks, TRACK_POOLS),
                                           ("detections", self.detections, DETECTION_POOLS),
                                           ("cost", self.cost, tuple(COSTS))):
            if value not in choices:
                raise ConfigError("stages", f"stage {self.name!r} {field_name} must be one of "
                                            f"{', '.join(choices)}; got {value!r}")
        if not isinstance(self.threshold, str):
            _check_range("stages", self.threshold, 0.0, 2.0)

    def max_cost(self, config: TrackerConfig) -> float:
        return float(getattr(config, self.threshold) if isinstance(self.threshold, str) else self.threshold)


# The paper's cascade (section 1 of the facts): both confirmed pools in both stages,
# the feature bank in stage 2, appearance for tentative tracks too.
PAPER_STAGES = (
    Stage("stage1", tracks="confirmed", detections="high", cost="fused", threshold="stage1_match_threshold"),
    Stage("stage2", tracks="confirmed", detections="low", cost="bank", threshold="stage2_match_threshold"),
    Stage("unconfirmed", tracks="tentative", detections="startable", cost="fused",
          threshold="unconfirmed_match_threshold"),
)
# The public code: IoU gated by appearance + Mahalanobis in stage 1, IoU only for
# tracked tracks in stage 2, IoU fused with the score for tentative tracks.
OFFICIAL_STAGES = (
    Stage("stage1", tracks="confirmed", detections="high", cost="gated_iou", threshold="stage1_match_threshold"),
    Stage("stage2", tracks="tracked", detections="low", cost="iou", threshold="stage2_match_threshold"),
    Stage("unconfirmed", tracks="tentative", detections="startable", cost="motion",
          threshold="unconfirmed_match_threshold"),
)
# Re-identification after occlusion: the paper's cascade, then lost tracks still
# unmatched may take, on appearance alone, a box that could start a track where the
# person can have walked since last seen; before tentative tracks take them.
REID_STAGES = (
    PAPER_STAGES[0], PAPER_STAGES[1],
    Stage("reid", tracks="lost", detections="startable", cost="reid", threshold="reid_match_threshold"),
    PAPER_STAGES[2],
)
# ByteTrack: stage 1's fused cost falls back to (score-fused) IoU, as the preset turns appearance off.
BYTETRACK_STAGES = (PAPER_STAGES[0], OFFICIAL_STAGES[1], OFFICIAL_STAGES[2])


@dataclass(frozen=True)
class TrackerConfig:
    """All association settings. Costs are ``1 - similarity``; a pair matches
    only when its cost is at most the stage's ``*_match_threshold``.

    Build it with ``from_preset(name, **overrides)``: ``preset`` only records
    which preset the values started from. The defaults are the ``reid`` preset's,
    which measured best here (the closing notes of issue 13); ``paper`` differs from
    them in its stages, its lost-track memory and its appearance updates only."""

    preset: str = "reid"
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
    # The association cascade, run in order (see ``Stage``).
    stages: tuple[Stage, ...] = REID_STAGES
    # Track-side feature of the "fused" and "gated_iou" costs: latest or EMA.
    track_feature: str = "last"
    ema_momentum: float = 0.9
    # Weight of appearance distance vs squared Mahalanobis distance (the "gated_iou" cost).
    motion_fusion_lambda: float = 0.98
    # Chi-square 95% quantile, 4 degrees of freedom. Distances are taken in this
    # filter's (cx, cy, a, h) space; the public code's filter uses (cx, cy, w, h).
    mahalanobis_gate: float = 9.4877
    # Maximum costs the presets' stages refer to by name.
    stage1_match_threshold: float = 0.8
    stage2_match_threshold: float = 0.5
    unconfirmed_match_threshold: float = 0.7
    # Multiply IoU by the detection score for pairs scored by motion alone.
    fuse_score: bool = False
    remove_duplicates: bool = False
    duplicate_iou_distance: float = 0.15
    # Frames a track survives unmatched at 30 fps; scaled to seconds (buffer/30).
    track_buffer: int = 30
    # Seconds a lost track (and its feature bank) is kept; None: track_buffer / 30. The
    # default, 5 s, is the longest occlusion we aim to bridge.
    lost_track_seconds: float | None = 5.0
    # None: one Kalman step per frame at the tracker's nominal frame rate (ByteTrack,
    # the paper). A rate: one step per 1/rate seconds of elapsed time, so the motion
    # model (noise, velocity) is the same whatever rate the camera delivers.
    motion_reference_fps: float | None = None
    # The "reid" cost: the farthest a person is expected from the track's predicted
    # centre, in box heights: base + max_speed * seconds unseen ("speed" gate), and/or
    # the predicted position's chi-square gate ("mahalanobis"), or both.
    reid_gate: str = "speed"
    reid_base_radius: float = 0.5
    reid_max_speed: float = 1.0
    # Max cost (1 - best bank similarity) of a re-identification.
    reid_match_threshold: float = 0.3
    # A re-identification also needs a similarity above this quantile of the similarities
    # seen between different people (tracks matched in one frame); None: no such floor.
    # 0.99: a wrong re-identification as rare as 1 in 100 impostor pairs, with any embedder.
    reid_impostor_quantile: float | None = 0.99
    # The pairs of one frame count as many times as frames of this rate fit in one frame of the tracker's
    # (6 times at 5 fps for 30), so the floor is learnt after the same seconds of video at any frame rate;
    # None: each pair counts once, and at 5 fps the floor takes five times as many seconds as at 25 fps.
    impostor_reference_fps: float | None = 30.0
    # A re-identification also needs its similarity to beat, by this margin, the detection's
    # similarity to any other confirmed track, lost or tracked (a ratio test: ambiguous matches are
    # refused, the box may start a track); None: no such test. 0.03: from the right and wrong
    # re-identifications' margins on the synthetic scenes 0-3 and TUD (notes4/ratio4.md).
    reid_margin: float | None = 0.03
    bank_size: int = 50
    # Matched boxes scoring below this leave the track's features (latest, EMA, bank) as they
    # were: a detector scores a partly hidden person low, and its crop then shows the occluder
    # as much as the person. 0.6: the score a box needs to start a track (new_track_threshold).
    # None: every matched box updates them (the paper's cascade).
    appearance_min_score: float | None = 0.6
    # Tracks born in the first frame after construction/reset are confirmed.
    activate_first_frame: bool = True
    class_aware: bool = False
    cmc: bool = False
    cmc_downscale: int = 2

    def __post_init__(self) -> None:
        _check_choice("preset", self.preset, tuple(PRESETS))
        _check_choice("track_feature", self.track_feature, TRACK_FEATURES)
        _check_choice("reid_gate", self.reid_gate, REID_GATES)
        self._check_stages()
        for name in ("min_score", "alpha", "min_iou", "ema_momentum", "motion_fusion_lambda"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        for name in ("high_threshold", "new_track_threshold", "reid_impostor_quantile", "appearance_min_score"):
            if getattr(self, name) is not None:
                _check_range(name, getattr(self, name), 0.0, 1.0)
        if self.appearance_gate is not None:
            _check_range("appearance_gate", self.appearance_gate, -1.0, 1.0)
        for name in ("stage1_match_threshold", "stage2_match_threshold", "unconfirmed_match_threshold",
                     "reid_match_threshold", "duplicate_iou_distance"):
            _check_range(name, getattr(self, name), 0.0, 2.0)
        if self.reid_margin is not None:
            _check_range("reid_margin", self.reid_margin, 0.0, 2.0)
        _check_range("mahalanobis_gate", self.mahalanobis_gate, 0.0, math.inf)
        for name in ("reid_base_radius", "reid_max_speed"):
            _check_range(name, getattr(self, name), 0.0, 100.0)
        if self.lost_track_seconds is not None:
            _check_range("lost_track_seconds", self.lost_track_seconds, 0.0, MAX_LOST_TRACK_SECONDS)
        for name in ("motion_reference_fps", "impostor_reference_fps"):
            if getattr(self, name) is not None:
                _check_range(name, getattr(self, name), 0.1, 1000.0)
        if isinstance(self.bank_size, int) and not isinstance(self.bank_size, bool) and \
                self.bank_size > MAX_BANK_SIZE:
            raise ConfigError("bank_size", f"must be at most {MAX_BANK_SIZE}, got {self.bank_size!r}")
        for name in ("track_buffer", "bank_size", "cmc_downscale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, f"must be an integer >= 1, got {value!r}")
        for f in fields(self):
            if f.type == "bool" and not isinstance(getattr(self, f.name), bool):
                raise ConfigError(f.name, f"must be True or False, got {getattr(self, f.name)!r}")

    def _check_stages(self) -> None:
        stages = self.stages
        if not isinstance(stages, tuple) or not stages or not all(isinstance(s, Stage) for s in stages):
            raise ConfigError("stages", f"must be a non-empty tuple of Stage, got {stages!r}")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ConfigError("stages", f"stage names must be unique, got {names}")
        numeric = {f.name for f in fields(self) if f.type == "float"}
        for s in stages:
            if isinstance(s.threshold, str) and s.threshold not in numeric:
                raise ConfigError("stages", f"stage {s.name!r} threshold {s.threshold!r} is not a number "
                                            "field of TrackerConfig")

    @classmethod
    def from_preset(cls, preset: str = "paper", **overrides: Any) -> TrackerConfig:
        """The named preset with ``overrides`` applied (unknown names are errors)."""
        _check_choice("preset", preset, tuple(PRESETS))
        known = {f.name for f in fields(cls)}
        for name in overrides:
            if name not in known:
                raise ConfigError(name, "not a TrackerConfig field")
        return replace(cls(), preset=preset, **{**PRESETS[preset], **overrides})


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}; got {value!r}")


def _check_range(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise ConfigError(name, f"must be a number in [{low}, {high}], got {value!r}")


# What the paper's cascade does not have: the re-identification stage and its floor,
# a lost-track memory in seconds, appearance kept from confident boxes only.
_WITHOUT_REID = {"stages": PAPER_STAGES, "lost_track_seconds": None, "reid_impostor_quantile": None,
                 "impostor_reference_fps": None, "reid_margin": None, "appearance_min_score": None}
# Overrides relative to the dataclass defaults (which are the reid preset's).
PRESETS: dict[str, dict[str, Any]] = {
    # Not the paper's: re-identification of lost tracks on appearance (see REID_STAGES),
    # lost tracks kept 5 s, features updated from confident boxes only.
    "reid": {},
    "paper": _WITHOUT_REID,
    "official": {
        **_WITHOUT_REID,
        "high_threshold": 0.5,
        "new_track_threshold": 0.6,
        "stages": OFFICIAL_STAGES,
        "track_feature": "ema",
        "fuse_score": True,
        "remove_duplicates": True,
    },
    "bytetrack": {
        **_WITHOUT_REID,
        "high_threshold": 0.6,
        "new_track_threshold": 0.7,
        "use_appearance": False,
        "appearance_gate": None,
        "stage1_match_threshold": 0.9,
        "stages": BYTETRACK_STAGES,
        "fuse_score": True,
        "remove_duplicates": True,
    },
}
