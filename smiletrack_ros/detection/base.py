"""The interface every detector backend offers the pipeline."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from smiletrack_ros.detections import Detections


class Detector(Protocol):
    """A detector takes one HxWx3 uint8 BGR image and returns its detections."""

    def __call__(self, image_bgr: np.ndarray) -> Detections: ...
