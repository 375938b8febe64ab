"""Convert an official PRBNet / YOLOv7-style .pt checkpoint to a deploy safetensors + spec yaml.

    python -m smiletrack_ros.cli.convert_prb CKPT.pt OUT.safetensors [--onnx OUT.onnx [--onnx-size 640]]

The checkpoint (whole pickled official modules, its ``ema`` model if present, else
``model``; fp16 as saved by training) is read with a restricted, size-bounded unpickler:
no code from it runs. Its tensors are loaded strictly into our PRBNet built from the
checkpoint's own architecture (its ``yaml`` attribute), so a mismatch is reported by key,
then re-parameterised to the deploy graph (auxiliary heads dropped, implicit layers folded
into the head convs) and written as float32 with the deploy spec. ``--onnx`` also exports
the fused deploy network (decode included, dynamic batch) for the ``onnx`` backend.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from smiletrack_ros.detection.prb.checkpoint import UnsafeCheckpointError, extract_model, read_checkpoint
from smiletrack_ros.detection.prb.export import export_onnx
from smiletrack_ros.detection.prb.network import PRBNet, SpecError
from smiletrack_ros.detection.prb.reparam import to_deploy
from smiletrack_ros.detection.prb.weights import WeightsMismatchError, check_state_dict, save_weights


def convert(checkpoint: Path, out: Path) -> tuple[PRBNet, Path, Path]:
    """Write the deploy network of ``checkpoint`` to ``out`` (+ ``out.yaml``); returns it and the paths."""
    tensors, spec = extract_model(read_checkpoint(checkpoint))
    net = PRBNet(spec)
    check_state_dict(net, tensors)
    net.load_state_dict(tensors, strict=True)  # fp16 tensors are cast to the float32 network
    deployed = to_deploy(net.eval())
    weights, spec_path = save_weights(deployed.state_dict(), deployed.yaml, out)
    return deployed, weights, spec_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="pickled .pt checkpoint (torch zip format)")
    parser.add_argument("out", type=Path, help="output .safetensors path (the spec goes beside it as .yaml)")
    parser.add_argument("--onnx", type=Path, help="also export the deploy network to this .onnx file")
    parser.add_argument("--onnx-size", type=int, default=None,
                        help="the ONNX model's input size (default: 1280 for 4-level models, else 640)")
    args = parser.parse_args(argv)
    if args.out.suffix != ".safetensors":
        parser.error("OUT must end in .safetensors")
    try:
        with torch.no_grad():
            deployed, weights, spec_path = convert(args.checkpoint, args.out)
            if args.onnx is not None:
                size = args.onnx_size or (1280 if deployed.max_stride >= 64 else 640)
                print(f"exported {export_onnx(deployed, args.onnx, size)} (input {size}, dynamic batch)")
    except (UnsafeCheckpointError, WeightsMismatchError, SpecError, ValueError, OSError) as err:
        print(f"convert_prb: {err}", file=sys.stderr)
        return 1
    except RecursionError:
        print(f"convert_prb: {args.checkpoint}: nests too deeply to be a checkpoint", file=sys.stderr)
        return 1
    print(f"wrote {len(deployed.state_dict())} tensors to {weights} and the architecture to {spec_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
