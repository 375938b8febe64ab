"""Re-parameterisation: a training graph becomes the deploy graph, with the same output.

Two steps, each exact up to float rounding:

* :func:`to_deploy` (architecture level): the auxiliary heads of ``IAuxDetect`` and every
  layer that only feeds them are dropped, the remaining rows re-indexed; an ``IDetect`` /
  ``IAuxDetect`` head becomes a plain ``Detect`` with its implicit knowledge folded into the
  1x1 convs (``im * (W (x + ia) + b) = (im W) x + im (W ia + b)``). The result is again a
  PRBNet built from a spec (what the official ``deploy/`` yaml files describe), so it saves
  and loads like any other.
* :func:`fuse` (module level, in place): every ``Conv`` (conv + BatchNorm) and every
  ``RepConv`` (3x3 + 1x1 + identity branches, each with its BatchNorm) becomes one biased
  conv. A fused network's state dict no longer matches its spec, so weights are stored
  unfused and fusing happens after loading (:class:`~.detector.PRBDetector` does it).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from .heads import Detect, IDetect
from .modules import Conv, FusedConv, RepConv
from .network import PRBNet


def _sources(row: list) -> list[int]:
    return list(row[0]) if isinstance(row[0], (list, tuple)) else [row[0]]


def _absolute(rows: list[list]) -> list[list[int]]:
    return [[s + i if s < 0 else s for s in _sources(row)] for i, row in enumerate(rows)]


def deploy_rows(spec: dict) -> tuple[list[list], dict[int, int]]:
    """The deploy rows of a spec (absolute sources) and old index -> new index of the kept layers."""
    rows = spec["backbone"] + spec["head"]
    sources = _absolute(rows)
    head = len(rows) - 1
    nl = len(spec["anchors"]) if rows[head][3][1] == "anchors" else len(rows[head][3][1])
    lead = sources[head][:nl]
    needed, todo = set(), list(lead)
    while todo:
        i = todo.pop()
        if i >= 0 and i not in needed:  # -1 at row 0: the image
            needed.add(i)
            todo.extend(sources[i])
    kept = sorted(needed)
    index = {-1: -1} | {old: new for new, old in enumerate(kept)}
    index[head] = len(kept)
    out = []
    for old in kept:
        f = [index[s] for s in sources[old]]
        out.append([f if isinstance(rows[old][0], (list, tuple)) else f[0], *rows[old][1:]])
    out.append([[index[s] for s in lead], 1, "Detect", list(rows[head][3])])
    return out, index


def deploy_spec(spec: dict) -> dict:
    rows, _ = deploy_rows(spec)
    n_backbone = len(spec["backbone"])
    result = {k: v for k, v in spec.items() if k not in ("backbone", "head")}
    result["backbone"], result["head"] = rows[:n_backbone], rows[n_backbone:]
    return result


def _folded_head(head: Detect) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) per lead level of the head's 1x1 convs with ia / im folded in."""
    out = []
    for i in range(head.nl):
        w, b = head.m[i].weight.detach(), head.m[i].bias.detach()
        if isinstance(head, IDetect):
            ia = head.ia[i].implicit.detach().reshape(-1)
            im = head.im[i].implicit.detach().reshape(-1)
            b = (b + w[:, :, 0, 0] @ ia) * im
            w = w * im.view(-1, 1, 1, 1)
        out.append((w, b))
    return out


@torch.no_grad()
def to_deploy(net: PRBNet) -> PRBNet:
    """A new PRBNet in the deploy form (see the module docstring); ``net`` is left as it is."""
    _, index = deploy_rows(net.yaml)
    spec = deploy_spec(net.yaml)
    deployed = PRBNet(spec).to(next(net.parameters()).device)
    own = net.state_dict()
    state = {}
    head_old = len(net.model) - 1
    for old, new in index.items():
        if old in (-1, head_old):
            continue
        prefix = f"model.{old}."
        state.update({f"model.{new}.{k[len(prefix):]}": v for k, v in own.items() if k.startswith(prefix)})
    head_new = len(deployed.model) - 1
    for i, (w, b) in enumerate(_folded_head(net.head)):
        state[f"model.{head_new}.m.{i}.weight"], state[f"model.{head_new}.m.{i}.bias"] = w, b
    for buffer in ("anchors", "anchor_grid"):
        state[f"model.{head_new}.{buffer}"] = own[f"model.{head_old}.{buffer}"]
    deployed.load_state_dict(state, strict=True)
    return deployed.train(net.training)


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale, shift = _bn_scale_shift(bn)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    fused.bias.copy_(shift if conv.bias is None else shift + conv.bias * scale)
    return fused


def fuse_repconv(block: RepConv) -> nn.Conv2d:
    """The one 3x3 conv equal to the block's three branches (before the activation)."""
    dense = fuse_conv_bn(*block.rbr_dense)
    one = fuse_conv_bn(*block.rbr_1x1)
    dense.weight += F.pad(one.weight, [1, 1, 1, 1])
    dense.bias += one.bias
    if block.rbr_identity is not None:
        groups = dense.groups
        per_group = dense.in_channels // groups
        identity = torch.zeros_like(dense.weight)
        for c in range(dense.out_channels):
            identity[c, c % per_group, 1, 1] = 1.0
        scale, shift = _bn_scale_shift(block.rbr_identity)
        dense.weight += identity * scale.view(-1, 1, 1, 1)
        dense.bias += shift
    return dense


@torch.no_grad()
def fuse(net: nn.Module) -> nn.Module:
    """Replace, in place, every Conv and RepConv of ``net`` by its one-conv equivalent."""
    for name, child in list(net.named_children()):
        if isinstance(child, Conv):
            fused = FusedConv(fuse_conv_bn(child.conv, child.bn), child.act)
        elif isinstance(child, RepConv):
            fused = FusedConv(fuse_repconv(child), child.act)
        else:
            fuse(child)
            continue
        for attr in ("f", "i", "type"):  # a top-level layer keeps its routing
            if hasattr(child, attr):
                setattr(fused, attr, getattr(child, attr))
        setattr(net, name, fused)
    return net
