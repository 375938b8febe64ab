"""ONNX export of a PRBNet: the fused deploy network with its decode, dynamic batch.

The graph takes ``images`` (B, 3, S, S) RGB in [0, 1] and returns ``output`` (B, N, 5 + nc)
(centre x, y, w, h in input pixels, objectness, class scores): the ``yolov5`` layout that
the ``onnx`` detector backend reads, so an exported PRB model runs there as it is.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch

from .network import PRBNet
from .reparam import fuse, to_deploy

OPSET = 17


def export_onnx(net: PRBNet, out: str | Path, input_size: int) -> Path:
    """Write ``net`` (deployed and fused on a copy; ``net`` is unchanged) to ``out``."""
    if input_size % net.max_stride:
        raise ValueError(f"input_size {input_size} is not a multiple of the network's largest stride "
                         f"{net.max_stride}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        deployed = fuse(to_deploy(copy.deepcopy(net).float().cpu().eval()).eval())
        deployed.head._grids.clear()
        example = torch.zeros(1, 3, input_size, input_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(deployed, example, str(out), dynamo=False, opset_version=OPSET,
                              input_names=["images"], output_names=["output"],
                              dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}})
    return out
