"""The ONNX / OpenVINO detectors' input blob: built channel by channel, bitwise the blob of the
whole-array formula ``((canvas - mean) / std).transpose(2, 0, 1)`` in float32, for both channel orders."""
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
from smiletrack_ros.detection import OnnxConfig, build_detector


def _reference(detector, image):
    canvas = detector.preprocess(image)[1].apply(image)
    if detector.channel_order == "rgb":
        canvas = canvas[..., ::-1]
    order = slice(None, None, -1 if detector.channel_order == "rgb" else 1)
    blob = (canvas.astype(np.float32) - detector.mean[order]) / detector.std[order]
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[None])


@pytest.mark.parametrize("channel_order", ["bgr", "rgb"])
def test_blob_equals_the_whole_array_formula(shared_dir, channel_order):
    detector = build_detector(OnnxConfig(weights=str(shared_dir / "models" / "yolox_nano.onnx"), device="cpu"))
    detector.channel_order = channel_order      # YOLOX is raw BGR; a normalised RGB model as well
    detector.mean, detector.std = np.float32([0.406, 0.456, 0.485]) * 255, np.float32([0.225, 0.224, 0.229]) * 255
    image = np.random.default_rng(0).integers(0, 256, (300, 500, 3), np.uint8)
    blob, box = detector.preprocess(image)
    assert blob.dtype == np.float32 and blob.shape == (1, 3, 416, 416) and blob.flags.c_contiguous
    assert np.array_equal(blob, _reference(detector, image))
