"""Input validation and hardening: clear errors for unusable shapes (state unchanged),
bad rows dropped and counted, scores clipped, every track state finite."""
import numpy as np
import pytest

from smiletrack_ros.tracking import InputError, SmileTracker, TrackerConfig

E = np.eye(4)


def boxes(*xs):
    return np.array([[x, 100, x + 40, 200] for x in xs], float).reshape(-1, 4)


def started():
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    trk.update(boxes(100), np.array([0.9]), embeddings=E[:1], timestamp=1.0)
    return trk


@pytest.mark.parametrize("args, kwargs, words", [
    ((boxes(0, 100), np.array([0.9])), {}, ["scores", "boxes"]),
    ((np.zeros((2, 5)), np.zeros(2)), {}, ["boxes", "(N, 4)"]),
    ((np.zeros(4), np.zeros(1)), {}, ["boxes"]),
    ((boxes(0), np.zeros((1, 1))), {}, ["scores"]),
    ((boxes(0), np.array([0.9])), {"class_ids": np.zeros(2)}, ["class_ids"]),
    ((boxes(0), np.array([0.9])), {"embeddings": np.zeros((2, 4))}, ["embeddings"]),
    ((boxes(0), np.array([0.9])), {"embeddings": np.zeros(4)}, ["embeddings"]),
    ((boxes(0), np.array([0.9])), {"embeddings": np.zeros((1, 8))}, ["8 columns", "4"]),
    ((boxes(0), np.array([0.9])), {"timestamp": 0.5}, ["timestamp", "backwards"]),
    ((boxes(0), np.array([0.9])), {"timestamp": float("nan")}, ["timestamp"]),
    ((boxes(0), np.array(["a"])), {}, ["scores"]),
    ((boxes(0), np.array([0.9])), {"image": np.zeros((4, 4, 3), np.float32)}, ["image"]),
    ((boxes(0), np.array([0.9])), {"image": np.zeros((4, 4, 4), np.uint8)}, ["image"]),
])
def test_unusable_input_raises_input_error_and_changes_nothing(args, kwargs, words):
    trk = started()
    before = [(t.track_id, t.state, t.age) for t in trk.live_tracks()]
    with pytest.raises(InputError) as err:
        trk.update(*args, **kwargs)
    for word in words:
        assert word in str(err.value)
    assert trk.frame_count == 1 and [(t.track_id, t.state, t.age) for t in trk.live_tracks()] == before
    # The tracker still works afterwards.
    assert [t.track_id for t in trk.update(boxes(101), np.array([0.9]), embeddings=E[:1], timestamp=2.0)] == [1]


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


def test_bad_rows_are_dropped_counted_and_indices_refer_to_the_callers_arrays():
    trk = SmileTracker(TrackerConfig.from_preset("paper", high_threshold=0.5))
    rows = np.array([
        [np.nan, 0, 10, 10],  # not finite
        [0, 0, 0, 10],  # zero width
        [50, 50, 40, 60],  # negative width
        [100, 100, 140, 200],  # good
        [0, 0, 1e9, 10],  # beyond any camera
        [300, 100, 340, 200],  # good
        [500, 100, 540, 200],  # score not finite
    ])
    scores = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 1.7, np.inf])
    out = trk.update(rows, scores, embeddings=np.eye(7, 4))
    assert trk.last_rejected == 5
    assert sorted(t.detection_index for t in out) == [3, 5]
    assert {t.detection_index: t.score for t in out}[5] == 1.0  # clipped


def test_empty_frames_in_any_shape_are_accepted():
    trk = started()
    for empty in (np.zeros((0, 4)), [], np.zeros(0)):
        assert trk.update(empty, [], embeddings=np.zeros((0, 4))) == []
    assert trk.update(np.zeros((0, 4)), np.zeros(0), class_ids=[]) == []


def test_zero_norm_embedding_counts_as_no_appearance():
    trk = started()
    out = trk.update(boxes(101), np.array([0.9]), embeddings=np.zeros((1, 4)))
    assert [t.track_id for t in out] == [1] and trk.last_missing_appearance == 1


def test_track_states_stay_finite_under_hostile_input():
    rng = np.random.default_rng(11)
    trk = SmileTracker(TrackerConfig.from_preset("paper", cmc=False))
    t = 0.0
    seen = 0
    for _ in range(150):
        n = int(rng.integers(0, 8))
        xy = rng.choice([rng.uniform(-1e5, 1e5), rng.uniform(0, 1000)], size=(n, 2))
        wh = rng.choice([1e-6, 0.5, 40.0, 3e5], size=(n, 2))
        rows = np.concatenate([xy, xy + wh], axis=1)
        rows[rng.random((n, 4)) < 0.03] = np.nan
        emb = rng.normal(size=(n, 4)) * rng.choice([0.0, 1.0, 1e30], size=(n, 1))
        t += float(rng.choice([0.0, 1 / 30, 5.0]))
        trk.update(rows, rng.uniform(-0.5, 1.5, n), class_ids=rng.integers(0, 3, n), embeddings=emb,
                   timestamp=t)
        seen += len(trk.live_tracks())
        for track in trk.live_tracks():
            assert np.isfinite(track.box).all() and np.isfinite(track.velocity).all()
            assert 0.0 <= track.score <= 1.0
    assert trk.frame_count == 150 and seen > 100


def test_rows_with_unusable_class_ids_are_dropped():
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    out = trk.update(boxes(0, 100, 200), np.full(3, 0.9), class_ids=np.array([np.nan, 1e30, 7.0]),
                     embeddings=E[:3])
    assert trk.last_rejected == 2
    assert [(t.detection_index, t.class_id) for t in out] == [(2, 7)]


def test_missing_embeddings_warn_only_when_a_usable_box_lacks_them(caplog):
    """The pipeline embeds only boxes at or above min_score: a frame of lower boxes alone comes without
    embeddings and must not be reported as motion-only association; a usable box without one must."""
    trk = started()
    low = TrackerConfig.from_preset("paper").min_score / 2
    with caplog.at_level("WARNING", logger="smiletrack_ros.tracking.tracker"):
        trk.update(boxes(100), np.array([low]), timestamp=2.0)
        assert "no embeddings given" not in caplog.text
        trk.update(boxes(100), np.array([0.9]), timestamp=3.0)
        assert "no embeddings given" in caplog.text
