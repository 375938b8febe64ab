"""The SLM appearance network (SMILEtrack's Similarity Learning Module).

A backbone maps a 224 x 80 crop to a stride-8 map; ``conv_pred`` squeezes it to
32 channels; the map's four quadrants attend to each other with one shared
linear-attention block; each quadrant's result is max-pooled, the four are
concatenated and a Linear + BatchNorm1d + ReLU gives the 128-d embedding, which
is L2-normalised so that cosine similarity is a dot product in [0, 1].
Module names follow the official checkpoint (``conv_pred``, ``patch_attention``,
``fc``) so that its keys map with a prefix rename only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import BACKBONES, build_backbone
from .errors import EmbedderConfigError
from .preprocessing import MAX_EMBEDDING_DIM, MAX_INPUT_SIDE, is_count, three_floats

HEAD_CHANNELS = 32
HEADS = 4
KEY_DIM = 32
SLICES = 4


@dataclass(frozen=True)
class SlmSpec:
    """What a set of SLM weights expects: backbone, crop size and pixel normalisation.

    Crops reach the network as float 0..255 in BGR order; ``channel_order`` "rgb"
    flips them first, then ``(x - mean) / std`` per channel (in that order). The
    official SLM uses raw BGR (mean 0, std 1).
    """

    backbone: str = "resnet18"
    input_height: int = 224
    input_width: int = 80
    channel_order: str = "bgr"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    embedding_dim: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", three_floats("mean", self.mean))
        object.__setattr__(self, "std", three_floats("std", self.std, positive=True))
        if self.backbone not in BACKBONES:
            raise EmbedderConfigError("backbone", f"unknown {self.backbone!r}; choose one of {sorted(BACKBONES)}")
        for name in ("input_height", "input_width"):
            value = getattr(self, name)
            if not is_count(value, MAX_INPUT_SIDE) or value < 16 or value % 16:
                raise EmbedderConfigError(name, f"must be a multiple of 16 in 16..{MAX_INPUT_SIDE}, got {value!r}")
        if self.channel_order not in ("bgr", "rgb"):
            raise EmbedderConfigError("channel_order", f"must be 'bgr' or 'rgb', got {self.channel_order!r}")
        if not is_count(self.embedding_dim, MAX_EMBEDDING_DIM):
            raise EmbedderConfigError("embedding_dim", f"must be an int in 1..{MAX_EMBEDDING_DIM}, "
                                      f"got {self.embedding_dim!r}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class PatchLinearAttention(nn.Module):
    """Linear ("efficient") attention between the four quadrants of a map.

    The official model calls attention 16 times (each quadrant as query against
    each quadrant as key/value) and sums per query. Everything but the key softmax
    is linear, so this computes the same thing once: 1x1 convs over the whole map,
    one key/value context per quadrant, their sum applied to each query quadrant,
    and the output conv's bias counted once per call (four times).
    """

    def __init__(self, chan: int = HEAD_CHANNELS, heads: int = HEADS, key_dim: int = KEY_DIM) -> None:
        super().__init__()
        self.heads, self.key_dim = heads, key_dim
        self.to_q = nn.Conv2d(chan, key_dim * heads, 1)
        self.to_k = nn.Conv2d(chan, key_dim * heads, 1)
        self.to_v = nn.Conv2d(chan, key_dim * heads, 1)
        self.to_out = nn.Conv2d(key_dim * heads, chan, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 4 * C): each quadrant's attended map, max-pooled."""
        b, _, h, w = x.shape
        if h < 2 or w < 2:
            raise ValueError(f"feature map {h}x{w} is too small to split into quadrants")
        scale = self.key_dim ** -0.25
        q, k, v = self.to_q(x) * scale, self.to_k(x) * scale, self.to_v(x)
        quadrants = [(slice(0, h // 2), slice(0, w // 2)), (slice(0, h // 2), slice(w // 2, w)),
                     (slice(h // 2, h), slice(0, w // 2)), (slice(h // 2, h), slice(w // 2, w))]

        def heads_view(t: torch.Tensor, ys: slice, xs: slice) -> torch.Tensor:
            return t[:, :, ys, xs].reshape(b, self.heads, self.key_dim, -1)

        context = sum(torch.einsum("bhdn,bhen->bhde", heads_view(k, ys, xs).softmax(dim=-1), heads_view(v, ys, xs))
                      for ys, xs in quadrants)
        pooled = []
        for ys, xs in quadrants:
            attended = torch.einsum("bhdn,bhde->bhen", heads_view(q, ys, xs).softmax(dim=-2), context)
            out = F.conv2d(attended.reshape(b, self.heads * self.key_dim, -1, 1), self.to_out.weight)
            pooled.append(out.amax(dim=(2, 3)) + SLICES * self.to_out.bias)
        return torch.cat(pooled, dim=1)


class SLMNet(nn.Module):
    """Crops (B, 3, H, W) float 0..255 BGR -> (B, embedding_dim) unit vectors."""

    def __init__(self, spec: SlmSpec | None = None) -> None:
        super().__init__()
        self.spec = spec or SlmSpec()
        backbone = build_backbone(self.spec.backbone)
        self.backbone = backbone.module
        self.conv_pred = nn.Conv2d(backbone.out_channels, HEAD_CHANNELS, 3, padding=1)
        self.patch_attention = PatchLinearAttention()
        self.fc = nn.Sequential(nn.Linear(SLICES * HEAD_CHANNELS, self.spec.embedding_dim),
                                nn.BatchNorm1d(self.spec.embedding_dim), nn.ReLU(inplace=True))
        self.register_buffer("pixel_mean", torch.tensor(self.spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(self.spec.std).view(1, 3, 1, 1), persistent=False)

    def normalise(self, crops: torch.Tensor) -> torch.Tensor:
        if self.spec.channel_order == "rgb":
            crops = crops.flip(1)
        return (crops - self.pixel_mean) / self.pixel_std

    def head(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Backbone output -> unit embeddings."""
        return F.normalize(self.fc(self.patch_attention(self.conv_pred(feature_map))), dim=1)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.normalise(crops)))
