"""safetensors weights for PRBNet: written once by the converter, loaded strictly."""
from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from torch import nn

SPEC_METADATA_KEY = "prb_spec"


class WeightsMismatchError(ValueError):
    """The weights do not fit the network; the message names the keys."""


def save_weights(tensors: dict[str, torch.Tensor], spec: dict, out: Path) -> tuple[Path, Path]:
    """Write ``out`` (.safetensors, float32, the spec in its metadata) and the spec beside
    it as ``<out>.yaml`` so the architecture can be read or edited without Python."""
    from safetensors.torch import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plain = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    save_file(plain, str(out), metadata={SPEC_METADATA_KEY: json.dumps(spec)})
    spec_path = out.with_suffix(".yaml")
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False, default_flow_style=None))
    return out, spec_path


def read_spec(path: Path) -> dict | None:
    """The architecture spec stored in a .safetensors' metadata, if any."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        text = (f.metadata() or {}).get(SPEC_METADATA_KEY)
    return json.loads(text) if text else None


def check_state_dict(net: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Raise naming missing, unexpected and wrongly shaped keys (first 10 of each)."""
    own = net.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = sorted(f"{k}: weights {tuple(tensors[k].shape)} vs network {tuple(own[k].shape)}"
                    for k in set(own) & set(tensors) if tuple(own[k].shape) != tuple(tensors[k].shape))
    problems = [f"{label} ({len(keys)}): {keys[:10]}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)) if keys]
    if problems:
        raise WeightsMismatchError("weights do not match the network: " + "; ".join(problems))


def load_weights(net: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: the prb backend loads .safetensors only; convert pickled checkpoints with "
                         f"python -m smiletrack_ros.cli.convert_prb")
    tensors = load_file(str(path))
    check_state_dict(net, tensors)
    net.load_state_dict(tensors, strict=True)
