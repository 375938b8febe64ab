"""The node's staged worker without ROS: stages overlap, tracking order is kept, the newest
frame wins under overload, and the staged pipeline tracks exactly like ``Pipeline.process``."""
import threading
import time

import numpy as np
import pytest

from smiletrack_ros.detection.config import ExternalConfig
from smiletrack_ros.detection.external import ExternalDetector
from smiletrack_ros.detections import Detections
from smiletrack_ros.pipeline import Pipeline
from smiletrack_ros.ros.latest_worker import LatestWorker, Stage
from smiletrack_ros.tracking import SmileTracker, TrackerConfig

WAIT = 5.0


def test_stage_one_works_on_the_next_item_while_stage_two_finishes_this_one():
    second_busy, release = threading.Event(), threading.Event()
    overlapped = []

    def first(item):
        if item == 1:
            overlapped.append(second_busy.is_set())   # item 0 is inside stage two right now
            release.set()
        return item

    def second(item):
        if item == 0:
            second_busy.set()
            assert release.wait(WAIT), "stage one never took item 1 while stage two held item 0"
        done.append(item)

    done: list[int] = []
    worker = LatestWorker([Stage("one", first), Stage("two", second)], on_error=pytest.fail)
    worker.submit(0)
    assert second_busy.wait(WAIT)
    worker.submit(1)
    assert worker.wait_idle(WAIT) and worker.stop(1.0)
    assert overlapped == [True] and done == [0, 1]
    assert (worker.submitted, worker.dropped, worker.processed) == (2, 0, 2)


def test_a_parallel_stage_finishes_out_of_order_and_the_next_stage_gets_them_in_order():
    gates = {k: threading.Event() for k in range(4)}
    order: list[int] = []

    def slow_in_reverse(item):                  # item k waits until item k+1 has finished
        assert gates[item].wait(WAIT)
        if item > 0:
            gates[item - 1].set()
        return item

    worker = LatestWorker([Stage("embed", slow_in_reverse, workers=4), Stage("track", order.append)],
                          on_error=pytest.fail, in_flight=4)
    for k in range(4):
        worker.submit(k)
        time.sleep(0.02)                        # each is taken from the slot before the next comes
    gates[3].set()
    assert worker.wait_idle(WAIT) and worker.stop(1.0)
    assert order == [0, 1, 2, 3] and worker.dropped == 0


def test_the_newest_item_wins_under_overload_and_drops_are_counted():
    gate = threading.Event()
    tracked: list[int] = []

    def detect(item):
        if item == 0:
            assert gate.wait(WAIT)
        return item

    worker = LatestWorker([Stage("detect", detect), Stage("track", tracked.append)], on_error=pytest.fail,
                          in_flight=1)
    worker.submit(0)
    time.sleep(0.05)
    for k in range(1, 8):
        worker.submit(k)                        # 1..6 are replaced in the slot by the next one
    assert worker.in_flight == 1
    gate.set()
    assert worker.wait_idle(WAIT) and worker.stop(1.0)
    assert tracked == [0, 7]
    assert (worker.submitted, worker.dropped, worker.processed) == (8, 6, 2)


def test_the_first_stage_takes_a_frame_just_in_time_for_a_busy_next_stage():
    """Stage one is quick, stage two slow: a frame submitted while stage two is busy waits in the
    slot (where a newer one replaces it) until stage two is about to be free, rather than being
    detected at once and then waiting, ageing, for the tracker."""
    detected: dict[int, float] = {}
    tracked: list[int] = []

    def detect(item):
        detected[item] = time.perf_counter()
        time.sleep(0.02)
        return item

    def track(item):
        time.sleep(0.3)
        tracked.append(item)

    worker = LatestWorker([Stage("detect", detect), Stage("track", track)], on_error=pytest.fail)
    worker.submit(0)
    assert worker.wait_idle(WAIT)               # both stages' run times are known now
    start = time.perf_counter()
    worker.submit(1)
    time.sleep(0.08)                            # 1 is in the track stage
    worker.submit(2)
    time.sleep(0.08)
    assert worker.waiting                       # 2 was not taken: the tracker is busy for a while yet
    worker.submit(3)                            # replaces 2
    assert worker.wait_idle(WAIT) and worker.stop(1.0)
    assert tracked == [0, 1, 3] and worker.dropped == 1
    assert detected[3] - start > 0.2            # taken near the end of 1's 0.3 s in the track stage


def test_rejected_and_failing_items_keep_the_order_and_errors_arrive_in_order():
    events: list[object] = []

    def detect(item):
        if item == "reject":
            return None
        if item == "fail":
            raise RuntimeError("detector broke")
        return item

    worker = LatestWorker([Stage("detect", detect), Stage("embed", lambda x: x, workers=2),
                           Stage("track", events.append)], on_error=lambda exc: events.append(str(exc)))
    for item in ("a", "reject", "fail", "b"):
        worker.submit(item)
        assert worker.wait_idle(WAIT)
    assert worker.stop(1.0)
    assert events == ["a", "detector broke", "b"] and worker.processed == 4


def test_stop_mid_pipeline_drops_the_waiting_items_and_ends_every_thread():
    inside, release = threading.Event(), threading.Event()
    tracked: list[int] = []

    def detect(item):
        return item

    def track(item):
        inside.set()
        release.wait(WAIT)
        tracked.append(item)

    worker = LatestWorker([Stage("detect", detect), Stage("track", track)], on_error=pytest.fail)
    worker.submit(0)
    assert inside.wait(WAIT)
    worker.submit(1)                            # detected, then waits for the track stage
    time.sleep(0.05)
    threading.Timer(0.1, release.set).start()
    start = time.monotonic()
    assert worker.stop(2.0)
    assert time.monotonic() - start < 1.0
    assert tracked == [0]                       # item 1 never reached the tracker
    worker.submit(2)                            # ignored after stop
    assert worker.submitted == 2


def test_each_stage_reports_its_wait_and_run_time():
    seen: list[tuple[str, float, float]] = []
    lock = threading.Lock()

    def record(name, waited, ran):
        with lock:
            seen.append((name, waited, ran))

    worker = LatestWorker([Stage("detect", lambda x: time.sleep(0.01) or x), Stage("track", lambda x: None)],
                          on_error=pytest.fail, on_timing=record)
    worker.submit(1)
    assert worker.wait_idle(WAIT) and worker.stop(1.0)
    assert [name for name, _, _ in seen] == ["detect", "track"]
    assert seen[0][2] >= 0.01 and all(w >= 0 for _, w, _ in seen)
    with pytest.raises(ValueError, match="workers"):
        Stage("embed", print, workers=0)


# ---- the staged pipeline tracks exactly like Pipeline.process -----------------------------------------
class _CountingEmbedder:
    """Deterministic appearance: the mean colour inside each box (a real function of the pixels)."""

    dim = 3

    def __call__(self, image, boxes):
        rows = [image[int(y1):int(y2), int(x1):int(x2)].reshape(-1, 3).mean(0) + 1.0 for x1, y1, x2, y2 in boxes]
        out = np.asarray(rows, np.float32).reshape(-1, 3)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _scene(k: int) -> tuple[np.ndarray, Detections]:
    rng = np.random.default_rng(k)
    image = np.full((240, 320, 3), 50, np.uint8)
    boxes = np.array([[10 + 5 * k, 40, 50 + 5 * k, 140], [250 - 5 * k, 50, 290 - 5 * k, 150],
                      [120, 60 + 2 * k, 160, 160 + 2 * k]], np.float32)
    boxes[:, :2] += rng.normal(0, 1.5, (3, 2)).astype(np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        image[y1:y2, x1:x2] = (60 * i + 40, 200 - 60 * i, 90)
    scores = np.array([0.9, 0.55, 0.3], np.float32) + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    return image, Detections(boxes, scores, np.zeros(3, np.int64))


def _pipeline() -> Pipeline:
    detector = ExternalDetector(ExternalConfig())
    for k in range(40):
        detector.store.put(k, _scene(k)[1])
    return Pipeline(detector, _CountingEmbedder(), SmileTracker(TrackerConfig.from_preset("reid"), frame_rate=10.0))


def _rows(result) -> list[tuple]:
    """Every live track, its floats as bytes: equal means bitwise equal (nan included)."""
    return [(t.track_id, t.state, np.asarray([*t.box, t.score, t.appearance_similarity, *t.velocity],
                                              np.float64).tobytes()) for t in result.live_tracks]


@pytest.mark.parametrize("embed_workers", [1, 3])
def test_the_staged_pipeline_gives_the_tracks_of_process(embed_workers):
    reference = _pipeline()
    expected = []
    for k in range(40):
        reference.detector.select(k)
        expected.append(_rows(reference.process(_scene(k)[0], 0.1 * k)))

    staged = _pipeline()
    got: list[list[tuple]] = []

    def start(k):
        staged.detector.select(k)
        return staged.start_frame(_scene(k)[0], 0.1 * k)

    stages = [Stage("detect", start)]
    if embed_workers > 1:
        stages.append(Stage("embed", staged.embed, workers=embed_workers))
    stages.append(Stage("track", lambda f: got.append(_rows(staged.track(f if f.embedded else staged.embed(f))))))
    tokens = len(stages) - 1 + embed_workers
    worker = LatestWorker(stages, on_error=pytest.fail, in_flight=tokens)
    for k in range(40):
        while worker.waiting or worker.in_flight >= tokens:    # a free place: none is dropped
            time.sleep(0.001)
        worker.submit(k)
    assert worker.wait_idle(WAIT) and worker.stop(1.0)
    assert worker.dropped == 0 and got == expected
    similarities = [np.frombuffer(row[2])[5] for rows in expected for row in rows]
    assert np.isfinite(similarities).any(), "appearance was used"


def test_a_keyed_slot_keeps_the_newest_of_each_camera_and_hands_them_over_together():
    gate = threading.Event()
    batches: list[dict] = []

    def detect(frames):
        if not batches:
            gate.wait(WAIT)
        batches.append(dict(frames))

    worker = LatestWorker([Stage("detect", detect)], on_error=pytest.fail, keyed=True)
    worker.submit("a0", key="a")
    time.sleep(0.05)                            # the stage holds {a: a0} at the gate
    for item, key in (("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", "c")):
        worker.submit(item, key=key)
    gate.set()
    assert worker.wait_idle(WAIT) and worker.stop(1.0)
    assert batches == [{"a": "a0"}, {"a": "a2", "b": "b1", "c": "c1"}]
    assert worker.dropped == 1 and worker.dropped_by_key == {"a": 1}


class _BatchCounter:
    """A detector that records its calls: ``detect_batch`` takes several images in one call."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, image):
        return self.detect_batch([image])[0]

    def detect_batch(self, images):
        self.calls.append(len(images))
        return [Detections(np.array([[1, 1, 20, 40]], np.float32) + float(image[0, 0, 0]),
                           np.array([0.9], np.float32), np.zeros(1, np.int64)) for image in images]


def test_frames_of_several_cameras_go_through_one_detector_call():
    from smiletrack_ros.pipeline import LateFrameError, start_frames

    detector = _BatchCounter()
    cameras = [Pipeline(detector, None, SmileTracker(TrackerConfig.from_preset("bytetrack"))) for _ in range(3)]
    images = [np.full((60, 80, 3), v, np.uint8) for v in (10, 20, 30)]
    external = Detections(np.array([[5, 5, 30, 50]], np.float32), np.array([0.8], np.float32), np.zeros(1, np.int64))
    started = start_frames(cameras, [(images[0], 1.0, None, False), (images[1], 1.0, external, False),
                                     (images[2], 1.0, None, False)])
    assert detector.calls == [2]                # one call for the two cameras without detections
    assert started[0].detections.boxes[0, 0] == 11.0 and started[2].detections.boxes[0, 0] == 31.0
    assert started[1].detections is external and "detect" not in started[1].timings
    late = start_frames(cameras, [(images[0], 0.5, None, False), (images[1], 2.0, None, False),
                                  (images[2], 2.0, None, False)])
    assert isinstance(late[0], LateFrameError) and detector.calls == [2, 2]   # the others go on
    assert late[1].detections.boxes[0, 0] == 21.0 and late[2].detections.boxes[0, 0] == 31.0


def test_a_frames_crops_cut_into_parts_embed_as_in_one_call():
    from concurrent.futures import ThreadPoolExecutor

    from smiletrack_ros.pipeline import embed_frames

    cameras = [_pipeline(), _pipeline()]
    frames = [cameras[0].start_frame(_scene(3)[0], 0.3, _scene(3)[1]),
              cameras[1].start_frame(_scene(7)[0], 0.7, _scene(7)[1])]
    whole = embed_frames(cameras, frames)
    with ThreadPoolExecutor(3) as pool:
        for parts in (2, 3, 8):
            cut = embed_frames(cameras, frames, pool, parts)
            for a, b in zip(whole, cut, strict=True):
                assert a.embeddings.tobytes() == b.embeddings.tobytes() and b.embedded
    assert [len(f.embeddings) for f in whole] == [3, 3] and np.isfinite(whole[1].embeddings).all()
