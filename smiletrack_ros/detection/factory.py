"""Pick the detector backend named by the configuration."""
from __future__ import annotations

from .base import Detector
from .config import DetectorConfig


def build_detector(config: DetectorConfig) -> Detector:
    """``prb`` (torch PRB-FPN), ``onnx`` (ONNX Runtime) or ``external`` (detections fed
    from outside; with ``weights`` set to a MOT det file, read from it)."""
    if config.backend == "prb":
        from .prb.detector import PRBDetector

        return PRBDetector(config)
    if config.backend == "onnx":
        from .onnx_detector import OnnxDetector

        return OnnxDetector(config)
    from .external import ExternalDetector

    if config.weights is not None:
        return ExternalDetector.from_mot_file(config, config.weights)
    return ExternalDetector(config)
