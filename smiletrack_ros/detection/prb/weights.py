"""safetensors weights for PRBNet: written once by the converter, loaded strictly."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import torch
import yaml
from torch import nn

from .checkpoint import plain_spec

SPEC_METADATA_KEY = "prb_spec"
MAX_SPEC_CHARS = 1 << 20  # an official spec is about 10 kB of json


class WeightsMismatchError(ValueError):
    """The weights do not fit the network; the message names the keys."""


class WeightsFileError(ValueError):
    """The weights file is missing, not a regular file or not readable safetensors (the
    message names the file); a truncated download or a git-lfs pointer ends here."""


def _check_file(path: Path) -> Path:
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise WeightsFileError(f"weights not found: {path} ({err.strerror})") from None
    if not stat.S_ISREG(mode):
        raise WeightsFileError(f"{path}: not a regular file")
    if path.suffix != ".safetensors":
        raise WeightsFileError(f"{path}: the prb backend loads .safetensors only; convert pickled checkpoints with "
                               f"python -m smiletrack_ros.cli.convert_prb")
    return path


def _unreadable(path: Path, err: Exception) -> WeightsFileError:
    return WeightsFileError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})")


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
    """The architecture spec stored in a .safetensors' metadata, if any (checked to be small,
    plain data before it is parsed)."""
    from safetensors import safe_open

    path = _check_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get(SPEC_METADATA_KEY)
    except Exception as err:  # safetensors raises its own SafetensorError, not a ValueError
        raise _unreadable(path, err) from err
    if not text:
        return None
    if len(text) > MAX_SPEC_CHARS:
        raise WeightsFileError(f"{path}: the stored spec has {len(text)} characters (limit {MAX_SPEC_CHARS})")
    try:
        spec = plain_spec(json.loads(text), f"{path}: {SPEC_METADATA_KEY}")
    except (ValueError, RecursionError) as err:
        raise WeightsFileError(f"{path}: the stored spec is not a valid architecture ({err})") from None
    if not isinstance(spec, dict):
        raise WeightsFileError(f"{path}: the stored spec is not a mapping")
    return spec


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

    path = _check_file(path)
    try:
        tensors = load_file(str(path))
    except Exception as err:  # SafetensorError on a corrupt header or a truncated file
        raise _unreadable(path, err) from err
    check_state_dict(net, tensors)
    net.load_state_dict(tensors, strict=True)
