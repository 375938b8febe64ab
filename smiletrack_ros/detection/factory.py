"""Pick the detector backend named by the configuration."""
from __future__ import annotations

from .base import Detector
from .config import DetectorConfig


def build_detector(config: DetectorConfig) -> Detector:
    """``prb`` (torch PRB-FPN), ``onnx`` (ONNX Runtime), ``openvino`` (OpenVINO IR) or ``external`` (detections fed
    from outside; with ``weights`` set to a MOT det file, read from it). Image backends
    run behind :class:`MultiViewDetector` when tiles or flips are configured."""
    if config.backend in ("prb", "onnx", "openvino"):
        if config.backend == "prb":
            from .prb.detector import PRBDetector as Backend
        elif config.backend == "openvino":
            from .openvino_detector import OpenVinoDetector as Backend
        else:
            from .onnx_detector import OnnxDetector as Backend
        backend = Backend(config)
        if not config.multi_view:
            return backend
        from .views import MultiViewDetector

        return MultiViewDetector(backend, config)
    from .external import ExternalDetector

    if config.weights is not None:
        return ExternalDetector.from_mot_file(config, config.weights)
    return ExternalDetector(config)
