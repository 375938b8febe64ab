"""Building blocks of the PRB-FPN detector.

Attribute names (``conv``, ``bn``, ``cv1``..., ``m``, ``ia``/``im``, ``anchors``,
``anchor_grid``) follow the YOLOv7 family's state-dict layout so converted
official checkpoints load strictly; the code is our own.
"""
from __future__ import annotations

import torch
from torch import nn


def same_padding(k: int) -> int:
    return k // 2


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm -> SiLU."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, same_padding(k) if p is None else p, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ReOrg(nn.Module):
    """Space-to-depth: (B, C, H, W) -> (B, 4C, H/2, W/2), losing no pixel (the bottom-up fusion)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1)


class Concat(nn.Module):
    def __init__(self, dimension: int = 1):
        super().__init__()
        self.d = dimension

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, self.d)


class Shortcut(nn.Module):
    """Residual sum of two routed layers."""

    def __init__(self, dimension: int = 0):
        super().__init__()
        self.d = dimension

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return xs[0] + xs[1]


class MP(nn.Module):
    def __init__(self, k: int = 2):
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class DownC(nn.Module):
    """Stride-k downsampling: half the channels from a strided 3x3 conv, half from max-pooling."""

    def __init__(self, c1: int, c2: int, n: int = 1, k: int = 2):
        super().__init__()
        self.cv1 = Conv(c1, c1, 1, 1)
        self.cv2 = Conv(c1, c2 // 2, 3, k)
        self.cv3 = Conv(c1, c2 // 2, 1, 1)
        self.mp = nn.MaxPool2d(kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.cv2(self.cv1(x)), self.cv3(self.mp(x))), 1)


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class BottleneckCSPB(nn.Module):
    """CSP block whose two paths split after a shared 1x1 conv."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5):
        super().__init__()
        self.cv1 = Conv(c1, c2, 1, 1)
        self.cv2 = Conv(c2, c2, 1, 1)
        self.cv3 = Conv(2 * c2, c2, 1, 1)
        self.m = nn.Sequential(*[Bottleneck(c2, c2, shortcut, g, e=1.0) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv1(x)
        return self.cv3(torch.cat((self.m(x1), self.cv2(x1)), 1))


class SPPCSPC(nn.Module):
    """Spatial pyramid pooling (5, 9, 13) inside a CSP block: the top of each pyramid."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5,
                 k: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        hidden = int(2 * c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(c1, hidden, 1, 1)
        self.cv3 = Conv(hidden, hidden, 3, 1)
        self.cv4 = Conv(hidden, hidden, 1, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k])
        self.cv5 = Conv(4 * hidden, hidden, 1, 1)
        self.cv6 = Conv(hidden, hidden, 3, 1)
        self.cv7 = Conv(2 * hidden, c2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y1 = self.cv6(self.cv5(torch.cat([x1] + [pool(x1) for pool in self.m], 1)))
        return self.cv7(torch.cat((y1, self.cv2(x)), 1))


class RBBlockA(nn.Module):
    """Residual bi-fusion block (top-down): the current level, the finer (shallow) level
    brought down by a strided conv, and the upsampled coarser (deep) level, fused by a 1x1 conv.

    ``current``/``shallow`` are (channels, kernel, stride) of the conv applied to that input.
    """

    def __init__(self, in_cs: list[int], out_c: int, current: tuple[int, int, int], shallow: tuple[int, int, int],
                 sf: int = 2, mode: str = "nearest"):
        super().__init__()
        self.up1 = nn.Upsample(scale_factor=sf, mode=mode)
        self.cv1 = Conv(in_cs[0], *current)
        self.cv2 = Conv(in_cs[1], *shallow)
        self.out_cv = Conv(current[0] + shallow[0] + in_cs[2], out_c, 1, 1)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.out_cv(torch.cat((self.cv1(xs[0]), self.cv2(xs[1]), self.up1(xs[2])), 1))


class BFM(nn.Module):
    """Bottom-up fusion: the finer level through ReOrg (space-to-depth) meets the coarser level."""

    def __init__(self, in_cs: list[int], out_c: int, fe_a: tuple[int, int, int], fe_b: tuple[int, int, int]):
        super().__init__()
        self.reorg = ReOrg()
        self.cv1 = Conv(in_cs[0] * 4, *fe_a)
        self.cv2 = Conv(in_cs[1], *fe_b)
        self.out_cv = Conv(fe_a[0] + fe_b[0], out_c, 1, 1)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.out_cv(torch.cat((self.cv1(self.reorg(xs[0])), self.cv2(xs[1])), 1))


class ImplicitA(nn.Module):
    """Learned additive bias per channel (YOLOR implicit knowledge)."""

    def __init__(self, channel: int):
        super().__init__()
        self.implicit = nn.Parameter(torch.zeros(1, channel, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.implicit + x


class ImplicitM(nn.Module):
    """Learned multiplicative scale per channel."""

    def __init__(self, channel: int):
        super().__init__()
        self.implicit = nn.Parameter(torch.ones(1, channel, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.implicit * x
