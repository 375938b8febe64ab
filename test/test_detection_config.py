"""Per-backend detector configs: typed, frozen, checked once, built from the node's flat settings."""
import dataclasses

import pytest

from smiletrack_ros.detection import DetectorConfig, DetectorConfigError, ExternalConfig, OnnxConfig, PrbConfig
from smiletrack_ros.detection.config import CONFIGS, ImageDetectorConfig, parameter_defaults
from smiletrack_ros.detection.factory import DETECTORS
from smiletrack_ros.errors import SettingError


def _fields(cls):
    return {f.name for f in dataclasses.fields(cls)}


def test_each_backend_holds_only_its_own_settings():
    shared = _fields(DetectorConfig)
    assert shared == {"weights", "score_threshold", "nms_iou", "max_detections", "classes"}
    assert _fields(ImageDetectorConfig) - shared >= {"device", "input_size", "tiles", "flip", "merge"}
    assert _fields(PrbConfig) - _fields(ImageDetectorConfig) == {"architecture", "half"}
    assert _fields(OnnxConfig) - _fields(ImageDetectorConfig) == {"layout", "strides", "cpu_threads"}
    assert _fields(ExternalConfig) - shared == {"stamp_tolerance", "missing"}
    assert not hasattr(ExternalConfig(), "device") and not hasattr(PrbConfig(), "layout")
    with pytest.raises(dataclasses.FrozenInstanceError):
        PrbConfig().half = False


def test_every_backend_has_a_config_and_a_detector():
    assert set(CONFIGS) == set(DETECTORS) and all(CONFIGS[n].backend == n for n in CONFIGS)


def test_the_node_settings_build_the_named_backend():
    flat = parameter_defaults()  # what the node passes: every backend's settings
    assert flat["backend"] == "prb" and {"layout", "architecture", "stamp_tolerance"} <= set(flat)
    assert DetectorConfig.from_mapping(flat) == PrbConfig()
    external = DetectorConfig.from_mapping({**flat, "backend": "external", "device": "cuda", "score_threshold": 0.3})
    assert external == ExternalConfig(score_threshold=0.3), "another backend's settings are left out"
    onnx = DetectorConfig.from_mapping({**flat, "backend": "onnx", "weights": "m.onnx", "strides": [8, 16]})
    assert isinstance(onnx, OnnxConfig) and onnx.strides == (8, 16) and onnx.as_mapping()["backend"] == "onnx"


def test_errors_carry_the_setting_name():
    cases = [({"layout": "yolo9"}, "layout"),             # checked although prb does not use it
             ({"backend": "onnx"}, "weights"),
             ({"backend": "tflite"}, "backend"),
             ({"nms_iou": 0.0}, "nms_iou"),
             ({"score_thresh": 0.1}, "score_thresh"),
             ({"backend": "external", "flip": True}, "flip")]
    for values, field in cases:
        with pytest.raises(DetectorConfigError) as info:
            DetectorConfig.from_mapping(values)
        assert isinstance(info.value, SettingError) and info.value.field == field
        assert str(info.value).startswith(f"{field}: ")
    with pytest.raises(DetectorConfigError, match="^max_detections: "):
        PrbConfig(max_detections=0)
    with pytest.raises(TypeError, match="not a backend's config"):
        DetectorConfig()


def test_replace_checks_again_and_can_change_backend():
    prb = PrbConfig(device="cpu", score_threshold=0.2, half=False)
    assert prb.replace(score_threshold=0.3).score_threshold == 0.3
    with pytest.raises(DetectorConfigError, match="^score_threshold: "):
        prb.replace(score_threshold=1.5)
    onnx = prb.replace(backend="onnx", weights="m.onnx")
    assert onnx == OnnxConfig(weights="m.onnx", device="cpu", score_threshold=0.2)
