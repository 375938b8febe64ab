"""Building blocks of the PRB-FPN detector (and the YOLOv7 family it is built on).

Attribute names (``conv``, ``bn``, ``cv1``..., ``m``, ``ia``/``im``, ``anchors``,
``anchor_grid``, ``rbr_dense``...) follow the official state-dict layout so converted
official checkpoints load strictly; the code is our own. Every BatchNorm uses the
official network's ``eps = 1e-3`` (set there by its weight initialisation, not stored
in checkpoints): with the small running variances of trained weights, PyTorch's
default 1e-5 gives visibly different detections.
"""
from __future__ import annotations

import torch
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def batch_norm(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def same_padding(k: int, p: int | None = None) -> int:
    return k // 2 if p is None else p


def activation(act: bool | nn.Module | None) -> nn.Module:
    """``True``: SiLU (the family's default); a module (e.g. LeakyReLU(0.1) from the spec): itself; else none."""
    if act is True:
        return nn.SiLU()
    if isinstance(act, nn.Module):
        return act
    if act is False or act is None:
        return nn.Identity()
    raise TypeError(f"act must be a bool or an activation module, got {act!r}")


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm -> activation (SiLU unless the spec names another)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1,
                 act: bool | nn.Module | None = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, same_padding(k, p), groups=g, bias=False)
        self.bn = batch_norm(c2)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class RepConv(nn.Module):
    """RepVGG block: 3x3 conv+BN, 1x1 conv+BN and (same shape only) a bare BN summed, then
    the activation. :func:`reparam.fuse_repconv` folds the three into one 3x3 conv."""

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, p: int | None = None, g: int = 1,
                 act: bool | nn.Module | None = True):
        super().__init__()
        if k != 3 or same_padding(k, p) != 1:
            raise ValueError(f"RepConv needs a 3x3 kernel with padding 1, got k={k}, p={p}")
        self.act = activation(act)
        self.rbr_identity = batch_norm(c1) if c1 == c2 and s == 1 else None
        self.rbr_dense = nn.Sequential(nn.Conv2d(c1, c2, 3, s, 1, groups=g, bias=False), batch_norm(c2))
        self.rbr_1x1 = nn.Sequential(nn.Conv2d(c1, c2, 1, s, 0, groups=g, bias=False), batch_norm(c2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            y = y + self.rbr_identity(x)
        return self.act(y)


class FusedConv(nn.Module):
    """The deploy form of Conv and RepConv: one biased conv, then the activation."""

    def __init__(self, conv: nn.Conv2d, act: nn.Module):
        super().__init__()
        self.conv = conv
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


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
    """Max-pool that halves (``k``) the resolution."""

    def __init__(self, k: int = 2):
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class SP(nn.Module):
    """Max-pool keeping the resolution (stride 1, 'same' padding): yolov7-tiny's SPP."""

    def __init__(self, k: int = 3, s: int = 1):
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=k, stride=s, padding=k // 2)

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


class BottleneckCSPC(nn.Module):
    """CSP block (the CSP-Darknet backbone stage): residual bottlenecks on half the channels
    closed by a 1x1 conv, concatenated with a 1x1 shortcut path."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(c1, hidden, 1, 1)
        self.cv3 = Conv(hidden, hidden, 1, 1)
        self.cv4 = Conv(2 * hidden, c2, 1, 1)
        self.m = nn.Sequential(*[Bottleneck(hidden, hidden, shortcut, g, e=1.0) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv4(torch.cat((self.cv3(self.m(self.cv1(x))), self.cv2(x)), 1))


class BottleneckMSPA(nn.Module):
    """Multi-scale partial block (PRB-FPN-MSP backbone): three partial paths of c/2, c/4 and
    c/2 channels (two with a 3x3 conv), concatenated back to c and refined by a residual
    bottleneck."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cb1 = nn.Sequential(Conv(hidden, hidden, 3, 1, g=g))
        self.cv2 = Conv(c1, hidden // 2, 1, 1)
        self.cb2 = nn.Sequential(Conv(hidden // 2, hidden // 2, 3, 1, g=g))
        self.cv3 = Conv(c1, hidden, 1, 1)
        self.m1 = nn.Sequential(*[Bottleneck(c2, c2, shortcut, g, e=1.0) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.cv2(x)
        return self.m1(torch.cat((self.cb1(self.cv1(x)), self.cb2(b), b), 1))


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


class BFMBlockB(nn.Module):
    """Bottom-up fusion with a strided conv (instead of ReOrg) bringing the finer level down."""

    def __init__(self, in_cs: list[int], out_c: int, fe_a: tuple[int, int, int], fe_b: tuple[int, int, int]):
        super().__init__()
        self.cv1 = Conv(in_cs[0], *fe_a)
        self.cv2 = Conv(in_cs[1], *fe_b)
        self.out_cv = Conv(fe_a[0] + fe_b[0], out_c, 1, 1)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.out_cv(torch.cat((self.cv1(xs[0]), self.cv2(xs[1])), 1))


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
