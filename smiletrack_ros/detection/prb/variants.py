"""Named PRB-FPN variants, generated as layer-list specs (see network.py).

``prb-2py-e6e-1280``: the detector SMILEtrack used for MOT: an E-ELAN (E6E-like)
backbone with a space-to-depth stem, two parallel residual bi-fusion pyramids,
4 output levels (strides 8-64), input 1280; its layer graph matches PRBNet's
2PY-E6E deploy form (lead head only, an IDetect).
``prb-2py-elan-640``: our lighter 3-level (strides 8-32) variant for 640 inputs,
same family (not an official PRBNet configuration).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANCHORS_P6 = [[19, 27, 44, 40, 38, 94], [96, 68, 86, 152, 180, 137], [140, 301, 303, 264, 238, 542],
              [436, 615, 739, 380, 925, 792]]
ANCHORS_P5 = [[12, 16, 19, 36, 40, 28], [36, 75, 76, 55, 72, 146], [142, 110, 192, 243, 459, 401]]


@dataclass(frozen=True)
class VariantShape:
    """What the generator needs. Per backbone level k (stride 2**k, k >= 2): hidden and
    output widths of its E-ELAN stage; ``stem`` is the level-1 width; ``merge`` the
    width that fuses the pyramids at each output level (finest first)."""

    stem: int
    hidden: tuple[int, ...]
    out: tuple[int, ...]
    merge: tuple[int, ...]
    elan_convs: int
    elan_blocks: int
    pyramids: int
    anchors: tuple
    input_size: int


SHAPES = {
    "prb-2py-e6e-1280": VariantShape(stem=80, hidden=(64, 128, 256, 384, 512), out=(160, 320, 640, 960, 1280),
                                     merge=(192, 256, 384, 512), elan_convs=6, elan_blocks=2, pyramids=2,
                                     anchors=tuple(map(tuple, ANCHORS_P6)), input_size=1280),
    "prb-2py-elan-640": VariantShape(stem=32, hidden=(32, 64, 128, 192), out=(64, 128, 256, 384),
                                     merge=(128, 192, 256), elan_convs=4, elan_blocks=1, pyramids=2,
                                     anchors=tuple(map(tuple, ANCHORS_P5)), input_size=640),
}


class _Rows:
    """Appends layer rows with absolute sources and returns each row's index."""

    def __init__(self) -> None:
        self.rows: list[list] = []

    def add(self, f, module: str, args: list, n: int = 1) -> int:
        self.rows.append([f, n, module, args])
        return len(self.rows) - 1


def _elan_block(r: _Rows, src: int, hidden: int, out: int, convs: int) -> int:
    a = r.add(src, "Conv", [hidden, 1, 1])
    b = r.add(src, "Conv", [hidden, 1, 1])
    chain = [b]
    for _ in range(convs):
        chain.append(r.add(chain[-1], "Conv", [hidden, 3, 1]))
    picked = chain[::-2][: convs // 2] + [b, a]  # every second 3x3 output, then both 1x1 paths
    return r.add(r.add(picked, "Concat", [1]), "Conv", [out, 1, 1])


def _backbone(r: _Rows, s: VariantShape) -> dict[int, int]:
    r.add(-1, "ReOrg", [])
    level = {1: r.add(-1, "Conv", [s.stem, 3, 1])}
    for k, (hidden, out) in enumerate(zip(s.hidden, s.out, strict=False), start=2):
        down = r.add(-1, "DownC", [out])
        blocks = [_elan_block(r, down, hidden, out, s.elan_convs) for _ in range(s.elan_blocks)]
        level[k] = blocks[0] if len(blocks) == 1 else r.add(blocks[::-1][:2], "Shortcut", [1])
    return level


def _pyramid(r: _Rows, s: VariantShape, level: dict[int, int], base: dict[int, int], top: int,
             q: int) -> dict[int, int]:
    """One parallel pyramid, shifted ``q`` levels down the backbone: top-down residual
    blocks (RBBlockA), then bottom-up ReOrg fusion (BFM). Returns its output per level."""
    lowest = 3
    spp = r.add(level[top - q], "SPPCSPC", [s.out[top - q - 2] // 2])
    deep_conv = {top: r.add(spp, "Conv", [base[top - 1], 1, 2 ** q])}
    fused = {}
    for j in range(top - 1, lowest - 1, -1):
        c = base[j]
        rb = r.add([level[j - q], level[j - 1 - q], deep_conv[j + 1]], "RBBlockA",
                   [c * 5 // 4, f"{c},1,{2 ** q};{c // 2},1,{2 ** (q + 1)}", 2, "nearest"])
        fused[j] = r.add(r.add(rb, "Bottleneck", [c, False]), "BottleneckCSPB", [c // 2], n=2)
        if j > lowest:
            deep_conv[j] = r.add(fused[j], "Conv", [base[j - 1], 1, 1])
    outputs = {lowest: fused[lowest]}
    for j in range(lowest + 1, top + 1):
        c = base[j]
        bfm = r.add([outputs[j - 1], deep_conv[j]], "BFM", [c * 5 // 4, f"{c * 5 // 8},1,1;{c * 5 // 8},1,1"])
        outputs[j] = r.add(r.add(bfm, "Bottleneck", [c, False]), "BottleneckCSPB", [c // 2], n=2)
    return outputs


def variant_spec(name: str, nc: int = 80, width_multiple: float = 1.0, depth_multiple: float = 1.0) -> dict[str, Any]:
    """The layer-list spec of a named variant (``width_multiple`` < 1 shrinks it, e.g. for tests)."""
    if name not in SHAPES:
        raise ValueError(f"unknown PRB variant {name!r}; known: {sorted(SHAPES)}")
    s = SHAPES[name]
    r = _Rows()
    level = _backbone(r, s)
    n_backbone = len(r.rows)
    top = 2 + len(s.out) - 1
    lowest = top - len(s.anchors) + 1
    base = {k: s.hidden[k - 2] for k in level if k >= 2}
    pyramids = [_pyramid(r, s, level, base, top, q) for q in range(s.pyramids)]
    heads = []
    for j, merge in zip(range(lowest, top + 1), s.merge, strict=False):
        merged = r.add(r.add([p[j] for p in pyramids[::-1]], "Concat", [1]), "BottleneckCSPB", [merge])
        heads.append(merged)
    lead = [r.add(h, "Conv", [s.out[j - 2], 1, 1]) for j, h in zip(range(lowest, top + 1), heads, strict=False)]
    r.add(lead, "IDetect", ["nc", "anchors"])
    return {"nc": nc, "depth_multiple": depth_multiple, "width_multiple": width_multiple,
            "anchors": [list(a) for a in s.anchors], "backbone": r.rows[:n_backbone], "head": r.rows[n_backbone:],
            "input_size": s.input_size}


def load_spec(architecture: str, **overrides: Any) -> dict[str, Any]:
    """A variant name, or a YAML/JSON spec file (e.g. one written by convert_prb)."""
    if architecture in SHAPES:
        return variant_spec(architecture, **overrides)
    path = Path(architecture)
    if not path.is_file():
        raise ValueError(f"architecture {architecture!r} is neither a PRB variant ({sorted(SHAPES)}) nor a file")
    import yaml

    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: an architecture spec must be a mapping")
    spec.update(overrides)
    return spec
