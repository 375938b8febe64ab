"""Named PRB-FPN variants, generated as layer-list specs (see network.py).

Each is an official PRBNet architecture, written out by our own generator (the
official yaml files are GPL and stay outside the package); the tests check the
generated rows against the official files and the network against the official
outputs (``../shared/prb-reference``):

``prb-fpn-csp-640`` (official ``deploy/PRB-FPN-CSP.yaml``): CSP-Darknet backbone and
two parallel residual bi-fusion pyramids, 3 levels (strides 8-32), input 640; the fast
variant (51.8 COCO AP at 113 FPS on a V100, the PRBNet paper's figures).
``prb-2py-e6e-1280`` (official ``deploy/yolov7-PRB-e6e.yaml``, the deploy form of
SMILEtrack's ``yolov7-PRB-2PY-e6e``): the detector SMILEtrack used for MOT: an E-ELAN
backbone with a space-to-depth stem, two parallel pyramids, 4 levels (strides 8-64),
input 1280.
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
}
OFFICIAL_CONFIGS = {"prb-fpn-csp-640": "deploy/PRB-FPN-CSP.yaml", "prb-2py-e6e-1280": "deploy/yolov7-PRB-e6e.yaml"}
VARIANTS = tuple(OFFICIAL_CONFIGS)
DEFAULT_FAST = "prb-fpn-csp-640"
MAX_SPEC_FILE_BYTES = 1 << 20


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
    for k, (hidden, out) in enumerate(zip(s.hidden, s.out, strict=True), start=2):
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


def _e6e_rows(s: VariantShape) -> tuple[list, list]:
    r = _Rows()
    level = _backbone(r, s)
    n_backbone = len(r.rows)
    top = 2 + len(s.out) - 1
    lowest = top - len(s.anchors) + 1
    base = {k: s.hidden[k - 2] for k in level if k >= 2}
    pyramids = [_pyramid(r, s, level, base, top, q) for q in range(s.pyramids)]
    heads = []
    for j, merge in zip(range(lowest, top + 1), s.merge, strict=True):
        merged = r.add(r.add([p[j] for p in pyramids[::-1]], "Concat", [1]), "BottleneckCSPB", [merge])
        heads.append(merged)
    lead = [r.add(h, "Conv", [s.out[j - 2], 1, 1]) for j, h in zip(range(lowest, top + 1), heads, strict=True)]
    r.add(lead, "Detect", ["nc", "anchors"])
    return r.rows[:n_backbone], r.rows[n_backbone:]


CSP_WIDTHS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 1024}  # backbone output per level (stride 2**level)
CSP_DEPTHS = {2: 2, 3: 8, 4: 8, 5: 4}  # BottleneckCSPC repeats per level


def _csp_pyramid(r: _Rows, level: dict[int, int], w: dict[int, int], spp: int, q: int) -> dict[int, int]:
    """One residual bi-fusion pyramid of PRB-FPN-CSP, shifted ``q`` levels down the backbone:
    per output level the upsampled deeper map meets the current and the finer backbone level
    (both brought to this resolution by strided 1x1 convs). Returns its output per level."""
    deep = r.add(spp, "Conv", [w[5 - q] // 4, 1, 2 ** q])
    outputs = {5: spp if q == 0 else deep}
    for j in (4, 3):
        up = r.add(deep, "nn.Upsample", [None, 2, "nearest"])
        shallow = r.add(level[j - 1 - q], "Conv", [w[j - 1 - q] // 2, 1, 2 ** (q + 1)])
        current = r.add(level[j - q], "Conv", [w[j - q] // 2, 1, 2 ** q])
        x = r.add([current, shallow, up], "Concat", [1])
        c = w[j] // 2
        for k in (1, 3, 1, 3):
            x = r.add(x, "Conv", [c, k, 1])
        if j == 4:
            x = r.add(x, "BottleneckCSPB", [c], n=2)
            deep = r.add(x, "Conv", [c // 2, 1, 1])
        outputs[j] = x
    return outputs


def _csp_rows() -> tuple[list, list]:
    r = _Rows()
    r.add(-1, "Conv", [32, 3, 1])
    r.add(-1, "Conv", [CSP_WIDTHS[1], 3, 2])
    level = {1: r.add(-1, "Bottleneck", [CSP_WIDTHS[1]])}
    for j in range(2, 6):
        r.add(-1, "Conv", [CSP_WIDTHS[j], 3, 2])
        level[j] = r.add(-1, "BottleneckCSPC", [CSP_WIDTHS[j]], n=CSP_DEPTHS[j])
    n_backbone = len(r.rows)
    spp = {q: r.add(level[5 - q], "SPPCSPC", [CSP_WIDTHS[5 - q] // 2]) for q in (1, 0)}
    pyramids = [_csp_pyramid(r, level, CSP_WIDTHS, spp[q], q) for q in (0, 1)]
    heads = []
    for j in (3, 4, 5):
        fused = r.add(r.add([pyramids[1][j], pyramids[0][j]], "Concat", [1]), "BottleneckCSPB",
                      [CSP_WIDTHS[j] // 2], n=3)
        heads.append(r.add(fused, "Conv", [CSP_WIDTHS[j], 3, 1]))
    r.add(heads, "Detect", ["nc", "anchors"])
    return r.rows[:n_backbone], r.rows[n_backbone:]


def variant_spec(name: str, nc: int = 80, width_multiple: float = 1.0, depth_multiple: float = 1.0) -> dict[str, Any]:
    """The layer-list spec of a named variant (``width_multiple`` < 1 shrinks it, e.g. for tests)."""
    if name not in OFFICIAL_CONFIGS:
        raise ValueError(f"unknown PRB variant {name!r}; known: {sorted(OFFICIAL_CONFIGS)}")
    if name == "prb-fpn-csp-640":
        (backbone, head), anchors, size = _csp_rows(), ANCHORS_P5, 640
    else:
        s = SHAPES[name]
        (backbone, head), anchors, size = _e6e_rows(s), [list(a) for a in s.anchors], s.input_size
    return {"nc": nc, "depth_multiple": depth_multiple, "width_multiple": width_multiple, "anchors": anchors,
            "backbone": backbone, "head": head, "input_size": size}


def load_spec(architecture: str, **overrides: Any) -> dict[str, Any]:
    """A variant name, or a YAML/JSON spec file (e.g. one written by convert_prb)."""
    if architecture in OFFICIAL_CONFIGS:
        return variant_spec(architecture, **overrides)
    path = Path(architecture)
    if not path.is_file():
        raise ValueError(f"architecture {architecture!r} is neither a PRB variant ({sorted(OFFICIAL_CONFIGS)}) "
                         f"nor a file")
    import yaml

    from .checkpoint import plain_spec

    if path.stat().st_size > MAX_SPEC_FILE_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size} bytes is too large for an architecture spec "
                         f"(limit {MAX_SPEC_FILE_BYTES})")
    try:
        spec = plain_spec(yaml.safe_load(path.read_text()), str(path))
    except (yaml.YAMLError, RecursionError) as err:
        raise ValueError(f"{path}: not a readable yaml spec ({type(err).__name__})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: an architecture spec must be a mapping")
    spec.update(overrides)
    return spec
