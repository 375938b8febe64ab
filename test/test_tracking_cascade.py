"""The Similarity Matching Cascade on tiny synthetic frames: adaptive split, stage 1
and its gate, stage 2 and the feature bank, the unconfirmed stage, presets, class-aware
association and the motion-only fallback."""
import dataclasses
import logging

import numpy as np
import pytest

from smiletrack_ros.tracking import SmileTracker, Stage, TrackerConfig, TrackState
from smiletrack_ros.tracking.tracker import adaptive_high_threshold

E = np.eye(4)  # four mutually orthogonal appearances


def boxes(*xs, w=40.0, h=100.0, y=100.0):
    return np.array([[x, y, x + w, y + h] for x in xs], float).reshape(-1, 4)


def ids(outputs):
    return [t.track_id for t in outputs]


def test_adaptive_threshold_is_the_mean_of_the_higher_half():
    assert adaptive_high_threshold(np.array([0.2, 0.9, 0.3, 0.8])) == pytest.approx(0.85)
    assert adaptive_high_threshold(np.array([0.4, 0.9, 0.5])) == pytest.approx(0.7)  # higher half of 3: 2
    assert adaptive_high_threshold(np.array([0.3])) == pytest.approx(0.3)


def test_births_come_from_either_band_above_the_birth_threshold():
    # The adaptive split puts box 1 (0.8) in the low band (threshold 0.85), yet it
    # scores over the paper preset's 0.6 birth threshold; boxes 2-3 do not.
    scores = np.array([0.9, 0.8, 0.3, 0.2])
    frame = boxes(0, 200, 400, 600)
    born = {}
    for name, config in {"paper": TrackerConfig.from_preset("paper"),
                         "high-only": TrackerConfig.from_preset("paper", new_track_threshold=None),
                         "official": TrackerConfig.from_preset("official"),
                         "bytetrack": TrackerConfig.from_preset("bytetrack")}.items():
        trk = SmileTracker(config)
        born[name] = sorted(t.detection_index for t in trk.update(frame, scores, embeddings=E))
    assert born == {"paper": [0, 1], "high-only": [0], "official": [0, 1], "bytetrack": [0, 1]}


@pytest.mark.parametrize("new_track_threshold, confirmed", [(0.6, True), (None, False)])
def test_a_low_band_box_over_the_birth_threshold_confirms_a_tentative_track(new_track_threshold, confirmed):
    trk = SmileTracker(TrackerConfig.from_preset("paper", new_track_threshold=new_track_threshold))
    trk.update(boxes(0), np.array([0.9]), embeddings=E[:1])  # first frame: confirmed at once
    trk.update(boxes(0, 400), np.array([0.9, 0.9]), embeddings=E[:2])  # box 1 starts a tentative track
    assert [t.state for t in trk.live_tracks()] == [TrackState.TRACKED, TrackState.TENTATIVE]
    # Split threshold 0.95: the tentative track's box (0.7) is low-band now.
    out = trk.update(boxes(0, 401), np.array([0.95, 0.7]), embeddings=E[:2])
    assert sorted(t.detection_index for t in out) == ([0, 1] if confirmed else [0])
    assert len(trk.live_tracks()) == (2 if confirmed else 1)


def test_scores_below_min_score_are_ignored():
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    assert trk.update(boxes(0), np.array([0.09]), embeddings=E[:1]) == []
    assert trk.live_tracks() == []


def _track_with(appearance, x=100.0, preset="paper", **overrides):
    trk = SmileTracker(TrackerConfig.from_preset(preset, **overrides))
    trk.update(boxes(x), np.array([0.9]), embeddings=appearance[None])
    return trk


def test_gate_rejects_a_perfect_overlap_with_a_different_appearance():
    trk = _track_with(E[0])
    out = trk.update(boxes(100), np.array([0.9]), embeddings=E[1:2])  # same place, other person
    assert out == []
    assert [(t.track_id, t.state) for t in trk.live_tracks()] == [(1, TrackState.LOST), (2, TrackState.TENTATIVE)]
    trk = _track_with(E[0], appearance_gate=None)
    assert ids(trk.update(boxes(100), np.array([0.9]), embeddings=E[1:2])) == [1]


def test_gate_threshold_is_0_7_on_the_appearance_similarity():
    just_above = np.array([0.71, np.sqrt(1 - 0.71 ** 2), 0, 0])
    just_below = np.array([0.69, np.sqrt(1 - 0.69 ** 2), 0, 0])
    assert ids(_track_with(E[0]).update(boxes(100), np.array([0.9]), embeddings=just_above[None])) == [1]
    assert _track_with(E[0]).update(boxes(100), np.array([0.9]), embeddings=just_below[None]) == []


def test_stage1_fuses_iou_and_appearance():
    # The literal formula (min_iou 0): no overlap at all, but the same appearance:
    # similarity 0.5*0 + 0.5*1 = 0.5 >= 1 - 0.8.
    trk = _track_with(E[0], min_iou=0.0)
    out = trk.update(boxes(200), np.array([0.9]), embeddings=E[:1])
    assert ids(out) == [1] and out[0].appearance_similarity == pytest.approx(1.0)
    # alpha = 1 is IoU only: no overlap, no match.
    assert _track_with(E[0], alpha=1.0, min_iou=0.0).update(boxes(200), np.array([0.9]), embeddings=E[:1]) == []
    # By default appearance never joins boxes that do not overlap.
    assert _track_with(E[0]).update(boxes(200), np.array([0.9]), embeddings=E[:1]) == []


def test_stage1_prefers_appearance_between_two_overlapping_candidates():
    trk = SmileTracker(TrackerConfig.from_preset("paper", appearance_gate=None))
    trk.update(boxes(100, 130), np.array([0.9, 0.9]), embeddings=E[:2])
    # Detection 0 overlaps track 1 more (IoU 0.54 vs 0.38), but looks like track 2;
    # detection 1 overlaps track 2 more (0.90 vs 0.18), but looks like track 1.
    out = trk.update(boxes(112, 128), np.array([0.9, 0.9]), embeddings=E[[1, 0]])
    assert {t.track_id: t.detection_index for t in out} == {1: 1, 2: 0}


def turned(degrees):
    """E[1] turned towards E[2]: similarity to E[1] is cos(degrees)."""
    a = np.radians(degrees)
    return np.cos(a) * E[1] + np.sin(a) * E[2]


def _two_tracks_then_second_is_low(second_embedding, **overrides):
    """Tracks A (x=100, looks like E[0]) and B (x=400), whose appearance drifts
    from E[1] by 37 degrees a frame (similarity 0.8 frame to frame, 0.28 after
    two frames); then B is seen with a low score (below the adaptive threshold
    of that frame) and the given appearance."""
    trk = SmileTracker(TrackerConfig.from_preset("paper", **overrides))
    for degrees in (0, 37, 74):
        assert len(trk.update(boxes(100, 400), np.array([0.9, 0.9]), embeddings=np.stack([E[0], turned(degrees)]))) == 2
    return trk, trk.update(boxes(100, 402), np.array([0.9, 0.4]), embeddings=np.stack([E[0], second_embedding]))


def test_stage2_matches_low_score_boxes_with_the_max_over_the_feature_bank():
    # B's latest feature is 74 degrees away; the low-score box looks like B's FIRST appearance.
    trk, out = _two_tracks_then_second_is_low(E[1])
    by_id = {t.track_id: t for t in out}
    assert set(by_id) == {1, 2} and by_id[2].detection_index == 1 and by_id[2].score == pytest.approx(0.4)
    assert by_id[2].appearance_similarity == pytest.approx(1.0)
    # With a one-entry bank only the latest appearance counts: gated, B is lost.
    trk, out = _two_tracks_then_second_is_low(E[1], bank_size=1)
    assert ids(out) == [1]
    assert {t.track_id: t.state for t in trk.live_tracks()}[2] == TrackState.LOST


def test_stage2_is_gated_too_and_low_boxes_never_start_tracks():
    trk, out = _two_tracks_then_second_is_low(E[3])  # nothing in B's bank looks like E[3]
    assert ids(out) == [1]
    assert len(trk.live_tracks()) == 2  # the low-score box started nothing


def test_stage2_iou_only_preset_ignores_appearance():
    paper = TrackerConfig.from_preset("paper").stages
    iou_stage2 = dataclasses.replace(paper[1], cost="iou")
    trk, out = _two_tracks_then_second_is_low(E[3], stages=(paper[0], iou_stage2, paper[2]))
    assert sorted(ids(out)) == [1, 2]
    assert np.isnan({t.track_id: t for t in out}[2].appearance_similarity)


def _lost_then_low(preset, **overrides):
    trk = SmileTracker(TrackerConfig.from_preset(preset, high_threshold=0.5, **overrides))
    trk.update(boxes(100, 400), np.array([0.9, 0.9]), embeddings=E[:2])
    trk.update(boxes(100), np.array([0.9]), embeddings=E[:1])  # B missed: lost
    return trk.update(boxes(100, 400), np.array([0.9, 0.3]), embeddings=E[:2])


def test_paper_stage2_also_refinds_lost_tracks_the_public_code_does_not():
    assert sorted(ids(_lost_then_low("paper"))) == [1, 2]
    assert ids(_lost_then_low("official")) == [1]
    assert ids(_lost_then_low("bytetrack")) == [1]


def test_a_new_stage_is_added_by_configuration_alone():
    # ByteTrack's stage 2 sees tracked tracks only; one more stage, declared as data,
    # lets lost tracks take the low-score boxes still left, on IoU.
    byte = TrackerConfig.from_preset("bytetrack").stages
    lost_low = Stage("lost-low", tracks="lost", detections="low", cost="iou", threshold=0.5)
    out = _lost_then_low("bytetrack", stages=(*byte[:2], lost_low, byte[2]))
    assert sorted(ids(out)) == [1, 2]
    # Its pools are honoured: the same stage over the high band finds nothing to take.
    lost_high = dataclasses.replace(lost_low, detections="high")
    assert ids(_lost_then_low("bytetrack", stages=(*byte[:2], lost_high, byte[2]))) == [1]


def test_unconfirmed_stage_confirms_with_appearance_gate_in_paper():
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    trk.update(np.zeros((0, 4)), np.zeros(0), embeddings=np.zeros((0, 4)))
    trk.update(boxes(100), np.array([0.9]), embeddings=E[:1])
    assert trk.update(boxes(100), np.array([0.9]), embeddings=E[1:2]) == []  # other appearance
    assert [t.state for t in trk.live_tracks()] == [TrackState.TENTATIVE]  # the new one
    out = trk.update(boxes(101), np.array([0.9]), embeddings=E[1:2])
    assert [(t.track_id, t.hits) for t in out] == [(2, 2)]


def test_official_unconfirmed_stage_fuses_iou_with_score():
    def confirm(preset, score):
        trk = SmileTracker(TrackerConfig.from_preset(preset))
        trk.update(np.zeros((0, 4)), np.zeros(0), embeddings=np.zeros((0, 4)))
        trk.update(boxes(100), np.array([0.9]), embeddings=E[:1])
        return trk.update(boxes(115), np.array([score]), embeddings=E[:1])  # IoU 25/55

    assert ids(confirm("official", 0.9)) == [1]  # 1 - 0.4545 * 0.9 = 0.59 <= 0.7
    assert confirm("official", 0.55) == []  # 1 - 0.4545 * 0.55 = 0.75 > 0.7
    assert ids(confirm("paper", 0.55)) == [1]  # paper: 1 - (0.5 * 0.4545 + 0.5 * 1) = 0.27


def test_class_aware_association_never_matches_across_classes():
    def second_frame(class_aware):
        trk = SmileTracker(TrackerConfig.from_preset("paper", class_aware=class_aware))
        trk.update(boxes(100), np.array([0.9]), class_ids=np.array([0]), embeddings=E[:1])
        return trk, trk.update(boxes(100), np.array([0.9]), class_ids=np.array([3]), embeddings=E[:1])

    trk, out = second_frame(class_aware=True)
    assert out == []
    assert sorted((t.track_id, t.class_id, t.state) for t in trk.live_tracks()) == \
        [(1, 0, TrackState.LOST), (2, 3, TrackState.TENTATIVE)]
    trk, out = second_frame(class_aware=False)
    assert [(t.track_id, t.class_id) for t in out] == [(1, 3)]


def test_missing_embeddings_fall_back_to_motion_with_one_warning_per_tracker(caplog):
    caplog.set_level(logging.WARNING, logger="smiletrack_ros.tracking")
    for _ in range(2):
        trk = SmileTracker(TrackerConfig.from_preset("paper"))
        for k in range(4):
            out = trk.update(boxes(100 + 3 * k), np.array([0.9]))
        assert ids(out) == [1] and np.isnan(out[0].appearance_similarity)
    warnings = [r for r in caplog.records if "no embeddings" in r.getMessage()]
    assert len(warnings) == 2  # once for each of the two trackers
    caplog.clear()
    trk = SmileTracker(TrackerConfig.from_preset("bytetrack"))
    trk.update(boxes(100), np.array([0.9]))
    assert not [r for r in caplog.records if "no embeddings" in r.getMessage()]


def test_pair_without_appearance_falls_back_to_iou():
    trk = _track_with(E[0])
    # A non-finite embedding row means "no appearance" for that detection: matched by IoU.
    out = trk.update(boxes(102), np.array([0.9]), embeddings=np.full((1, 4), np.nan))
    assert ids(out) == [1] and np.isnan(out[0].appearance_similarity)
    assert trk.last_missing_appearance == 1
    # The track kept its appearance: a different-looking box at the same place is still gated.
    assert trk.update(boxes(104), np.array([0.9]), embeddings=E[1:2]) == []


def test_bytetrack_preset_ignores_embeddings():
    trk = _track_with(E[0], preset="bytetrack")
    assert ids(trk.update(boxes(100), np.array([0.9]), embeddings=E[1:2])) == [1]


def test_official_preset_gates_by_appearance_and_motion():
    trk = _track_with(E[0], preset="official")
    assert trk.update(boxes(100), np.array([0.9]), embeddings=E[1:2]) == []  # other appearance
    trk = _track_with(E[0], preset="official")
    assert ids(trk.update(boxes(101), np.array([0.9]), embeddings=E[:1])) == [1]


def test_official_duplicate_removal_drops_the_shorter_of_a_tracked_and_a_lost_track():
    def live_after_appearance_change(preset):
        trk = SmileTracker(TrackerConfig.from_preset(preset))
        for _ in range(3):
            trk.update(boxes(100), np.array([0.9]), embeddings=E[:1])
        # Same box, new appearance: gated, track 1 is lost and a new track is born on top of it.
        trk.update(boxes(100), np.array([0.9]), embeddings=E[1:2])
        return [(t.track_id, t.state) for t in trk.live_tracks()]

    assert live_after_appearance_change("paper") == [(1, TrackState.LOST), (2, TrackState.TENTATIVE)]
    assert live_after_appearance_change("official") == [(1, TrackState.LOST)]


def test_reported_appearance_similarity_stays_a_cosine():
    """float32 dot products of unit vectors can come out just above 1; the report never does."""
    from smiletrack_ros.tracking.inputs import _unit_rows

    candidates = np.random.default_rng(0).normal(size=(2000, 128)).astype(np.float32)
    unit, _ = _unit_rows(candidates)
    over = candidates[np.einsum("ij,ij->i", unit, unit) > 1.0]
    assert len(over), "no float32 vector whose self-similarity rounds above 1"
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    trk.update(boxes(0), np.array([0.9]), embeddings=over[:1])
    out = trk.update(boxes(1), np.array([0.9]), embeddings=over[:1])
    assert out[0].appearance_similarity == 1.0
