"""Detectors: image (HxWx3 uint8 BGR) -> :class:`Detections` in source pixels.

Backends: ``prb`` (PRB-FPN in torch), ``onnx`` (YOLO-family exports on ONNX
Runtime), ``external`` (detections supplied from outside). Torch and ONNX Runtime
are imported only by the backend that needs them.
"""
from .base import Detector
from .config import (
    DetectorConfig,
    DetectorConfigError,
    ExternalConfig,
    ImageDetectorConfig,
    OnnxConfig,
    OpenVinoConfig,
    PrbConfig,
)
from .factory import build_detector

__all__ = ["Detector", "DetectorConfig", "DetectorConfigError", "ExternalConfig", "ImageDetectorConfig", "OnnxConfig",
           "OpenVinoConfig", "PrbConfig", "build_detector"]
