"""One frame + N boxes -> N L2-normalised appearance embeddings, in one batched pass.

The frame goes to the device once as uint8; every box is clipped, cut and resized
there by one ``roi_align`` call; the network runs in chunks of at most
``max_batch`` images (BatchNorm in eval mode, so results do not depend on how the
boxes are batched); one copy brings the (N, 128) result back. With flip averaging
each crop and its mirror run in the same chunk and their embeddings are averaged
and renormalised (a mirrored person is the same person, so the average drops
left/right quirks of the network).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import DEVICE_SYNTAX, is_device_setting, resolve_device
from .card import ModelCard
from .crops import check_image_and_boxes, clip_boxes, crop_boxes, image_to_tensor
from .errors import EmbedderConfigError
from .slm import SLMNet, SlmSpec
from .weights import DEFAULT_WEIGHTS, load_weights

log = logging.getLogger(__name__)
DEFAULT = "default"


@dataclass(frozen=True)
class EmbedderConfig:
    """``weights``: "default" (the weights shipped in the package), a path to our
    ``.safetensors`` (+ ``.json`` card) or an official SMILEtrack checkpoint, or None
    for an untrained, seeded network of ``backbone`` (tests, benchmarks: its
    embeddings carry no learned identity information).
    ``precision``: "auto" = fp16 on CUDA, fp32 on CPU; "fp16" needs CUDA.
    ``flip_average``: None = as the weights' model card says; True/False overrides it
    (twice the network work when on).
    """

    weights: str | Path | None = DEFAULT
    device: str = "auto"
    precision: str = "auto"
    max_batch: int = 256
    warmup: bool = True
    sampling_ratio: int = 1
    backbone: str = "resnet18"
    seed: int = 0
    flip_average: bool | None = None

    def __post_init__(self) -> None:
        if not is_device_setting(self.device):
            raise EmbedderConfigError(f"device: expected {DEVICE_SYNTAX}, got {self.device!r}")
        if self.precision not in ("auto", "fp32", "fp16"):
            raise EmbedderConfigError(f"precision: expected 'auto', 'fp32' or 'fp16', got {self.precision!r}")
        if not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise EmbedderConfigError(f"max_batch: must be a positive int, got {self.max_batch!r}")
        if not isinstance(self.sampling_ratio, int) or self.sampling_ratio < 1:
            raise EmbedderConfigError(f"sampling_ratio: must be a positive int, got {self.sampling_ratio!r}")
        if self.flip_average is not None and not isinstance(self.flip_average, bool):
            raise EmbedderConfigError(f"flip_average: expected None, True or False, got {self.flip_average!r}")


class Embedder:
    """``Embedder()`` loads the shipped default weights on the best device."""

    def __init__(self, weights: str | Path | None = DEFAULT, device: str = "auto", precision: str = "auto",
                 max_batch: int = 256, warmup: bool = True, **more: object) -> None:
        self.config = EmbedderConfig(weights=weights, device=device, precision=precision, max_batch=max_batch,
                                     warmup=warmup, **more)
        cfg = self.config
        self.device = resolve_device(cfg.device, EmbedderConfigError)
        half = cfg.precision == "fp16" or (cfg.precision == "auto" and self.device.type == "cuda")
        if half and self.device.type != "cuda":
            raise EmbedderConfigError("precision: fp16 needs a CUDA device")
        self.dtype = torch.float16 if half else torch.float32
        self.net, self.card = self._build(cfg)
        self.flip_average = self.card.flip_average if cfg.flip_average is None else cfg.flip_average
        self.net.eval().to(self.device, self.dtype)
        self.channels_last = self.device.type == "cuda"
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if cfg.warmup:
            self._warm_up()

    @staticmethod
    def _build(cfg: EmbedderConfig) -> tuple[SLMNet, ModelCard]:
        if cfg.weights is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                net = SLMNet(SlmSpec(backbone=cfg.backbone))
            log.warning("Embedder(weights=None): untrained %s SLM, embeddings carry no identity", cfg.backbone)
            return net, ModelCard(spec=net.spec, name="untrained", description="randomly initialised (seeded)")
        path = DEFAULT_WEIGHTS if cfg.weights == DEFAULT else Path(cfg.weights)
        return load_weights(path)

    @property
    def spec(self) -> SlmSpec:
        return self.net.spec

    @property
    def dim(self) -> int:
        return self.spec.embedding_dim

    def _warm_up(self) -> None:
        image = np.zeros((self.spec.input_height, self.spec.input_width, 3), np.uint8)
        self(image, np.array([[0, 0, self.spec.input_width, self.spec.input_height]] * 2, np.float32))

    @torch.inference_mode()
    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 BGR image, (N, 4) x1, y1, x2, y2 pixel boxes -> (N, dim) float32
        unit vectors. Boxes are clipped to the image; degenerate or outside boxes get
        a 1-pixel crop at the nearest image position (an embedding, not an error)."""
        boxes = check_image_and_boxes(image_bgr, boxes)
        if len(boxes) == 0:
            return np.zeros((0, self.dim), np.float32)
        height, width = image_bgr.shape[:2]
        image = image_to_tensor(image_bgr, self.device, self.dtype)
        rois = clip_boxes(torch.from_numpy(boxes).to(self.device), width, height)
        crops = crop_boxes(image, rois, (self.spec.input_height, self.spec.input_width),
                           sampling_ratio=self.config.sampling_ratio)
        chunk = max(1, self.config.max_batch // 2) if self.flip_average else self.config.max_batch
        out = torch.cat([self._embed(part) for part in crops.split(chunk)])
        return out.float().cpu().numpy()

    def _embed(self, crops: torch.Tensor) -> torch.Tensor:
        if self.flip_average:
            crops = torch.cat([crops, crops.flip(3)])
        if self.channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        out = self.net(crops)
        if not self.flip_average:
            return out
        n = len(out) // 2
        return F.normalize(out[:n].float() + out[n:].float(), dim=1)
