"""Property-based hardening of SmileTracker, for every preset.

Hypothesis plans whole runs: objects walking with their own appearance, mixed
with garbage rows (nan/inf, zero or negative size, huge coordinates, scores
outside [0, 1], nan or zero-norm embeddings), empty and crowded frames (up to
300 boxes), garbage class ids, class-aware matching and duplicate removal on or
off, and frames whose arrays disagree in shape. A malformed frame must
raise InputError naming the problem and change nothing; any other frame must
be accepted and keep the invariants checked in ``Invariants``.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smiletrack_ros.tracking import ConfigError, InputError, SmileTracker, TrackerConfig, TrackState

PRESETS = ("paper", "official", "bytetrack", "reid")
BANK_SIZE = 3  # small, so the cap is reached within a run
FRAME_RATE = 30.0

GARBAGE_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 1e7]))
# Each malformation names the words its InputError must contain.
MALFORMED = {
    "scores_longer": ("scores",),
    "class_ids_shorter": ("class_ids",),
    "embeddings_fewer_rows": ("embeddings",),
    "embeddings_other_width": ("columns",),
    "boxes_five_columns": ("boxes", "(N, 4)"),
    "timestamp_backwards": ("timestamp", "backwards"),
}
# Mostly usable frames, so that runs are long enough for tracks to be lost and to time out.
FRAME_KINDS = ("clean",) * 6 + ("garbage_rows", "garbage_rows", "bad_embeddings", "empty", "crowd", *MALFORMED)


@st.composite
def runs(draw):
    """A run plan: the random parts are drawn here so Hypothesis can shrink them."""
    n_frames = draw(st.integers(3, 20))
    return {
        "track_buffer": draw(st.sampled_from([2, 5, 30])),
        "seed": draw(st.integers(0, 2**16)),
        "objects": draw(st.integers(0, 8)),
        "dim": draw(st.integers(1, 64)),
        "timestamps": draw(st.booleans()),
        "steps": draw(st.lists(st.sampled_from([0.0, 1 / 30, 0.2, 1.0, 3.0]), min_size=n_frames,
                               max_size=n_frames)),
        "kinds": draw(st.lists(st.sampled_from(FRAME_KINDS), min_size=n_frames, max_size=n_frames)),
        # Garbage rows: x1, y1, x2, y2, score, class id.
        "garbage": draw(st.lists(st.tuples(*[GARBAGE_FLOATS] * 6), min_size=1, max_size=12)),
        "class_aware": draw(st.booleans()),
        "remove_duplicates": draw(st.booleans()),
        "crowd": draw(st.integers(50, 300)),
    }


class Scene:
    """Objects with a start position, a velocity and a fixed appearance vector."""

    def __init__(self, rng: np.random.Generator, objects: int, dim: int):
        self.rng = rng
        self.start = rng.uniform(0, 1500, (objects, 2))
        self.velocity = rng.uniform(-8, 8, (objects, 2))
        self.size = rng.uniform(20, 120, (objects, 2))
        self.looks = rng.normal(size=(objects, dim))
        self.classes = rng.integers(0, 3, objects).astype(float)
        self.dim = dim

    def frame(self, k: int, crowd: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        xy = self.start + k * self.velocity + self.rng.normal(0, 1.0, self.start.shape)
        boxes = np.concatenate([xy, xy + self.size], axis=1)
        looks = self.looks + self.rng.normal(0, 0.1, self.looks.shape)
        scores = self.rng.uniform(0.05, 1.0, len(boxes))
        classes = self.classes
        if crowd:
            xy = self.rng.uniform(0, 3000, (crowd, 2))
            boxes = np.concatenate([boxes, np.concatenate([xy, xy + self.rng.uniform(5, 100, (crowd, 2))], 1)])
            looks = np.concatenate([looks, self.rng.normal(size=(crowd, self.dim))])
            scores = np.concatenate([scores, self.rng.uniform(0, 1, crowd)])
            classes = np.concatenate([classes, self.rng.integers(0, 3, crowd)])
        return boxes, scores, looks, classes


class Invariants:
    """Everything a run must keep, checked after each accepted frame."""

    def __init__(self, tracker: SmileTracker):
        self.tracker = tracker
        self.duplicates_removed = tracker.config.remove_duplicates
        self.ever: set[int] = set()
        self.max_id = 0
        self.previous: dict[int, object] = {}
        self.last_match: dict[int, tuple[int, float | None]] = {}  # id -> (frame, timestamp)

    def check(self, outputs, frame: int, timestamp: float | None, boxes, scores, classes) -> None:
        trk = self.tracker
        live = trk.live_tracks()
        live_ids = [t.track_id for t in live]
        out_ids = [t.track_id for t in outputs]
        assert len(set(live_ids)) == len(live_ids), live_ids
        assert len(set(out_ids)) == len(out_ids), out_ids
        assert set(out_ids) <= set(live_ids)
        for t in outputs:
            assert t.state == TrackState.TRACKED and t.frames_since_update == 0
            # detection_index points into the caller's arrays, at a usable row.
            i = t.detection_index
            assert np.isfinite(boxes[i]).all() and boxes[i, 2] > boxes[i, 0] and boxes[i, 3] > boxes[i, 1]
            assert t.class_id == classes[i] and t.score == np.clip(scores[i], 0.0, 1.0)
            if self.tracker.config.class_aware and t.track_id in self.previous:
                assert t.class_id == self.previous[t.track_id].class_id
        for t in live:
            assert np.isfinite(t.box).all() and np.isfinite(t.velocity).all(), t
            assert t.box[2] >= t.box[0] and t.box[3] >= t.box[1]
            assert 0.0 <= t.score <= 1.0
            assert math.isnan(t.appearance_similarity) or -1.0 <= t.appearance_similarity <= 1.0
        store = trk._tracks.appearance  # the feature banks have no public view
        assert store.bank.shape[1] == BANK_SIZE and (store.count <= BANK_SIZE).all()
        assert len(store) == len(live)

        # Births: never an id seen before, always above every earlier id.
        born = [i for i in live_ids if i not in self.previous]
        for i in born:
            assert i not in self.ever, f"id {i} reused"
            assert i > self.max_id, f"id {i} born after id {self.max_id}"
        self.ever.update(born)
        self.max_id = max([self.max_id, *born])

        # Deaths: tentative tracks may go at once; confirmed ones only after their lifetime.
        for i, before in self.previous.items():
            if i in live_ids or before.state == TrackState.TENTATIVE:
                continue
            if self.duplicates_removed and self._has_duplicate(before, live):
                continue
            last_frame, last_time = self.last_match[i]
            if timestamp is not None and last_time is not None:
                assert timestamp - last_time > trk.lost_timeout_s - 1e-6, (i, timestamp, last_time)
            else:
                assert frame - last_frame > trk.lost_timeout_frames, (i, frame, last_frame)

        for t in live:
            if t.frames_since_update == 0:
                self.last_match[t.track_id] = (frame, timestamp)
        self.previous = {t.track_id: t for t in live}


    @staticmethod
    def _has_duplicate(gone, live) -> bool:
        """Duplicate removal keeps one of two tracks on one object: one still live must
        overlap where the removed one was a frame ago."""
        return any(_iou(gone.box, t.box) > 0.5 for t in live)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def _malformed(kind: str, boxes, scores, classes, embeddings, timestamp, last_timestamp: float, dim: int):
    """The frame's arrays with the malformation ``kind`` applied."""
    if kind == "scores_longer":
        scores = np.append(scores, 0.5)
    elif kind == "class_ids_shorter":
        classes = classes[:-1] if len(classes) else np.zeros(1)
    elif kind == "embeddings_fewer_rows":
        embeddings = embeddings[:-1] if len(embeddings) else np.ones((1, dim))
    elif kind == "embeddings_other_width":
        embeddings = np.ones((len(boxes), dim + 1))
    elif kind == "boxes_five_columns":
        boxes = np.concatenate([boxes, np.zeros((len(boxes), 1))], axis=1) if len(boxes) else np.zeros((1, 5))
    elif kind == "timestamp_backwards":
        timestamp = last_timestamp - 0.5
    return boxes, scores, classes, embeddings, timestamp


def _run(preset: str, plan: dict) -> None:
    cfg = TrackerConfig.from_preset(preset, bank_size=BANK_SIZE, track_buffer=plan["track_buffer"],
                                    remove_duplicates=plan["remove_duplicates"], class_aware=plan["class_aware"])
    trk = SmileTracker(cfg, frame_rate=FRAME_RATE)
    check = Invariants(trk)
    rng = np.random.default_rng(plan["seed"])
    scene = Scene(rng, plan["objects"], plan["dim"])
    clock = 10.0
    accepted = 0
    embedded_once = False
    for k, (kind, step) in enumerate(zip(plan["kinds"], plan["steps"], strict=True)):
        timestamp = clock + step if plan["timestamps"] else None
        boxes, scores, looks, classes = scene.frame(k, crowd=plan["crowd"] if kind == "crowd" else 0)
        if kind == "empty":
            boxes, scores, looks, classes = np.zeros((0, 4)), np.zeros(0), np.zeros((0, plan["dim"])), np.zeros(0)
        elif kind == "garbage_rows":
            junk = np.array(plan["garbage"], float)
            boxes = np.concatenate([boxes, junk[:, :4]])
            scores = np.concatenate([scores, junk[:, 4]])
            classes = np.concatenate([classes, junk[:, 5]])
            looks = np.concatenate([looks, rng.normal(size=(len(junk), plan["dim"]))])
        elif kind == "bad_embeddings" and len(looks):
            bad = rng.random(len(looks)) < 0.5
            looks[bad] = rng.choice([0.0, np.nan, np.inf, 1e300], size=(int(bad.sum()), 1))
        if kind in MALFORMED:
            if kind == "timestamp_backwards" and not (plan["timestamps"] and accepted):
                continue
            if kind.startswith("embeddings") and (not cfg.use_appearance or
                                                  (kind == "embeddings_other_width" and not embedded_once)):
                continue  # motion-only trackers ignore embeddings; their width is fixed by the first use
            args = _malformed(kind, boxes, scores, classes, looks, timestamp, clock, plan["dim"])
            before = ([(t.track_id, t.state, t.age) for t in trk.live_tracks()], trk.frame_count)
            with pytest.raises(InputError) as err:
                trk.update(args[0], args[1], class_ids=args[2], embeddings=args[3], timestamp=args[4])
            for word in MALFORMED[kind]:
                assert word in str(err.value), (kind, str(err.value))
            assert ([(t.track_id, t.state, t.age) for t in trk.live_tracks()], trk.frame_count) == before
            continue
        clock += step
        out = trk.update(boxes, scores, class_ids=classes, embeddings=looks, timestamp=timestamp)
        embedded_once = True
        accepted += 1
        check.check(out, trk.frame_count, timestamp, boxes, scores, classes)
    assert trk.frame_count == accepted


@pytest.mark.parametrize("preset", PRESETS)
@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plan=runs())
def test_any_run_keeps_the_invariants_or_raises_input_error(preset, plan):
    _run(preset, plan)


@pytest.mark.parametrize("preset", PRESETS)
def test_a_confirmed_track_lives_exactly_its_buffer_then_its_id_is_never_reused(preset):
    """The oracle in ``Invariants`` is exact: a track seen once, then nothing."""
    trk = SmileTracker(TrackerConfig.from_preset(preset, track_buffer=6), frame_rate=FRAME_RATE)
    box = np.array([[100.0, 100.0, 140.0, 200.0]])
    look = np.ones((1, 4))
    trk.update(box, np.array([0.9]), embeddings=look)
    gone_after = None
    for k in range(2, trk.lost_timeout_frames + 5):
        trk.update(np.zeros((0, 4)), np.zeros(0), embeddings=np.zeros((0, 4)))
        if not trk.live_tracks() and gone_after is None:
            gone_after = k
    assert gone_after == 1 + trk.lost_timeout_frames + 1
    out = trk.update(box, np.array([0.9]), embeddings=look)
    assert [t.track_id for t in trk.live_tracks()] == [2] and out == []


@pytest.mark.parametrize("preset", ["paper", "reid"])
def test_an_error_during_a_birth_leaves_the_previous_state_and_later_frames_track(monkeypatch, preset):
    """A MemoryError while the feature-bank pool grows for a new track (as a huge
    bank_size would cause) is raised, the tracker is as it was before that frame,
    and the next frames track as if the failed call had never been made."""
    from smiletrack_ros.tracking import bank

    def frames():
        looks = np.eye(6, dtype=np.float32)
        for k in range(12):
            n = 2 if k < 6 else 3  # a third person arrives at frame 6
            xs = 50.0 + 150.0 * np.arange(n) + 3.0 * k
            yield (np.column_stack([xs, np.full(n, 80.0), xs + 40, np.full(n, 180.0)]), np.full(n, 0.9),
                   looks[:n], k / 10.0)

    reference = SmileTracker(TrackerConfig.from_preset(preset), frame_rate=10.0)
    expected = [[(t.track_id, tuple(t.box)) for t in reference.update(b, s, embeddings=e, timestamp=ts)]
                for b, s, e, ts in frames()]

    trk = SmileTracker(TrackerConfig.from_preset(preset), frame_rate=10.0)
    real_concatenate = np.concatenate
    got = []
    for k, (b, s, e, ts) in enumerate(frames()):
        if k == 6:
            before = [(t.track_id, t.state, t.age, tuple(t.box)) for t in trk.live_tracks()]
            banks = trk._tracks.appearance.bank.copy()

            def failing(arrays, *args, **kwargs):
                if any(getattr(a, "ndim", 0) == 3 and a.dtype == np.float32 for a in arrays):
                    raise MemoryError("bank pool growth")
                return real_concatenate(arrays, *args, **kwargs)

            monkeypatch.setattr(bank.np, "concatenate", failing)
            with pytest.raises(MemoryError):
                trk.update(b, s, embeddings=e, timestamp=ts)
            monkeypatch.setattr(bank.np, "concatenate", real_concatenate)
            assert [(t.track_id, t.state, t.age, tuple(t.box)) for t in trk.live_tracks()] == before
            assert np.array_equal(trk._tracks.appearance.bank, banks) and trk.frame_count == 6
        got.append([(t.track_id, tuple(t.box)) for t in trk.update(b, s, embeddings=e, timestamp=ts)])
    assert got == expected


def test_concurrent_updates_raise_a_clear_error_and_leave_the_tracker_working():
    import threading

    from smiletrack_ros.tracking import ConcurrentUpdateError

    trk = SmileTracker(TrackerConfig.from_preset("paper"), frame_rate=10.0)
    inside, release = threading.Event(), threading.Event()
    real_predict = trk._predict

    def slow_predict(dt):
        inside.set()
        assert release.wait(10)
        real_predict(dt)

    trk._predict = slow_predict
    box = np.array([[10.0, 10.0, 50.0, 110.0]])
    worker = threading.Thread(target=trk.update, args=(box, np.array([0.9])), kwargs={"timestamp": 0.0})
    worker.start()
    assert inside.wait(10)
    with pytest.raises(ConcurrentUpdateError, match="not thread-safe"):
        trk.update(box, np.array([0.9]), timestamp=0.1)
    release.set()
    worker.join(10)
    trk._predict = real_predict
    assert [t.track_id for t in trk.update(box, np.array([0.9]), timestamp=0.1)] == [1]


def test_sizes_that_allocate_are_bounded():
    from smiletrack_ros.tracking.config import MAX_BANK_SIZE
    from smiletrack_ros.tracking.inputs import MAX_EMBEDDING_DIM

    with pytest.raises(ConfigError, match="^bank_size: must be at most"):
        TrackerConfig.from_preset("paper", bank_size=100_000_000)
    TrackerConfig.from_preset("paper", bank_size=MAX_BANK_SIZE)
    trk = SmileTracker(TrackerConfig.from_preset("paper"))
    box = np.array([[0.0, 0.0, 10.0, 20.0]])
    with pytest.raises(InputError, match="^embeddings: 4097 columns"):
        trk.update(box, np.array([0.9]), embeddings=np.ones((1, MAX_EMBEDDING_DIM + 1)))
    assert [t.track_id for t in trk.update(box, np.array([0.9]), embeddings=np.ones((1, 8)))] == [1]
