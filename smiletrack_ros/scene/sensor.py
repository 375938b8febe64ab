"""Camera sensor noise, cheap enough to add to every frame.

A fresh Gaussian draw per 640x480 frame costs more than rendering the people,
so a few noise fields are drawn once and each frame takes a random window of
one of them; saturating uint8 add/subtract then applies it.
"""
from __future__ import annotations

import cv2
import numpy as np

_BANK = 4
_PAD = 64


class SensorNoise:
    def __init__(self, height: int, width: int, std: float, rng: np.random.Generator):
        self.rng = rng
        self.height, self.width = height, width
        noise = np.rint(rng.standard_normal((_BANK, height + _PAD, width + _PAD, 3), dtype=np.float32) * std)
        self.positive = np.clip(noise, 0, 255).astype(np.uint8)
        self.negative = np.clip(-noise, 0, 255).astype(np.uint8)

    def apply(self, image: np.ndarray) -> np.ndarray:
        k = int(self.rng.integers(_BANK))
        dy, dx = (int(v) for v in self.rng.integers(_PAD + 1, size=2))
        window = (k, slice(dy, dy + self.height), slice(dx, dx + self.width))
        return cv2.subtract(cv2.add(image, self.positive[window]), self.negative[window])
