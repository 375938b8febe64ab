"""Pipeline: detector/external detections -> (embedder) -> tracker, one frame at a time."""
import numpy as np
import pytest

from smiletrack_ros.detection.config import ExternalConfig
from smiletrack_ros.detection.external import ExternalDetector
from smiletrack_ros.detections import Detections
from smiletrack_ros.pipeline import FrameResult, LateFrameError, Pipeline
from smiletrack_ros.tracking import SmileTracker, TrackerConfig, TrackState

IMAGE = np.zeros((240, 320, 3), np.uint8)


def _walkers(frame: int) -> Detections:
    """Two boxes walking towards each other; scores high enough to start tracks."""
    boxes = np.array([[20 + 4 * frame, 50, 60 + 4 * frame, 150],
                      [250 - 4 * frame, 60, 290 - 4 * frame, 160]], np.float32)
    return Detections(boxes, np.array([0.9, 0.85], np.float32), np.zeros(2, np.int64))


def _pipeline(detector=None) -> Pipeline:
    return Pipeline(detector, None, SmileTracker(TrackerConfig.from_preset("bytetrack"), frame_rate=10.0))


def test_external_detections_keep_ids_and_report_timings():
    pipe = _pipeline()
    ids = []
    for k in range(8):
        result = pipe.process(IMAGE, 0.1 * k, _walkers(k))
        assert isinstance(result, FrameResult) and not result.reset
        ids.append(sorted(t.track_id for t in result.tracks))
    assert ids[-1] == ids[2] and len(ids[-1]) == 2
    assert set(result.timings) == {"track", "total"}
    assert all(v >= 0 for v in result.timings.values())
    assert {t.track_id for t in result.live_tracks} >= set(ids[-1])
    assert all(t.state == TrackState.TRACKED for t in result.tracks)


def test_detector_path_runs_the_detector():
    detector = ExternalDetector(ExternalConfig())
    for k in range(5):
        detector.store.put(k, _walkers(k))
    pipe = _pipeline(detector)
    for k in range(5):
        detector.select(k)
        result = pipe.process(IMAGE, 0.1 * k, None)
    assert "detect" in result.timings
    assert len(result.detections) == 2 and len(result.tracks) == 2


def test_time_going_backwards_resets_the_tracker_but_not_the_ids():
    pipe = _pipeline()
    for k in range(5):
        first = pipe.process(IMAGE, 10.0 + 0.1 * k, _walkers(k))
    first_ids = {t.track_id for t in first.tracks}
    again = pipe.process(IMAGE, 8.0, _walkers(0))   # the bag loops: 2.4 s back
    assert again.reset
    assert {t.track_id for t in again.live_tracks}.isdisjoint(first_ids)
    assert min(t.track_id for t in again.live_tracks) > max(first_ids)
    assert not pipe.process(IMAGE, 8.1, _walkers(1)).reset


def test_a_slightly_late_frame_is_refused_and_the_tracks_kept():
    pipe = _pipeline()
    for k in range(5):
        last = pipe.process(IMAGE, 10.0 + 0.1 * k, _walkers(k))
    ids = {t.track_id for t in last.live_tracks}
    with pytest.raises(LateFrameError, match="older than the last one"):
        pipe.process(IMAGE, 10.25, _walkers(2))   # delivered out of order, 0.15 s late
    following = pipe.process(IMAGE, 10.5, _walkers(5))
    assert not following.reset and {t.track_id for t in following.tracks} == ids
    with pytest.raises(ValueError, match="max_reorder_s"):
        Pipeline(None, None, pipe.tracker, max_reorder_s=-1.0)


def test_bad_inputs_name_the_problem():
    pipe = _pipeline()
    with pytest.raises(ValueError, match="no detector"):
        pipe.process(IMAGE, 0.0, None)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        pipe.process(IMAGE[:, :, 0], 0.0, _walkers(0))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        pipe.process(IMAGE.astype(np.float32), 0.0, _walkers(0))
    with pytest.raises(ValueError, match="finite"):
        pipe.process(IMAGE, float("nan"), _walkers(0))


def test_embedder_path_feeds_appearance_to_the_tracker():
    torch = pytest.importorskip("torch")
    from smiletrack_ros.embedding import Embedder

    torch.set_num_threads(1)
    embedder = Embedder(weights=None, device="cpu", warmup=False)   # untrained but real network
    pipe = Pipeline(None, embedder, SmileTracker(TrackerConfig.from_preset("paper"), frame_rate=10.0))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    for k in range(4):
        walkers = _walkers(k)
        equal = Detections(walkers.boxes, np.full(2, 0.9, np.float32), walkers.class_ids)  # both start tracks
        result = pipe.process(image, 0.1 * k, equal)
    assert "embed" in result.timings and len(result.tracks) == 2
    assert all(np.isfinite(t.appearance_similarity) for t in result.tracks)


class _Recording:
    """The shipped SLM embedder, recording how many boxes each call embeds."""

    def __init__(self):
        from smiletrack_ros.embedding import Embedder

        self.embedder = Embedder(device="cpu")
        self.calls: list[int] = []

    def __call__(self, image, boxes):
        self.calls.append(len(boxes))
        return self.embedder(image, boxes)


def test_only_boxes_the_tracker_can_use_are_embedded():
    """Boxes under min_score are not embedded (the tracker drops them unseen), none at all when the
    tracker matches without appearance; the tracks equal those of the tracker fed every embedding."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), np.uint8)
    recording = _Recording()
    config = TrackerConfig.from_preset("paper")
    pipe = Pipeline(None, recording, SmileTracker(config, frame_rate=10.0))
    reference = SmileTracker(config, frame_rate=10.0)
    for k in range(4):
        dets = _walkers(k)
        dets = Detections(np.vstack([dets.boxes, [[140, 20, 170, 90]]]).astype(np.float32),
                          np.array([0.9, 0.85, config.min_score / 2], np.float32), np.zeros(3, np.int64))
        got = pipe.process(image, 0.1 * k, dets).tracks
        want = reference.update(dets.boxes, dets.scores, class_ids=dets.class_ids,
                                embeddings=recording.embedder(image, dets.boxes), timestamp=0.1 * k)
        assert [(t.track_id, t.box.tolist(), repr(t.appearance_similarity)) for t in got] == \
            [(t.track_id, t.box.tolist(), repr(t.appearance_similarity)) for t in want]   # repr: nan == nan
    assert recording.calls == [2, 2, 2, 2]
    motion_only = Pipeline(None, recording, SmileTracker(TrackerConfig.from_preset("bytetrack"), frame_rate=10.0))
    motion_only.process(image, 0.0, _walkers(0))
    assert recording.calls == [2, 2, 2, 2]
