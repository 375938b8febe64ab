"""Build a PRB-FPN network from a YOLO-style layer-list spec.

A spec is a mapping with ``nc``, ``depth_multiple``, ``width_multiple``, ``anchors``
(per level: w, h pairs in pixels) and ``backbone`` + ``head`` lists of
``[from, number, module, args]`` rows, the format official PRBNet checkpoints carry
in their ``yaml`` attribute, so a converted checkpoint rebuilds from its own spec.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .heads import Detect, IAuxDetect, IDetect
from .modules import BFM, MP, SPPCSPC, Bottleneck, BottleneckCSPB, Concat, Conv, DownC, RBBlockA, ReOrg, Shortcut


class SpecError(ValueError):
    """The architecture spec cannot be built; the message names the layer."""


CHANNEL_MODULES = {"Conv": Conv, "DownC": DownC, "SPPCSPC": SPPCSPC, "Bottleneck": Bottleneck,
                   "BottleneckCSPB": BottleneckCSPB}
REPEATED_MODULES = {"SPPCSPC", "BottleneckCSPB"}  # take ``number`` as their inner repeat count
HEADS = {"Detect": Detect, "IDetect": IDetect, "IAuxDetect": IAuxDetect}
PASS_THROUGH = {"MP": MP, "nn.Upsample": nn.Upsample}
STRIDE_PROBE = 128  # divisible by every stride up to 64 with a 2x2 coarsest map


def make_divisible(x: float, divisor: int = 8) -> int:
    return int(math.ceil(x / divisor) * divisor)


def _conv_triplet(text: str, gw: float) -> tuple[int, int, int]:
    c, k, s = (int(v) for v in str(text).split(","))
    return make_divisible(c * gw), k, s


def _build_layer(i: int, row: list, ch: list[int], spec: Mapping[str, Any]) -> tuple[nn.Module, int]:
    if not (isinstance(row, (list, tuple)) and len(row) == 4):
        raise SpecError(f"layer {i}: expected [from, number, module, args], got {row!r}")
    f, n, name, args = row
    gd, gw, nc = float(spec.get("depth_multiple", 1.0)), float(spec.get("width_multiple", 1.0)), int(spec["nc"])
    sources = f if isinstance(f, (list, tuple)) else [f]
    try:
        in_ch = [ch[s] if s < 0 else ch[s + 1] for s in sources]
    except IndexError:
        raise SpecError(f"layer {i} ({name}): source {f} does not exist yet") from None
    n = max(round(n * gd), 1) if n > 1 else n
    args = list(args)
    if name in CHANNEL_MODULES:
        c2 = make_divisible(args[0] * gw)
        args = [in_ch[0], c2, *args[1:]]
        if name in REPEATED_MODULES:
            args.insert(2, n)
            n = 1
        module: nn.Module = CHANNEL_MODULES[name](*args)
    elif name == "ReOrg":
        module, c2 = ReOrg(), 4 * in_ch[0]
    elif name == "Concat":
        module, c2 = Concat(*args), sum(in_ch)
    elif name == "Shortcut":
        module, c2 = Shortcut(*args), in_ch[0]
    elif name in PASS_THROUGH:
        module, c2 = PASS_THROUGH[name](*args), in_ch[0]
    elif name == "RBBlockA":
        out_c = make_divisible(args[0] * gw)
        current, shallow = (_conv_triplet(t, gw) for t in str(args[1]).split(";"))
        module, c2 = RBBlockA(in_ch, out_c, current, shallow, *args[2:]), out_c
    elif name == "BFM":
        out_c = make_divisible(args[0] * gw)
        fe_a, fe_b = (_conv_triplet(t, gw) for t in str(args[1]).split(";"))
        module, c2 = BFM(in_ch, out_c, fe_a, fe_b), out_c
    elif name in HEADS:
        anchors = spec["anchors"] if args[1] == "anchors" else args[1]
        module, c2 = HEADS[name](nc, anchors, in_ch), 0
    else:
        raise SpecError(f"layer {i}: unsupported module {name!r}")
    if n > 1:
        module = nn.Sequential(*[_build_layer(i, [f, 1, name, row[3]], ch, spec)[0] for _ in range(n)])
    module.f, module.i, module.type = f, i, name
    return module, c2


def _resolve_spec(spec: Mapping[str, Any]) -> dict:
    missing = [k for k in ("nc", "anchors", "backbone", "head") if k not in spec]
    if missing:
        raise SpecError(f"architecture spec lacks {missing}")
    resolved = dict(spec)
    resolved["backbone"] = [list(r) for r in spec["backbone"]]
    # YOLO yaml rows write the head's args as [nc, anchors]: resolve the names.
    resolved["head"] = [[r[0], r[1], r[2], [spec["nc"] if a == "nc" else a for a in r[3]]] for r in spec["head"]]
    return resolved


class PRBNet(nn.Module):
    """The network: ``forward(images (B, 3, S, S) RGB in [0, 1])`` -> (B, N, 5 + nc)."""

    def __init__(self, spec: Mapping[str, Any], channels: int = 3):
        super().__init__()
        self.yaml = _resolve_spec(spec)
        ch = [channels]
        layers = []
        for i, row in enumerate(self.yaml["backbone"] + self.yaml["head"]):
            try:
                module, c2 = _build_layer(i, row, ch, self.yaml)
            except SpecError:
                raise
            except (TypeError, ValueError, IndexError, KeyError) as err:
                raise SpecError(f"layer {i} {row!r}: {type(err).__name__}: {err}") from err
            layers.append(module)
            ch.append(c2)
        self.model = nn.Sequential(*layers)
        head = layers[-1]
        if not isinstance(head, Detect):
            raise SpecError(f"the last layer must be a detection head, got {type(head).__name__}")
        self.save = sorted({s + m.i if s < 0 else s for m in layers
                            for s in (m.f if isinstance(m.f, (list, tuple)) else [m.f]) if s != -1})
        self._set_strides(channels)

    @property
    def head(self) -> Detect:
        return self.model[-1]

    @property
    def nc(self) -> int:
        return self.head.nc

    @property
    def max_stride(self) -> int:
        return int(self.head.stride.max())

    def _set_strides(self, channels: int) -> None:
        """Each level's stride = probe size / its feature-map height, measured once."""
        heights: list[int] = []
        hook = self.head.register_forward_pre_hook(lambda _m, args: heights.extend(x.shape[-2] for x in args[0]))
        was_training = self.training
        self.eval()  # keep BatchNorm statistics untouched by the probe
        try:
            with torch.no_grad():
                self.forward(torch.zeros(1, channels, STRIDE_PROBE, STRIDE_PROBE))
        finally:
            hook.remove()
            self.train(was_training)
        self.head.set_strides(torch.tensor([STRIDE_PROBE / h for h in heights[: self.head.nl]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor | None] = []
        for m in self.model:
            if m.f != -1:
                x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
            x = m(x)
            outputs.append(x if m.i in self.save else None)
        return x
