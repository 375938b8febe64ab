"""Anchor-based YOLOv7-style detection heads: 3 anchors per level, decoded to
(B, N, 5 + nc) = centre x, y, w, h in input pixels, objectness, class scores."""
from __future__ import annotations

import torch
from torch import nn

from .modules import ImplicitA, ImplicitM


class Detect(nn.Module):
    """One 1x1 conv per level; the deploy form every training head reduces to."""

    def __init__(self, nc: int, anchors: list[list[float]], ch: list[int]):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        a = torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2)
        self.register_buffer("anchors", a.clone())  # in units of each level's stride once strides are known
        self.register_buffer("anchor_grid", a.clone().view(self.nl, 1, -1, 1, 1, 2))  # pixels
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch[: self.nl])
        self.stride = torch.ones(self.nl)
        self.level_strides = [1.0] * self.nl  # plain floats: decode stays a constant in exported graphs
        self._grids: dict[tuple, torch.Tensor] = {}

    def set_strides(self, strides: torch.Tensor) -> None:
        self.stride = strides.float()
        self.level_strides = [float(s) for s in self.stride]
        self.anchors.copy_(self.anchor_grid.view(self.nl, -1, 2) / self.stride.view(-1, 1, 1))

    def level_logits(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return self.m[i](x)

    def _grid(self, ny: int, nx: int, ref: torch.Tensor) -> torch.Tensor:
        key = (ny, nx, ref.device, ref.dtype)
        if key not in self._grids:
            ys, xs = torch.meshgrid(torch.arange(ny, device=ref.device), torch.arange(nx, device=ref.device),
                                    indexing="ij")
            self._grids[key] = torch.stack((xs, ys), 2).view(1, 1, ny, nx, 2).to(ref.dtype)
        return self._grids[key]

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = []
        for i in range(self.nl):
            logits = self.level_logits(i, xs[i])
            bs, _, ny, nx = logits.shape
            y = logits.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            stride = self.level_strides[i]
            xy = (y[..., 0:2] * 2.0 - 0.5 + self._grid(ny, nx, y)) * stride
            wh = (y[..., 2:4] * 2.0) ** 2 * self.anchor_grid[i].to(y.dtype)
            out.append(torch.cat((xy, wh, y[..., 4:]), -1).view(bs, -1, self.no))
        return torch.cat(out, 1)


class IDetect(Detect):
    """Detect with implicit add (before the conv) and multiply (after) per level."""

    def __init__(self, nc: int, anchors: list[list[float]], ch: list[int]):
        super().__init__(nc, anchors, ch)
        self.ia = nn.ModuleList(ImplicitA(c) for c in ch[: self.nl])
        self.im = nn.ModuleList(ImplicitM(self.no * self.na) for _ in ch[: self.nl])

    def level_logits(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return self.im[i](self.m[i](self.ia[i](x)))


class IAuxDetect(IDetect):
    """Training head with auxiliary branches: holds their weights (``m2``) so training
    checkpoints load strictly, but inference uses the lead branches only."""

    def __init__(self, nc: int, anchors: list[list[float]], ch: list[int]):
        super().__init__(nc, anchors, ch)
        self.m2 = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch[self.nl:])
