"""The re-identification floor (the impostor quantile) is learnt from people seen together
after the same seconds at any frame rate: at 5 fps a frame's pairs count for the 30 fps
frames it stands for (``impostor_reference_fps``), so a look-alike is refused there as at 25 fps."""
import numpy as np
import pytest

from smiletrack_ros.tracking import SmileTracker, TrackerConfig, TrackState

W, H = 40.0, 100.0
SPEED = 50.0  # px/s
GAP = 400.0  # between people: each lost track's re-ID gate (2.5 heights after 2 s) holds only its own place
DIM = 16
COMMON = np.eye(DIM, dtype=np.float32)[DIM - 1]
# Six people whose looks all have similarity 0.9 to each other: the floor learnt from them is ~0.9.
LOOKS = np.sqrt(0.9) * COMMON + np.sqrt(0.1) * np.eye(DIM, dtype=np.float32)[:6]
# Someone else who looks 0.85 like the first person: over the appearance gate (0.7), under that floor.
LOOKALIKE = (0.85 * LOOKS[0] + np.sqrt(1 - 0.85 ** 2) * np.eye(DIM, dtype=np.float32)[6]).astype(np.float32)


def boxes_at(xs):
    return np.array([[x, 200.0, x + W, 200.0 + H] for x in xs])


def reappear(fps, look, **overrides):
    """Six people walk side by side for 1 s, all are hidden for 2 s, then a box with ``look``
    appears two box widths beyond the first person's predicted place -> (first person's id,
    the tracker, the frame's output)."""
    trk = SmileTracker(TrackerConfig.from_preset("reid", **overrides), frame_rate=fps)
    ids = []
    for k in range(int(round(fps))):
        t = k / fps
        out = trk.update(boxes_at([100.0 + i * GAP + SPEED * t for i in range(6)]), np.full(6, 0.9),
                         embeddings=LOOKS, timestamp=t)
        ids = [o.track_id for o in sorted(out, key=lambda o: o.detection_index)]
    assert len(set(ids)) == 6
    for k in range(int(round(fps)), int(round(3 * fps))):
        assert trk.update(np.zeros((0, 4)), np.zeros(0), embeddings=np.zeros((0, DIM)), timestamp=k / fps) == []
    out = trk.update(boxes_at([100.0 + SPEED * 3.0 + 2 * W]), np.array([0.9]), embeddings=look[None], timestamp=3.0)
    return ids[0], trk, out


@pytest.mark.parametrize("fps", [25.0, 5.0])
def test_a_lookalike_under_the_floor_gets_a_new_id_at_any_rate(fps):
    first, trk, out = reappear(fps, LOOKALIKE)
    assert out == []  # born tentative: not re-identified
    states = {t.track_id: t.state for t in trk.live_tracks()}
    assert states[first] == TrackState.LOST and states[max(states)] == TrackState.TENTATIVE


def test_the_same_person_is_still_re_identified_at_5_fps():
    first, _, out = reappear(5.0, LOOKS[0])
    assert [o.track_id for o in out] == [first]


def test_counting_each_pair_once_leaves_5_fps_without_a_floor():
    # 4 frames x 15 pairs = 60 < 100: no floor yet, and the appearance gate alone lets the look-alike in
    first, _, out = reappear(5.0, LOOKALIKE, impostor_reference_fps=None)
    assert [o.track_id for o in out] == [first]


def test_the_reference_rate_is_validated():
    with pytest.raises(ValueError, match="impostor_reference_fps"):
        TrackerConfig(impostor_reference_fps=0.0)
    assert TrackerConfig.from_preset("paper").impostor_reference_fps is None
