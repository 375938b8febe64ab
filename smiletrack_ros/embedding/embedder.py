"""One frame + N boxes -> N L2-normalised appearance embeddings, in one batched pass,
for the torch backends (``Embedder``: the SLM; ``OSNetEmbedder`` in osnet.py).

The frame goes to the device once as uint8; every box is clipped, cut and resized
there by one ``roi_align`` call; the network runs in chunks of at most
``max_batch`` images (BatchNorm in eval mode, so results do not depend on how the
boxes are batched); one copy brings the (N, D) result back. On the CPU the network
runs, by default, in ONNX Runtime from an in-memory export of itself (same weights,
``EmbedderConfig.runtime``), or in OpenVINO (for bf16 on CPUs with bf16 units). With
flip averaging each crop and its mirror run in the same chunk and their embeddings are
averaged and renormalised (a mirrored person is the same person, so the average drops
left/right quirks of the network).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..devices import resolve_device
from .card import ModelCard
from .config import DEFAULT, EmbedderConfig
from .crops import checked_pairs, clip_boxes, crop_boxes, image_to_tensor
from .errors import EmbedderConfigError
from .onnx_embedder import TorchNetSession
from .openvino_embedder import TorchNetOpenVino
from .slm import SLMNet, SlmSpec
from .weights import DEFAULT_WEIGHTS, load_weights

log = logging.getLogger(__name__)
__all__ = ["DEFAULT", "Embedder", "EmbedderConfig", "TorchEmbedder", "torch_device"]


def torch_device(config: EmbedderConfig) -> torch.device:
    """The config's device, resolved once; a device that is not here is a config error."""
    try:
        return resolve_device(config.device)
    except (ValueError, RuntimeError) as exc:
        raise EmbedderConfigError("device", str(exc)) from exc


def embedder_runtime(setting: str, device: torch.device, precision: str = "auto") -> str:
    """What runs a torch embedder's network: ``auto`` is ONNX Runtime on the CPU (the SLM at one
    thread: ~1.3-1.8x torch eager's crops/s, bench/bench_embedder.py), OpenVINO for bf16, and
    torch on CUDA (fp16)."""
    if setting == "auto":
        setting = "torch" if device.type != "cpu" else "openvino" if precision == "bf16" else "onnxruntime"
    if setting != "torch" and device.type != "cpu":
        raise EmbedderConfigError("runtime", f"{setting} runs the torch embedders on the CPU only, not on "
                                             f"{device}; use torch (or auto) there")
    if precision == "bf16" and device.type != "cpu":
        raise EmbedderConfigError("precision", f"bf16 runs on the CPU only, not on {device}; use fp16 (or auto)")
    return setting


class TorchEmbedder:
    """A torch network taking (B, 3, H, W) float BGR 0..255 crops to (B, dim) embeddings,
    run with the batched crop path above. ``name`` describes it (logs, reports)."""

    def __init__(self, config: EmbedderConfig, net: nn.Module, input_size: tuple[int, int], dim: int,
                 flip_average: bool, name: str) -> None:
        self.config, self.input_size, self.dim, self.flip_average, self.name = config, input_size, dim, \
            flip_average, name
        self.device = torch_device(config)
        half = config.precision == "fp16" or (config.precision == "auto" and self.device.type == "cuda")
        if half and self.device.type != "cuda":
            raise EmbedderConfigError("precision", "fp16 needs a CUDA device")
        self.dtype = torch.float16 if half else torch.float32
        self.net = net.eval().to(self.device, self.dtype)
        self.channels_last = self.device.type == "cuda"
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.runtime = embedder_runtime(config.runtime, self.device, config.precision)
        self._session = TorchNetSession(self.net, input_size, config.threads) if self.runtime == "onnxruntime" \
            else TorchNetOpenVino(self.net, input_size, config) if self.runtime == "openvino" else None
        if config.warmup:
            self._warm_up()

    def _warm_up(self) -> None:
        height, width = self.input_size
        self(np.zeros((height, width, 3), np.uint8), np.array([[0, 0, width, height]] * 2, np.float32))

    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 BGR image, (N, 4) x1, y1, x2, y2 pixel boxes -> (N, dim) float32
        unit vectors. Boxes are clipped to the image; degenerate or outside boxes get
        a 1-pixel crop at the nearest image position (an embedding, not an error)."""
        return self.embed_many([(image_bgr, boxes)])[0]

    @torch.inference_mode()
    def embed_many(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """(image, boxes) of several images (cameras) -> their embeddings: the crops of all go
        through the network in the same chunks (one batch across cameras), one copy back."""
        kept, counts = checked_pairs(pairs)
        crops = []
        for image_bgr, boxes in kept:
            image = image_to_tensor(image_bgr, self.device, self.dtype)
            rois = clip_boxes(torch.from_numpy(boxes).to(self.device), image_bgr.shape[1], image_bgr.shape[0])
            crops.append(crop_boxes(image, rois, self.input_size, sampling_ratio=self.config.sampling_ratio))
        if not crops:
            return [np.zeros((0, self.dim), np.float32) for _ in pairs]
        chunk = max(1, self.config.max_batch // 2) if self.flip_average else self.config.max_batch
        out = torch.cat([self._embed(part) for part in torch.cat(crops).split(chunk)])
        return np.split(F.normalize(out.float(), dim=1).cpu().numpy(), np.cumsum(counts)[:-1])

    def _embed(self, crops: torch.Tensor) -> torch.Tensor:
        if self.flip_average:
            crops = torch.cat([crops, crops.flip(3)])
        if self.channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        out = F.normalize((self.net(crops) if self._session is None else self._session(crops)).float(), dim=1)
        if not self.flip_average:
            return out
        n = len(out) // 2
        return F.normalize(out[:n] + out[n:], dim=1)


class Embedder(TorchEmbedder):
    """The SLM. ``Embedder()`` loads the shipped default weights on the best device;
    keyword arguments are ``EmbedderConfig`` fields (``Embedder.from_config`` takes one)."""

    def __init__(self, weights: str | Path | None = DEFAULT, device: str = "auto", precision: str = "auto",
                 max_batch: int = 256, warmup: bool = True, **more: object) -> None:
        config = EmbedderConfig(backend="slm", weights=weights, device=device, precision=precision,
                                max_batch=max_batch, warmup=warmup, **more)  # type: ignore[arg-type]
        net, self.card = self._build(config)
        flip = self.card.flip_average if config.flip_average is None else config.flip_average
        name = f"slm:{'untrained' if config.weights is None else Path(str(config.weights)).name}"
        super().__init__(config, net, (net.spec.input_height, net.spec.input_width), net.spec.embedding_dim,
                         flip, name)

    @classmethod
    def from_config(cls, config: EmbedderConfig) -> Embedder:
        if config.backend != "slm":
            raise EmbedderConfigError("backend", f"Embedder is the slm backend, not {config.backend!r}")
        return cls(**{k: v for k, v in vars(config).items() if k != "backend"})

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
