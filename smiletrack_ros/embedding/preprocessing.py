"""How a crop becomes network input, for every backend: one description, two appliers.

Crops are cut as float BGR 0..255 at ``height`` x ``width``; then, in this order, the
channels are put in ``channel_order``, multiplied by ``scale`` and normalised per
channel as ``(x - mean) / std`` (mean and std on the scaled values). The torch
backends apply it on the device (``PixelNormalise``), the array runtimes (ONNX
Runtime, OpenVINO) in numpy, on the whole image before the crops are cut (``planes``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .errors import EmbedderConfigError

# Sizes that allocate are bounded before anything is built (a hostile or mistyped card).
MAX_INPUT_SIDE = 1024
MAX_EMBEDDING_DIM = 8192
CHANNEL_ORDERS = ("bgr", "rgb")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def is_count(value: object, limit: int) -> bool:
    """A true int (not a bool) in 1..limit: the check for every size read from a file or setting."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= limit


def three_floats(field: str, values: Any, positive: bool = False) -> tuple[float, float, float]:
    """Three finite numbers (per-channel mean or std) or an error naming ``field``."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != 3:
        raise EmbedderConfigError(field, f"needs 3 numbers, got {values!r}"[:200])
    if any(isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) for v in values):
        raise EmbedderConfigError(field, f"needs 3 numbers, got {values!r}"[:200])
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in out) or (positive and min(out) <= 0):
        raise EmbedderConfigError(field, f"needs 3 finite{' positive' if positive else ''} numbers, got {values!r}")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class Preprocessing:
    height: int = 256
    width: int = 128
    channel_order: str = "rgb"
    scale: float = 1 / 255
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            if not is_count(getattr(self, name), MAX_INPUT_SIDE):
                raise EmbedderConfigError(f"input_{name}", f"must be an int in 1..{MAX_INPUT_SIDE}, "
                                                           f"got {getattr(self, name)!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise EmbedderConfigError("channel_order", f"must be 'bgr' or 'rgb', got {self.channel_order!r}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not (
                math.isfinite(self.scale) and self.scale > 0):
            raise EmbedderConfigError("scale", f"must be a finite positive number, got {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "mean", three_floats("mean", self.mean))
        object.__setattr__(self, "std", three_floats("std", self.std, positive=True))

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def merged(self, **overrides: Any) -> Preprocessing:
        """This one with every override that is not None."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return {"height": self.height, "width": self.width, "channel_order": self.channel_order,
                "scale": self.scale, "mean": list(self.mean), "std": list(self.std)}

    def planes(self, image_bgr: np.ndarray) -> np.ndarray:
        """HxWx3 BGR 0..255 image -> (3, H, W) float32 network-input planes: channels in
        ``channel_order``, scaled, normalised (crops are cut from these: ``crops.crop_inputs``)."""
        order = (2, 1, 0) if self.channel_order == "rgb" else (0, 1, 2)
        out = np.empty((3, *image_bgr.shape[:2]), np.float32)
        for target, channel, mean, std in zip(out, order, self.mean, self.std, strict=True):
            np.multiply(image_bgr[..., channel], np.float32(self.scale / std), out=target)
            target -= np.float32(mean / std)
        return out


# The conventions of the public re-ID models: torchreid / BoxMOT / fast-reid (ImageNet, RGB),
# Intel's Open Model Zoo (raw BGR 0..255).
IMAGENET_REID = Preprocessing()
RAW_BGR_REID = Preprocessing(channel_order="bgr", scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
