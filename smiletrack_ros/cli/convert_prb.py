"""Convert an official PRBNet / YOLOv7-style .pt checkpoint to safetensors + a spec yaml.

    python -m smiletrack_ros.cli.convert_prb CKPT.pt OUT.safetensors

The checkpoint is read with a restricted unpickler (no code from it runs); the
result is then loaded strictly into our PRBNet built from the checkpoint's own
architecture spec, so a mismatch is reported by key before anything is used.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smiletrack_ros.detection.prb.checkpoint import UnsafeCheckpointError, extract_model, read_checkpoint
from smiletrack_ros.detection.prb.network import PRBNet, SpecError
from smiletrack_ros.detection.prb.weights import WeightsMismatchError, check_state_dict, save_weights


def convert(checkpoint: Path, out: Path, verify: bool = True) -> tuple[Path, Path, int]:
    tensors, spec = extract_model(read_checkpoint(checkpoint))
    if verify:
        check_state_dict(PRBNet(spec), tensors)
    weights, spec_path = save_weights(tensors, spec, out)
    return weights, spec_path, len(tensors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="pickled .pt checkpoint (torch zip format)")
    parser.add_argument("out", type=Path, help="output .safetensors path (the spec goes beside it as .yaml)")
    parser.add_argument("--no-verify", action="store_true",
                        help="write the tensors even if our network cannot rebuild the spec")
    args = parser.parse_args(argv)
    if args.out.suffix != ".safetensors":
        parser.error("OUT must end in .safetensors")
    try:
        weights, spec_path, count = convert(args.checkpoint, args.out, verify=not args.no_verify)
    except (UnsafeCheckpointError, WeightsMismatchError, SpecError, ValueError, OSError) as err:
        print(f"convert_prb: {err}", file=sys.stderr)
        return 1
    print(f"wrote {count} tensors to {weights} and the architecture to {spec_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
