"""TrackerConfig: presets, overrides and validation that names the field."""
import dataclasses

import pytest

from smiletrack_ros.tracking import PRESETS, ConfigError, SmileTracker, TrackerConfig


def test_default_is_the_reid_preset_which_differs_from_the_paper_in_stages_and_memory():
    cfg = TrackerConfig()
    assert cfg == TrackerConfig.from_preset("reid") and cfg.preset == "reid"
    assert [s.name for s in cfg.stages] == ["stage1", "stage2", "reid", "unconfirmed"]
    assert (cfg.lost_track_seconds, cfg.reid_impostor_quantile, cfg.motion_reference_fps) == (5.0, 0.99, None)
    assert cfg.appearance_min_score == 0.6
    paper = TrackerConfig.from_preset("paper")
    assert (paper.lost_track_seconds, paper.reid_impostor_quantile, paper.appearance_min_score) == (None, None, None)
    differ = {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(paper, f.name)}
    assert differ == {"preset", "stages", "lost_track_seconds", "reid_impostor_quantile", "appearance_min_score",
                      "impostor_reference_fps", "reid_margin"}
    for name in ("official", "bytetrack"):
        assert TrackerConfig.from_preset(name).appearance_min_score is None


def test_the_paper_preset():
    cfg = TrackerConfig.from_preset("paper")
    assert cfg.high_threshold is None  # adaptive split
    assert (cfg.min_score, cfg.alpha, cfg.appearance_gate) == (0.1, 0.5, 0.7)
    assert (cfg.bank_size, cfg.track_buffer) == (50, 30)
    assert [(s.name, s.tracks, s.detections, s.cost) for s in cfg.stages] == [
        ("stage1", "confirmed", "high", "fused"), ("stage2", "confirmed", "low", "bank"),
        ("unconfirmed", "tentative", "startable", "fused")]


def test_presets_differ_where_the_paper_and_the_public_code_differ():
    official = TrackerConfig.from_preset("official")
    assert (official.high_threshold, official.new_track_threshold) == (0.5, 0.6)
    assert official.track_feature == "ema"
    assert [(s.tracks, s.detections, s.cost) for s in official.stages] == [
        ("confirmed", "high", "gated_iou"), ("tracked", "low", "iou"), ("tentative", "startable", "motion")]
    assert official.fuse_score and official.remove_duplicates
    byte = TrackerConfig.from_preset("bytetrack")
    assert not byte.use_appearance
    assert (byte.high_threshold, byte.new_track_threshold, byte.stage1_match_threshold) == (0.6, 0.7, 0.9)
    assert set(PRESETS) == {"paper", "official", "bytetrack", "reid"}


def test_overrides_apply_on_top_of_a_preset():
    cfg = TrackerConfig.from_preset("official", appearance_gate=0.5, class_aware=True)
    assert cfg.preset == "official" and cfg.appearance_gate == 0.5 and cfg.class_aware
    assert cfg.stages[0].cost == "gated_iou"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrackerConfig().alpha = 0.3


@pytest.mark.parametrize("field, value", [
    ("alpha", 1.5), ("alpha", "0.5"), ("min_score", -0.1), ("appearance_gate", 2.0),
    ("high_threshold", 1.2), ("track_buffer", 0), ("track_buffer", 2.5), ("bank_size", 0),
    ("track_feature", "mean"), ("stages", ()), ("stages", [TrackerConfig().stages[0]]),
    ("stages", TrackerConfig().stages * 2),
    ("class_aware", 1), ("stage1_match_threshold", -1.0), ("cmc_downscale", True),
])
def test_invalid_values_raise_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"^{field}:"):
        TrackerConfig.from_preset("paper", **{field: value})


def test_unknown_preset_and_unknown_field_are_named():
    with pytest.raises(ConfigError, match="^preset:"):
        TrackerConfig.from_preset("sort")
    with pytest.raises(ConfigError, match="^preset:"):
        TrackerConfig(preset="sort")
    with pytest.raises(ConfigError, match="^track_thresh:"):
        TrackerConfig.from_preset("paper", track_thresh=0.5)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("rate", [0, -5, float("nan"), "30"])
def test_bad_frame_rate_is_rejected(rate):
    with pytest.raises(ValueError, match="frame_rate"):
        SmileTracker(TrackerConfig(), frame_rate=rate)


@pytest.mark.parametrize("change, message", [
    ({"tracks": "all"}, "tracks must be one of"), ({"detections": "any"}, "detections must be one of"),
    ({"cost": "euclid"}, "cost must be one of"), ({"threshold": 3.0}, r"\[0.0, 2.0\]"), ({"name": ""}, "name"),
])
def test_invalid_stages_are_refused_naming_the_stages_field(change, message):
    stage = TrackerConfig().stages[0]
    with pytest.raises(ConfigError, match=rf"^stages: .*{message}"):
        dataclasses.replace(stage, **change)


def test_a_stage_threshold_named_by_field_must_be_a_number_field():
    stage = dataclasses.replace(TrackerConfig().stages[0], threshold="track_feature")
    with pytest.raises(ConfigError, match="^stages: stage 'stage1' threshold 'track_feature'"):
        TrackerConfig(stages=(stage,))
    assert TrackerConfig(stages=(dataclasses.replace(stage, threshold="alpha"),)).stages[0].max_cost(
        TrackerConfig(alpha=0.25)) == 0.25
