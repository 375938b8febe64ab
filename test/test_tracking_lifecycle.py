"""Track lifecycle, pinned frame by frame: birth, confirmation, loss, re-activation,
deletion (in frames, at another frame rate, and by timestamps), IDs and reset()."""
import numpy as np
import pytest

from smiletrack_ros.tracking import SmileTracker, TrackerConfig, TrackState

NONE = (np.zeros((0, 4)), np.zeros(0))
EMB = np.array([[1.0, 0.0, 0.0, 0.0]])


def box(x, y=100.0, w=40.0, h=100.0):
    return np.array([[x, y, x + w, y + h]], float)


def see(tracker, x, score=0.9, **kw):
    return tracker.update(box(x), np.array([score]), embeddings=EMB, **kw)


def states(tracker):
    return [(t.track_id, t.state) for t in tracker.live_tracks()]


def test_birth_confirmation_loss_and_deletion_at_30_fps():
    trk = SmileTracker(TrackerConfig.from_preset("paper"), frame_rate=30)
    assert trk.update(*NONE, embeddings=np.zeros((0, 4))) == []  # frame 1: nothing seen
    assert see(trk, 100) == []  # frame 2: born, not yet confirmed
    assert states(trk) == [(1, TrackState.TENTATIVE)]
    born = trk.live_tracks()[0]
    assert (born.hits, born.age, born.frames_since_update, born.detection_index) == (1, 1, 0, 0)

    out = see(trk, 102)  # frame 3: confirmed by a second detection
    assert [(t.track_id, t.state, t.hits, t.age, t.frames_since_update) for t in out] == \
        [(1, TrackState.TRACKED, 2, 2, 0)]
    assert out[0].appearance_similarity == pytest.approx(1.0)

    for frame in range(4, 34):  # frames 4..33: lost, kept for 30 frames after the last match
        assert trk.update(*NONE) == []
        (lost,) = trk.live_tracks()
        assert lost.state == TrackState.LOST and lost.frames_since_update == frame - 3
        assert lost.detection_index == -1
    trk.update(*NONE)  # frame 34: 31 frames unmatched -> deleted
    assert trk.live_tracks() == []


def test_unconfirmed_track_missed_once_is_removed():
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    trk.update(*NONE)
    see(trk, 100)
    trk.update(*NONE)
    assert trk.live_tracks() == []


def test_tracks_of_the_first_frame_are_confirmed_at_once():
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    out = see(trk, 100)
    assert [(t.track_id, t.state) for t in out] == [(1, TrackState.TRACKED)]
    trk = SmileTracker(TrackerConfig.from_preset("paper", activate_first_frame=False))
    assert see(trk, 100) == []


def test_lost_track_is_reactivated_with_its_id():
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    for k in range(5):
        see(trk, 100 + 4 * k)
    for _ in range(10):
        trk.update(*NONE)
    (lost,) = trk.live_tracks()
    assert lost.state == TrackState.LOST
    x_pred = float(lost.box[0])
    assert x_pred > 116  # the lost track kept moving with its velocity
    out = see(trk, x_pred + 3)
    assert [(t.track_id, t.state, t.hits, t.frames_since_update) for t in out] == \
        [(1, TrackState.TRACKED, 6, 0)]


@pytest.mark.parametrize("rate, kept_frames", [(30, 30), (10, 10), (25, 25), (15, 15)])
def test_deletion_scales_with_frame_rate_to_the_same_seconds(rate, kept_frames):
    trk = SmileTracker(TrackerConfig.from_preset("paper"), frame_rate=rate)
    see(trk, 100)
    for _ in range(kept_frames):
        trk.update(*NONE)
    assert len(trk.live_tracks()) == 1
    trk.update(*NONE)
    assert trk.live_tracks() == []


def test_deletion_by_timestamps_uses_elapsed_seconds():
    # Nominal 30 fps, but the camera really delivers 10 Hz: one second is 10 frames.
    trk = SmileTracker(TrackerConfig.from_preset("paper"), frame_rate=30)
    see(trk, 100, timestamp=5.0)
    for k in range(1, 11):  # t = 5.1 .. 6.0: at most one second unmatched
        trk.update(*NONE, timestamp=5.0 + 0.1 * k)
        assert len(trk.live_tracks()) == 1
    trk.update(*NONE, timestamp=6.1)
    assert trk.live_tracks() == []


def test_timestamps_scale_the_prediction_step():
    for step_s, rate in ((1 / 30, 30.0), (0.1, 10.0)):
        trk = SmileTracker(TrackerConfig.from_preset("paper"), frame_rate=rate)
        for k in range(20):  # 60 px/s to the right, whatever the rate
            see(trk, 100 + 60 * step_s * k, timestamp=k * step_s)
        trk.update(*NONE, timestamp=19 * step_s + 0.5)
        (lost,) = trk.live_tracks()
        assert lost.velocity[0] == pytest.approx(60, rel=0.1)
        # Half a second after the last detection it has moved on by about 30 px.
        assert float(lost.box[0]) - (100 + 60 * step_s * 19) == pytest.approx(30, abs=4)


def test_ids_are_per_instance_and_never_reused():
    a, b = SmileTracker(TrackerConfig.from_preset("paper")), SmileTracker(TrackerConfig.from_preset("paper"))
    assert [t.track_id for t in see(a, 100)] == [1]
    assert [t.track_id for t in see(b, 500)] == [1]
    rng = np.random.default_rng(3)
    seen: set[int] = set()
    for _ in range(200):  # objects appear and vanish at random positions
        n = int(rng.integers(0, 6))
        xs = rng.uniform(0, 2000, n)
        boxes = np.stack([xs, np.full(n, 50.0), xs + 30, np.full(n, 150.0)], axis=1)
        a.update(boxes, np.full(n, 0.9), embeddings=rng.normal(size=(n, 4)))
        for t in a.live_tracks():
            if t.age == 1:
                assert t.track_id not in seen
                seen.add(t.track_id)
    assert len(seen) > 100 and all(isinstance(i, int) for i in seen)


def test_reset_forgets_tracks_and_restarts_ids():
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    see(trk, 100)
    trk.update(box(100).repeat(2, 0) + [[0, 0, 0, 0], [300, 0, 300, 0]], np.array([0.9, 0.9]),
               embeddings=np.eye(4)[:2])
    assert len(trk.live_tracks()) == 2
    trk.reset()
    assert trk.live_tracks() == [] and trk.frame_count == 0
    assert [t.track_id for t in see(trk, 100)] == [1]
    trk.reset(restart_ids=False)
    assert [t.track_id for t in see(trk, 100)] == [2]


def test_reset_allows_a_new_embedding_width_and_earlier_timestamps():
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    see(trk, 100, timestamp=10.0)
    trk.reset()
    out = trk.update(box(100), np.array([0.9]), embeddings=np.ones((1, 7)), timestamp=1.0)
    assert [t.track_id for t in out] == [1]


def test_swapping_the_config_between_frames_applies_it_and_keeps_tracks():
    trk = SmileTracker(TrackerConfig.from_preset("paper"), frame_rate=30)
    see(trk, 100)
    trk.config = TrackerConfig.from_preset("paper", track_buffer=3, bank_size=5)
    assert trk.lost_timeout_frames == 3
    for _ in range(3):
        trk.update(*NONE)
    assert len(trk.live_tracks()) == 1
    trk.update(*NONE)
    assert trk.live_tracks() == []
    with pytest.raises(TypeError):
        trk.config = {"preset": "paper"}


def test_ids_are_python_ints_that_do_not_wrap_past_64_bits():
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    trk._next_id = 2 ** 63 - 1  # as after a (very) long run
    out = trk.update(np.array([[0, 0, 10, 20], [100, 0, 110, 20], [200, 0, 210, 20]], float),
                     np.full(3, 0.9), embeddings=np.eye(3))
    assert sorted(t.track_id for t in out) == [2 ** 63 - 1, 2 ** 63, 2 ** 63 + 1]
    assert all(type(t.track_id) is int for t in out)
