"""A lost track re-identifies a box only when the match is unambiguous (``reid_margin``):
a box that looks as much like another person, lost or in view, gets a new id, as in the
ratio test of re-ID retrieval; a box that looks like the lost person only is still
re-identified."""
import numpy as np
import pytest

from smiletrack_ros.tracking import SmileTracker, TrackerConfig, TrackState

W, H = 40.0, 100.0
SPEED = 50.0  # px/s
GAP = 400.0  # between the two people: each lost track's re-ID gate holds only its own place
DIM = 8
COMMON = np.eye(DIM, dtype=np.float32)[DIM - 1]
# Two people whose looks have similarity 0.9.
LOOKS = np.sqrt(0.9) * COMMON + np.sqrt(0.1) * np.eye(DIM, dtype=np.float32)[:2]
# Someone who looks equally like both (similarity ~0.97 to each): over every gate, but no evidence of who.
BLEND = (LOOKS[0] + LOOKS[1]) / np.linalg.norm(LOOKS[0] + LOOKS[1])


def reappear(look, fps=25.0, second_seen=False, **overrides):
    """Both people walk for 1 s, then the first one is hidden for 1 s (the second one too,
    unless ``second_seen``), then a box with ``look`` appears two box widths beyond the first
    person's predicted place (out of reach of the overlap stages; far from the second person)
    -> (first person's id, the tracker, the frame's output)."""
    trk = SmileTracker(TrackerConfig.from_preset("reid", **overrides), frame_rate=fps)
    ids = []
    for k in range(int(fps)):
        t = k / fps
        xs = [100.0 + SPEED * t, 100.0 + GAP + SPEED * t]
        out = trk.update(np.array([[x, 200.0, x + W, 200.0 + H] for x in xs]), np.full(2, 0.9),
                         embeddings=LOOKS, timestamp=t)
        ids = [o.track_id for o in sorted(out, key=lambda o: o.detection_index)]
    assert len(set(ids)) == 2
    for k in range(int(fps), int(2 * fps) + 1):
        t = k / fps
        xs, looks = [], np.zeros((0, DIM), np.float32)
        if second_seen:
            xs, looks = [100.0 + GAP + SPEED * t], LOOKS[1:]
        if k == int(2 * fps):
            xs, looks = [100.0 + SPEED * t + 2 * W, *xs], np.vstack([look[None], looks])
        out = trk.update(np.array([[x, 200.0, x + W, 200.0 + H] for x in xs]).reshape(-1, 4), np.full(len(xs), 0.9),
                         embeddings=looks, timestamp=t)
        assert ids[1] in [o.track_id for o in out] if second_seen else k == int(2 * fps) or out == []
    out = [o for o in out if o.track_id != ids[1]]
    return ids[0], trk, out


@pytest.mark.parametrize("second_seen", [False, True])
def test_a_box_as_like_another_person_gets_a_new_id(second_seen):
    first, trk, out = reappear(BLEND, second_seen=second_seen)
    assert out == []  # born tentative: not re-identified
    states = {t.track_id: t.state for t in trk.live_tracks()}
    assert states[first] == TrackState.LOST and states[max(states)] == TrackState.TENTATIVE


@pytest.mark.parametrize("second_seen", [False, True])
def test_without_the_margin_the_nearest_lost_track_takes_it(second_seen):
    first, _, out = reappear(BLEND, second_seen=second_seen, reid_margin=None)
    assert [o.track_id for o in out] == [first]


@pytest.mark.parametrize("fps", [25.0, 5.0])
@pytest.mark.parametrize("second_seen", [False, True])
def test_a_distinct_match_is_still_re_identified(fps, second_seen):
    first, _, out = reappear(LOOKS[0], fps, second_seen)
    assert [o.track_id for o in out] == [first]


def test_the_margin_is_validated_and_off_outside_reid():
    for bad in (-0.1, 3.0, float("nan"), True):
        with pytest.raises(ValueError, match="reid_margin"):
            TrackerConfig(reid_margin=bad)
    assert TrackerConfig().reid_margin == 0.03
    for name in ("paper", "official", "bytetrack"):
        assert TrackerConfig.from_preset(name).reid_margin is None
