"""Letterbox in, scale back out: the one place where image and box geometry change.

The same :class:`Letterbox` serves numpy images (ONNX Runtime backends, OpenCV
resize on the host) and torch tensors (torch backends, resized on the device),
so both backends map boxes back to source pixels identically.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """Resize a ``src_h`` x ``src_w`` image into a ``size`` x ``size`` canvas keeping
    its aspect ratio; ``center`` pads both sides (YOLOv5/v7, PRB), ``corner`` pads
    right and bottom only (YOLOX); ``stretch`` fills the square, aspect ratio lost
    (NanoDet's plain resize)."""

    src_h: int
    src_w: int
    size: int
    pad_mode: str = "center"

    def __post_init__(self) -> None:
        if self.src_h <= 0 or self.src_w <= 0:
            raise ValueError(f"letterbox source must be non-empty, got {self.src_h}x{self.src_w}")
        if self.pad_mode not in ("center", "corner", "stretch"):
            raise ValueError(f"pad_mode must be 'center', 'corner' or 'stretch', got {self.pad_mode!r}")

    @property
    def scale(self) -> float:
        return min(self.size / self.src_h, self.size / self.src_w)

    @property
    def resized_hw(self) -> tuple[int, int]:
        if self.pad_mode == "stretch":
            return self.size, self.size
        return (max(1, min(self.size, round(self.src_h * self.scale))),
                max(1, min(self.size, round(self.src_w * self.scale))))

    @property
    def offset(self) -> tuple[int, int]:
        """(left, top) padding in canvas pixels."""
        if self.pad_mode in ("corner", "stretch"):
            return 0, 0
        h, w = self.resized_hw
        return (self.size - w) // 2, (self.size - h) // 2

    def _factors(self) -> tuple[float, float, int, int]:
        h, w = self.resized_hw
        left, top = self.offset
        return w / self.src_w, h / self.src_h, left, top

    def apply(self, image):
        """numpy HxWx3 -> numpy SxSx3 (same dtype, OpenCV); torch CxHxW -> torch CxSxS
        (float, bilinear, on the tensor's device). Padding is ``PAD_VALUE``."""
        h, w = self.resized_hw
        left, top = self.offset
        right, bottom = self.size - w - left, self.size - h - top
        if isinstance(image, np.ndarray):
            import cv2

            if image.shape[:2] != (self.src_h, self.src_w):
                raise ValueError(f"letterbox built for {self.src_h}x{self.src_w}, got image {image.shape[:2]}")
            resized = image if (h, w) == image.shape[:2] else cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            return cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                      value=(PAD_VALUE,) * image.shape[2])
        import torch.nn.functional as F

        if tuple(image.shape[-2:]) != (self.src_h, self.src_w):
            raise ValueError(f"letterbox built for {self.src_h}x{self.src_w}, got tensor {tuple(image.shape)}")
        x = image.float()
        if (h, w) != (self.src_h, self.src_w):
            x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        return F.pad(x, (left, right, top, bottom), value=float(PAD_VALUE))

    def boxes_to_source(self, boxes):
        """Canvas x1,y1,x2,y2 -> source pixels, clipped to the image (numpy or torch)."""
        fx, fy, left, top = self._factors()
        out = boxes * 1.0
        out[..., 0::2] = ((boxes[..., 0::2] - left) / fx).clip(0, self.src_w)
        out[..., 1::2] = ((boxes[..., 1::2] - top) / fy).clip(0, self.src_h)
        return out

    def boxes_to_canvas(self, boxes):
        """Source x1,y1,x2,y2 -> canvas pixels (the inverse of :meth:`boxes_to_source`)."""
        fx, fy, left, top = self._factors()
        out = boxes * 1.0
        out[..., 0::2] = boxes[..., 0::2] * fx + left
        out[..., 1::2] = boxes[..., 1::2] * fy + top
        return out
