"""OSNet (Zhou et al., "Omni-Scale Feature Learning for Person Re-Identification", ICCV
2019) in torch, with the module layout of torchreid's ``osnet_x*`` so that its state
dicts (e.g. the model-zoo MSMT17 / Market-1501 weights) load strictly, by name.

Each omni-scale residual block squeezes to ``out/4`` channels, runs four streams of
1..4 stacked lightweight 3x3 convolutions (1x1 + depthwise 3x3: receptive fields
3, 5, 7, 9), weighs every stream's channels with one shared aggregation gate (global
pool, bottleneck MLP, sigmoid) and sums them, expands back and adds the (projected)
input. At inference the 512-d ``fc`` output is the embedding (L2-normalised here).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .config import EmbedderConfig
from .embedder import TorchEmbedder
from .errors import EmbedderConfigError, WeightsError
from .preprocessing import IMAGENET_REID, MAX_EMBEDDING_DIM, Preprocessing, is_count
from .weights import load_state_strict

# Stem and stage widths per variant (the paper's width multipliers of x1.0: 64, 256, 384, 512).
OSNET_CHANNELS = {"x1_0": (64, 256, 384, 512), "x0_75": (48, 192, 288, 384),
                  "x0_5": (32, 128, 192, 256), "x0_25": (16, 64, 96, 128)}
GATE_REDUCTION = 16
MAX_CLASSES = 1 << 20


class ConvBnRelu(nn.Module):
    """conv (no bias) + BatchNorm (+ ReLU unless ``linear``); torchreid's ConvLayer,
    Conv1x1 and Conv1x1Linear (the attribute names its keys use)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, linear: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.Identity() if linear else nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class LightConv3x3(nn.Module):
    """1x1 pointwise then 3x3 depthwise convolution, BatchNorm, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False, groups=cout)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class AggregationGate(nn.Module):
    """The unified aggregation gate: channel weights in (0, 1) from the stream's own
    globally pooled features, through a bottleneck shared by all four streams."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, max(1, channels // GATE_REDUCTION), 1)
        self.fc2 = nn.Conv2d(max(1, channels // GATE_REDUCTION), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(w)


class OmniScaleBlock(nn.Module):
    """torchreid's OSBlock: conv1 squeeze, streams conv2a..conv2d (1..4 LightConv3x3),
    gate, conv3 expand (linear), residual with a linear 1x1 ``downsample`` where widths differ."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 4
        self.conv1 = ConvBnRelu(cin, mid)
        self.conv2a = LightConv3x3(mid, mid)
        self.conv2b = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(2)))
        self.conv2c = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(3)))
        self.conv2d = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(4)))
        self.gate = AggregationGate(mid)
        self.conv3 = ConvBnRelu(mid, cout, linear=True)
        self.downsample = ConvBnRelu(cin, cout, linear=True) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = self.conv1(x)
        streams = sum(self.gate(stream(squeezed)) for stream in (self.conv2a, self.conv2b, self.conv2c, self.conv2d))
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.conv3(streams) + identity)


def _stage(cin: int, cout: int, reduce: bool) -> nn.Sequential:
    layers: list[nn.Module] = [OmniScaleBlock(cin, cout), OmniScaleBlock(cout, cout)]
    if reduce:  # transition: 1x1 conv + 2x2 average pooling
        layers.append(nn.Sequential(ConvBnRelu(cout, cout), nn.AvgPool2d(2, stride=2)))
    return nn.Sequential(*layers)


class OSNet(nn.Module):
    """(B, 3, H, W) normalised RGB -> (B, feature_dim) (not normalised). ``num_classes`` > 0
    keeps torchreid's training classifier so that its state dicts load strictly; it is
    never run."""

    def __init__(self, variant: str = "x0_25", feature_dim: int = 512, num_classes: int = 0) -> None:
        super().__init__()
        if variant not in OSNET_CHANNELS:
            raise EmbedderConfigError("variant", f"OSNet variant must be one of {sorted(OSNET_CHANNELS)}, "
                                                 f"got {variant!r}")
        if not is_count(feature_dim, MAX_EMBEDDING_DIM):
            raise EmbedderConfigError("embedding_dim", f"must be an int in 1..{MAX_EMBEDDING_DIM}, got {feature_dim!r}")
        c0, c1, c2, c3 = OSNET_CHANNELS[variant]
        self.variant, self.feature_dim = variant, feature_dim
        self.conv1 = ConvBnRelu(3, c0, kernel=7, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = _stage(c0, c1, reduce=True)
        self.conv3 = _stage(c1, c2, reduce=True)
        self.conv4 = _stage(c2, c3, reduce=False)
        self.conv5 = ConvBnRelu(c3, c3)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(c3, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(feature_dim, num_classes) if num_classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5(self.conv4(self.conv3(self.conv2(self.maxpool(self.conv1(x))))))
        return self.fc(self.global_avgpool(x).flatten(1))


class PixelNormalise(nn.Module):
    """Float BGR 0..255 crops -> the network's input, on the device (see ``Preprocessing``)."""

    def __init__(self, pre: Preprocessing) -> None:
        super().__init__()
        self.rgb = pre.channel_order == "rgb"
        self.register_buffer("offset", torch.tensor(pre.mean).view(1, 3, 1, 1) / pre.scale, persistent=False)
        self.register_buffer("gain", pre.scale / torch.tensor(pre.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.flip(1) if self.rgb else x) - self.offset) * self.gain


def _variant_of(state: dict[str, torch.Tensor], source: str) -> str:
    stem = state.get("conv1.conv.weight")
    by_width = {channels[0]: name for name, channels in OSNET_CHANNELS.items()}
    if not isinstance(stem, torch.Tensor) or stem.ndim != 4 or int(stem.shape[0]) not in by_width:
        raise WeightsError(f"{source}: not an OSNet state dict (conv1.conv.weight missing or of an unknown width)")
    return by_width[int(stem.shape[0])]


def _size_of(state: dict[str, torch.Tensor], key: str, dim: int, limit: int, source: str) -> int:
    value = state.get(key)
    if value is None:
        return 0
    if not isinstance(value, torch.Tensor) or value.ndim < dim + 1 or not is_count(int(value.shape[dim]), limit):
        raise WeightsError(f"{source}: {key} has an implausible shape {getattr(value, 'shape', None)}")
    return int(value.shape[dim])


def load_osnet(path: str | Path, variant: str | None = None) -> OSNet:
    """A torchreid-layout OSNet state dict (bare, or under ``state_dict`` with optional
    ``module.`` prefixes), read with ``torch.load(weights_only=True)`` (tensors only,
    nothing executed) and loaded strictly: every mismatching key is named."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - refused (hostile) and corrupt files alike
        raise WeightsError(f"{path}: refused or unreadable torch state dict ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    found = _variant_of(state, str(path))
    if variant is not None and variant != found:
        raise WeightsError(f"{path}: holds OSNet {found}, not the configured variant {variant}")
    net = OSNet(found, feature_dim=_size_of(state, "fc.0.weight", 0, MAX_EMBEDDING_DIM, str(path)) or 512,
                num_classes=_size_of(state, "classifier.weight", 0, MAX_CLASSES, str(path)))
    load_state_strict(net, state, str(path), model=f"OSNet {found}")
    return net


class OSNetEmbedder(TorchEmbedder):
    """The ``osnet`` backend: preprocessing as torchreid trains it (RGB, ImageNet
    mean/std, 256 x 128) unless overridden."""

    def __init__(self, config: EmbedderConfig) -> None:
        if config.backend != "osnet":
            raise EmbedderConfigError("backend", f"OSNetEmbedder is the osnet backend, not {config.backend!r}")
        if config.weights is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                net = OSNet(config.variant or "x0_25")
            name = f"osnet_{net.variant}:untrained"
        else:
            net = load_osnet(config.weights, config.variant)
            name = f"osnet_{net.variant}:{Path(config.weights).name}"
        self.preprocessing = config.preprocessing(IMAGENET_REID)
        super().__init__(config, nn.Sequential(PixelNormalise(self.preprocessing), net), self.preprocessing.size,
                         net.feature_dim, bool(config.flip_average), name)
        self.osnet = net
