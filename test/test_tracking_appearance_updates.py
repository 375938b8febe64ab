"""The ``reid`` preset keeps a track's appearance from confident boxes only: a low-scoring box
(a partly hidden person, whose crop shows the occluder too) still matches, but leaves the
track's features as they were; the paper's cascade lets every matched box update them."""
import numpy as np
import pytest

from smiletrack_ros.tracking import SmileTracker, TrackerConfig

E = np.eye(8, dtype=np.float32)
OCCLUDED = (E[0] + E[1]) / np.sqrt(2.0)  # half the person, half the occluder: similarity 0.71 to the person


def box(x):
    return np.array([[x, 100.0, x + 40.0, 200.0]])


def run(preset, **overrides):
    trk = SmileTracker(TrackerConfig.from_preset(preset, **overrides), frame_rate=25.0)
    ids, x, t = set(), 100.0, 0.0
    for look, score, frames in ((E[0], 0.9, 25), (OCCLUDED, 0.4, 5)):
        for _ in range(frames):
            out = trk.update(box(x), np.array([score]), embeddings=look[None], timestamp=t)
            ids.update(o.track_id for o in out)
            x, t = x + 2.0, t + 0.04
    out = trk.update(box(x), np.array([0.9]), embeddings=E[0][None], timestamp=t)
    ids.update(o.track_id for o in out)
    assert len(ids) == 1 and len(out) == 1
    return out[0].appearance_similarity


def test_low_scoring_boxes_match_but_leave_the_track_features_alone():
    assert TrackerConfig().appearance_min_score == 0.6
    assert run("reid") == pytest.approx(1.0)  # the latest feature is still the person's own


def test_every_matched_box_updates_the_features_in_the_paper_preset_or_when_unset():
    assert run("paper") == pytest.approx(float(OCCLUDED @ E[0]), abs=1e-5)
    assert run("reid", appearance_min_score=None) == pytest.approx(float(OCCLUDED @ E[0]), abs=1e-5)
