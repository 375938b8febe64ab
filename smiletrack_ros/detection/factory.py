"""Build the detector a configuration names: one table of backends, imported when built."""
from __future__ import annotations

import importlib

from .base import Detector
from .config import DetectorConfig

# backend -> "module:class" of its detector, constructed with the backend's config (config.CONFIGS
# holds the config classes). Torch and ONNX Runtime load only with the backend that needs them.
DETECTORS = {
    "prb": "smiletrack_ros.detection.prb.detector:PRBDetector",
    "onnx": "smiletrack_ros.detection.onnx_detector:OnnxDetector",
    "openvino": "smiletrack_ros.detection.openvino_detector:OpenVinoDetector",
    "external": "smiletrack_ros.detection.external:ExternalDetector",
}


def build_detector(config: DetectorConfig) -> Detector:
    """The detector of ``config.backend``. Image backends run behind
    :class:`MultiViewDetector` when tiles or flips are configured; ``external`` with
    ``weights`` set to a MOT det file serves that file's boxes."""
    module, name = DETECTORS[config.backend].split(":")
    backend = getattr(importlib.import_module(module), name)
    if config.backend == "external" and config.weights is not None:
        return backend.from_mot_file(config, config.weights)
    detector = backend(config)
    if not config.multi_view:
        return detector
    from .views import MultiViewDetector

    return MultiViewDetector(detector, config)
