"""Image message conversion (numpy path), latest-frame worker, stamp pairing, node stats; no DDS."""
import threading
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from smiletrack_ros.image_codec import ImageError, bgr_to_raw_fields, compressed_to_bgr, raw_to_bgr_numpy
from smiletrack_ros.ros.images import ImageConverter
from smiletrack_ros.ros.latest_worker import LatestWorker
from smiletrack_ros.ros.node_stats import NodeStats
from smiletrack_ros.ros.stamp_pairing import StampPairer

RNG = np.random.default_rng(7)
BGR = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _raw(enc, pixels, pad=0, **over):
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(height, width * channels)
    rows = np.concatenate([rows, np.full((height, pad), 77, np.uint8)], axis=1)
    fields = dict(height=height, width=width, encoding=enc, is_bigendian=0, step=width * channels + pad,
                  data=rows.tobytes())
    fields.update(over)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize("encoding, pixels", [
    ("bgr8", BGR), ("rgb8", BGR[:, :, ::-1]), ("bgra8", np.dstack([BGR, np.full((5, 7), 9, np.uint8)])),
    ("rgba8", np.dstack([BGR[:, :, ::-1], np.full((5, 7), 9, np.uint8)])),
])
@pytest.mark.parametrize("pad", [0, 3])
def test_colour_encodings_give_the_same_bgr(encoding, pixels, pad):
    out = raw_to_bgr_numpy(_raw(encoding, np.ascontiguousarray(pixels), pad))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, BGR)


def test_mono8_is_replicated_to_three_channels():
    gray = BGR[:, :, 0].copy()
    out = raw_to_bgr_numpy(_raw("mono8", gray, pad=1))
    assert out.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_array_typed_data_as_rclpy_delivers_it():
    import array

    msg = _raw("bgr8", BGR)
    msg.data = array.array("B", msg.data)
    np.testing.assert_array_equal(raw_to_bgr_numpy(msg), BGR)


@pytest.mark.parametrize("over, reason", [
    ({"height": 0}, "zero_size"), ({"width": 0}, "zero_size"),
    ({"step": 20}, "size_mismatch"),            # 20 x 5 != 105 bytes
    ({"data": b"\x00" * 50}, "size_mismatch"),
    ({"step": 7, "data": b"\x00" * 35}, "size_mismatch"),  # step shorter than width x 3
    ({"encoding": "bayer_rggb8"}, "unsupported_encoding"),
    ({"encoding": "16UC1", "step": 14, "data": b"\x00" * 70}, "unsupported_encoding"),
])
def test_malformed_raw_images_are_rejected_with_a_reason(over, reason):
    with pytest.raises(ImageError) as info:
        raw_to_bgr_numpy(_raw("bgr8", BGR, **over))
    assert info.value.reason == reason


def test_converter_without_cv_bridge_uses_numpy():
    conv = ImageConverter(use_cv_bridge=False)
    assert conv.backend == "numpy"
    np.testing.assert_array_equal(conv.raw_to_bgr(_raw("rgb8", np.ascontiguousarray(BGR[:, :, ::-1]))), BGR)


def test_compressed_png_round_trip_and_corrupt_data():
    ok, png = cv2.imencode(".png", BGR)
    assert ok
    np.testing.assert_array_equal(compressed_to_bgr(SimpleNamespace(format="png", data=png.tobytes())), BGR)
    with pytest.raises(ImageError) as info:
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=b"\xff\xd8 not a jpeg"))
    assert info.value.reason == "corrupt_compressed"
    with pytest.raises(ImageError) as info:
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=b""))
    assert info.value.reason == "zero_size"


def test_bgr_to_raw_fields_round_trip():
    fields = bgr_to_raw_fields(BGR)
    np.testing.assert_array_equal(raw_to_bgr_numpy(SimpleNamespace(**fields)), BGR)
    with pytest.raises(ValueError):
        bgr_to_raw_fields(BGR[:, :, 0])


def test_latest_worker_keeps_only_the_newest_and_counts_drops():
    gate = threading.Event()
    seen = []

    def handle(item):
        gate.wait(2.0)
        seen.append(item)

    worker = LatestWorker(handle, on_error=lambda exc: None)
    worker.submit(0)
    time.sleep(0.05)          # the worker takes 0 and blocks on the gate
    for i in range(1, 6):
        worker.submit(i)      # 1..4 are replaced before the worker is free
    gate.set()
    assert worker.wait_idle(2.0)
    assert seen == [0, 5]
    assert (worker.submitted, worker.dropped, worker.processed) == (6, 4, 2)
    assert worker.stop(0.5)


def test_latest_worker_survives_a_failing_item():
    errors, seen = [], []

    def handle(item):
        if item == "bad":
            raise RuntimeError("boom")
        seen.append(item)

    worker = LatestWorker(handle, on_error=errors.append)
    worker.submit("bad")
    assert worker.wait_idle(2.0)
    worker.submit("good")
    assert worker.wait_idle(2.0)
    assert seen == ["good"] and len(errors) == 1 and str(errors[0]) == "boom"
    assert worker.stop(0.5)


def test_stamp_pairer_pairs_either_order_and_discards_stale():
    pairer = StampPairer(max_pending=3)
    assert pairer.add_image(10, "i10") is None
    assert pairer.add_detections(10, "d10") == ("i10", "d10")
    assert pairer.add_detections(20, "d20") is None
    assert pairer.add_image(20, "i20") == ("i20", "d20")
    # an image whose detections never come is discarded once a newer stamp pairs
    assert pairer.add_image(30, "i30") is None
    assert pairer.add_image(40, "i40") is None
    assert pairer.add_detections(40, "d40") == ("i40", "d40")
    assert pairer.unpaired_images == 1 and pairer.unpaired_detections == 0
    # bounded: a flood of images without detections evicts the oldest
    for s in range(50, 56):
        pairer.add_image(s, s)
    assert pairer.unpaired_images == 1 + 3


def test_stamp_pairer_tolerance():
    pairer = StampPairer(max_pending=5, tolerance_ns=1000)
    assert pairer.add_image(1_000_000, "a") is None
    assert pairer.add_detections(1_000_900, "d") == ("a", "d")
    assert pairer.add_image(2_000_000, "b") is None
    assert pairer.add_detections(2_001_001, "e") is None
    with pytest.raises(ValueError, match="max_pending"):
        StampPairer(max_pending=0)


def test_node_stats_periods_and_counters():
    now = [100.0]
    stats = NodeStats(clock=lambda: now[0])
    for latency in (10.0, 30.0):
        stats.frame_done(latency, 2.0, live_tracks=7)
    assert stats.reject("size_mismatch") == 1 and stats.reject("size_mismatch") == 2
    stats.time_reset()
    now[0] = 102.0
    snap = stats.snapshot()
    assert (snap.frames, snap.rate_hz, snap.latency_ms_mean, snap.latency_ms_max) == (2, 1.0, 20.0, 30.0)
    assert (snap.live_tracks, snap.rejected, snap.time_resets, snap.total_frames) == (7, {"size_mismatch": 2}, 1, 2)
    now[0] = 103.0
    empty = stats.snapshot()                      # a new period: no frames, counters kept
    assert empty.frames == 0 and np.isnan(empty.latency_ms_mean) and empty.total_frames == 2
