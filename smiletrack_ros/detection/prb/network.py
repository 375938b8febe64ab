"""Build a PRB-FPN network from a YOLO-style layer-list spec.

A spec is a mapping with ``nc``, ``depth_multiple``, ``width_multiple``, ``anchors``
(per level: w, h pairs in pixels) and ``backbone`` + ``head`` lists of
``[from, number, module, args]`` rows, the format official PRBNet checkpoints carry
in their ``yaml`` attribute, so a converted checkpoint rebuilds from its own spec.
"""
from __future__ import annotations

import ast
import contextlib
import math
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .heads import Detect, IAuxDetect, IDetect
from .modules import (
    BFM,
    MP,
    SP,
    SPPCSPC,
    BFMBlockB,
    Bottleneck,
    BottleneckCSPB,
    BottleneckCSPC,
    BottleneckMSPA,
    Concat,
    Conv,
    DownC,
    RBBlockA,
    ReOrg,
    RepConv,
    Shortcut,
)


class SpecError(ValueError):
    """The architecture spec cannot be built; the message names the layer."""


CHANNEL_MODULES = {"Conv": Conv, "RepConv": RepConv, "DownC": DownC, "SPPCSPC": SPPCSPC, "Bottleneck": Bottleneck,
                   "BottleneckCSPB": BottleneckCSPB, "BottleneckCSPC": BottleneckCSPC,
                   "BottleneckMSPA": BottleneckMSPA}
REPEATED_MODULES = {"DownC", "SPPCSPC", "BottleneckCSPB", "BottleneckCSPC"}  # ``number`` is their inner repeat count
FUSION_MODULES = {"RBBlockA": RBBlockA, "BFM": BFM, "BFMBlockB": BFMBlockB}
HEADS = {"Detect": Detect, "IDetect": IDetect, "IAuxDetect": IAuxDetect}
PASS_THROUGH = {"MP": MP, "SP": SP, "nn.Upsample": nn.Upsample}
ACTIVATIONS = {"nn.LeakyReLU": nn.LeakyReLU, "nn.SiLU": nn.SiLU, "nn.ReLU": nn.ReLU, "nn.Identity": nn.Identity,
               "nn.Hardswish": nn.Hardswish, "nn.Sigmoid": nn.Sigmoid}
_CALL = re.compile(r"^\s*(nn\.[A-Za-z]+)\((.*)\)\s*$")
STRIDE_PROBE = 128  # divisible by every stride up to 64 with a 2x2 coarsest map
MAX_LAYERS = 2000  # the largest official spec has 200-odd rows
MAX_REPEAT = 64  # ``number`` after depth_multiple; official specs use at most 8
MAX_CHANNELS = 1 << 14  # per layer after width_multiple; official specs use at most 2560
MAX_PARAMETERS = 2_000_000_000  # official specs have at most 228 M


class Activation:
    """An activation named by the spec (``'nn.LeakyReLU(0.1)'``): a fresh module per layer."""

    def __init__(self, text: str, factory: type[nn.Module], args: tuple):
        self.text, self.factory, self.args = text, factory, args

    def build(self) -> nn.Module:
        return self.factory(*self.args)

    def __repr__(self) -> str:
        return self.text


def parse_arg(value: Any) -> Any:
    """Read one yaml argument as the official parser's ``eval`` would, without eval: Python
    literals (``'None'``, ``'(5, 9, 13)'``) and whitelisted activations (``'nn.LeakyReLU(0.1)'``);
    every other string (``'nearest'``, ``'256,1,1;128,1,2'``) stays a string."""
    if not isinstance(value, str):
        return value
    call = _CALL.match(value)
    if call and call.group(1) in ACTIVATIONS:
        try:
            args = ast.literal_eval(f"({call.group(2)},)") if call.group(2).strip() else ()
        except (ValueError, SyntaxError):
            raise SpecError(f"activation {value!r}: arguments must be literals") from None
        if not all(isinstance(a, (int, float, bool)) for a in args):
            raise SpecError(f"activation {value!r}: arguments must be numbers")
        return Activation(value, ACTIVATIONS[call.group(1)], args)
    if len(value) > 200:
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value


def _instantiate(args: list) -> list:
    return [a.build() if isinstance(a, Activation) else a for a in args]


def make_divisible(x: float, divisor: int = 8) -> int:
    return int(math.ceil(x / divisor) * divisor)


def _conv_triplet(text: str, gw: float) -> tuple[int, int, int]:
    c, k, s = (int(v) for v in str(text).split(","))
    return make_divisible(c * gw), k, s


def _channels(value: Any, gw: float, i: int) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool)) or value < 1:
        raise SpecError(f"layer {i}: channel count must be a positive int, got {value!r}")
    c = make_divisible(value * gw)
    if c > MAX_CHANNELS:
        raise SpecError(f"layer {i}: {c} channels exceeds the limit of {MAX_CHANNELS}")
    return c


def _make_module(i: int, name: str, args: list, in_ch: list[int], n: int, spec: Mapping[str, Any]
                 ) -> tuple[nn.Module, int, int]:
    """(module, output channels, how many copies to chain) for one row, as the official parser builds it."""
    gw, nc = float(spec.get("width_multiple", 1.0)), int(spec["nc"])
    if name in CHANNEL_MODULES:
        c2 = _channels(args[0], gw, i)
        args = [in_ch[0], c2, *args[1:]]
        if name in REPEATED_MODULES:
            args.insert(2, n)
            n = 1
        return CHANNEL_MODULES[name](*_instantiate(args)), c2, n
    if name == "ReOrg":
        return ReOrg(), 4 * in_ch[0], n
    if name == "Concat":
        return Concat(*args), sum(in_ch), n
    if name == "Shortcut":
        return Shortcut(*args), in_ch[0], n
    if name in PASS_THROUGH:
        return PASS_THROUGH[name](*args), in_ch[0], n
    if name in FUSION_MODULES:
        out_c = _channels(args[0], gw, i)
        first, second = (_conv_triplet(t, gw) for t in str(args[1]).split(";"))
        return FUSION_MODULES[name](in_ch, out_c, first, second, *args[2:]), out_c, n
    if name in HEADS:
        anchors = spec["anchors"] if args[1] == "anchors" else args[1]
        return HEADS[name](nc, anchors, in_ch), 0, n
    raise SpecError(f"layer {i}: unsupported module {name!r}")


def _build_layer(i: int, row: list, ch: list[int], spec: Mapping[str, Any]) -> tuple[nn.Module, int]:
    if not (isinstance(row, (list, tuple)) and len(row) == 4):
        raise SpecError(f"layer {i}: expected [from, number, module, args], got {row!r}")
    f, n, name, args = row
    if not isinstance(args, (list, tuple)):
        raise SpecError(f"layer {i}: args must be a list, got {args!r}")
    if not (isinstance(n, int) and not isinstance(n, bool)) or n < 1:
        raise SpecError(f"layer {i}: number must be a positive int, got {n!r}")
    gd = float(spec.get("depth_multiple", 1.0))
    sources = f if isinstance(f, (list, tuple)) else [f]
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in sources):
        raise SpecError(f"layer {i} ({name}): from must be layer indices, got {f!r}")
    try:
        in_ch = [ch[s] if s < 0 else ch[s + 1] for s in sources]
    except IndexError:
        raise SpecError(f"layer {i} ({name}): source {f} does not exist yet") from None
    if any(s >= i or s < -i - 1 for s in sources if s != -1):
        raise SpecError(f"layer {i} ({name}): source {f} does not exist yet")
    n = max(round(n * gd), 1) if n > 1 else n
    if n > MAX_REPEAT:
        raise SpecError(f"layer {i} ({name}): number {n} exceeds the limit of {MAX_REPEAT}")
    args = [parse_arg(a) for a in args]
    module, c2, n = _make_module(i, name, args, in_ch, n, spec)
    if n > 1:
        module = nn.Sequential(module, *[_make_module(i, name, args, in_ch, 1, spec)[0] for _ in range(n - 1)])
    module.f, module.i, module.type = f, i, name
    return module, c2


def _resolve_spec(spec: Mapping[str, Any]) -> dict:
    missing = [k for k in ("nc", "anchors", "backbone", "head") if k not in spec]
    if missing:
        raise SpecError(f"architecture spec lacks {missing}")
    if not all(isinstance(spec[k], list) for k in ("backbone", "head")):
        raise SpecError("architecture spec: backbone and head must be lists of layer rows")
    rows = len(spec["backbone"]) + len(spec["head"])
    if rows > MAX_LAYERS:
        raise SpecError(f"architecture spec has {rows} layers, more than the limit of {MAX_LAYERS}")
    for key in ("depth_multiple", "width_multiple"):
        value = spec.get(key, 1.0)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 4):
            raise SpecError(f"architecture spec: {key} must lie in (0, 4], got {value!r}")
    if not (isinstance(spec["nc"], int) and not isinstance(spec["nc"], bool) and 0 < spec["nc"] <= 10000):
        raise SpecError(f"architecture spec: nc must be an int in 1..10000, got {spec['nc']!r}")
    resolved = dict(spec)
    resolved["backbone"] = [list(r) for r in spec["backbone"]]
    # YOLO yaml rows write the head's args as [nc, anchors]: resolve the names.
    resolved["head"] = [[r[0], r[1], r[2], [spec["nc"] if a == "nc" else a for a in r[3]]] for r in spec["head"]]
    return resolved


def _build_layers(rows: list, channels: int, spec: Mapping[str, Any], device: torch.device | None) -> list[nn.Module]:
    """Every layer of the spec; on the meta device (no memory) this checks the parameter budget."""
    ch, layers, total = [channels], [], 0
    with torch.device(device) if device is not None else contextlib.nullcontext():
        for i, row in enumerate(rows):
            try:
                module, c2 = _build_layer(i, row, ch, spec)
            except SpecError:
                raise
            except (TypeError, ValueError, IndexError, KeyError, OverflowError) as err:
                raise SpecError(f"layer {i} {row!r}: {type(err).__name__}: {err}") from err
            total += sum(t.numel() for t in module.state_dict().values())
            if total > MAX_PARAMETERS:
                raise SpecError(f"layer {i}: the network exceeds {MAX_PARAMETERS:,} parameters")
            layers.append(module)
            ch.append(c2)
    return layers


def architecture_key(spec: Mapping[str, Any]) -> tuple:
    """What decides the network, comparable between specs: nc, multiples, anchors and the rows
    with absolute sources and evaluated arguments (relative vs absolute ``from``, ``'None'`` vs
    ``None`` compare equal). Two specs with equal keys build identical state dicts and graphs."""
    rows = []
    for i, (f, n, module, args) in enumerate(spec["backbone"] + spec["head"]):
        sources = tuple(s + i if s < 0 else s for s in (f if isinstance(f, (list, tuple)) else [f]))
        rows.append((sources, n, module, tuple(repr(spec["nc"] if a == "nc" else parse_arg(a)) for a in args)))
    return (spec["nc"], spec.get("depth_multiple", 1.0), spec.get("width_multiple", 1.0),
            repr([list(a) for a in spec["anchors"]]), tuple(rows))


class PRBNet(nn.Module):
    """The network: ``forward(images (B, 3, S, S) RGB in [0, 1])`` -> (B, N, 5 + nc)."""

    def __init__(self, spec: Mapping[str, Any], channels: int = 3):
        super().__init__()
        self.yaml = _resolve_spec(spec)
        rows = self.yaml["backbone"] + self.yaml["head"]
        _build_layers(rows, channels, self.yaml, torch.device("meta"))  # sizes checked before anything is allocated
        layers = _build_layers(rows, channels, self.yaml, None)
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
