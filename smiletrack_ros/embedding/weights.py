"""Reading and writing SLM weights without ever running code from a file.

Two formats load:
- ours: ``NAME.safetensors`` (tensors only) beside ``NAME.json`` (the model card);
- the official SMILEtrack checkpoint: a torch pickle holding a dict with
  ``model_G_state_dict`` (keys maybe prefixed ``module.``), read with
  ``torch.load(weights_only=True)``, whose restricted unpickler refuses any object
  that is not a tensor or plain container, so a hostile file fails before running.
Both load strictly: any key missing, unexpected or of the wrong shape is an error
naming the file and the keys.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from .card import ModelCard
from .errors import WeightsError
from .slm import SLMNet, SlmSpec

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "slm_default.safetensors"
# Layers the official model defines but never runs: ResNet's layer4 and classifier,
# and an unused stem block named ``conv1`` at the top level.
OFFICIAL_UNUSED_PREFIXES = ("resnet.layer4.", "resnet.fc.", "conv1.")
_OFFICIAL_RENAMES = (("resnet.", "backbone."),)
_SHOWN_KEYS = 8


def card_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_weights(net: SLMNet, path: str | Path, card: ModelCard) -> None:
    """Write ``net``'s state dict (floats cast to the card's storage dtype) and the card."""
    from safetensors.torch import save_file

    dtype = getattr(torch, card.storage_dtype)
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in net.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "smiletrack_ros/slm-weights"})
    card.write(card_path(path))


def _describe(keys: set[str]) -> str:
    shown = sorted(keys)[:_SHOWN_KEYS]
    more = f" (+{len(keys) - len(shown)} more)" if len(keys) > len(shown) else ""
    return ", ".join(shown) + more


def load_state_strict(net: nn.Module, state: dict[str, torch.Tensor], source: str, model: str = "") -> None:
    """Load ``state`` into ``net`` or raise naming every mismatching key (``model``: what
    ``net`` is, for the message; default the SLM of its spec)."""
    non_tensor = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if non_tensor:
        raise WeightsError(f"{source}: entries that are not tensors: {_describe(set(non_tensor))}")
    own = net.state_dict()
    missing, unexpected = set(own) - set(state), set(state) - set(own)
    bad_shape = {k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)}
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if bad_shape:
        problems.append("wrong shapes: " + ", ".join(
            f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in sorted(bad_shape)[:_SHOWN_KEYS]))
    if problems:
        model = model or f"the {net.spec.backbone} SLM"
        raise WeightsError(f"{source}: does not fit {model}; " + "; ".join(problems))
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def load_safetensors_weights(path: str | Path) -> tuple[SLMNet, ModelCard]:
    from safetensors.torch import load_file

    path = Path(path)
    card = ModelCard.read(card_path(path))
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for corrupt files
        raise WeightsError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from exc
    net = SLMNet(card.spec)
    load_state_strict(net, state, str(path))
    return net, card


def load_official_checkpoint(path: str | Path) -> tuple[SLMNet, ModelCard]:
    """The official SMILEtrack SLM checkpoint (ResNet-18, raw BGR input)."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - refused (hostile) and corrupt files alike
        raise WeightsError(f"{path}: refused or unreadable torch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model_G_state_dict"), dict):
        raise WeightsError(f"{path}: not an official SMILEtrack checkpoint (no 'model_G_state_dict' dict)")
    state = {}
    for key, value in checkpoint["model_G_state_dict"].items():
        key = key.removeprefix("module.")
        if key.startswith(OFFICIAL_UNUSED_PREFIXES):
            continue
        for old, new in _OFFICIAL_RENAMES:
            if key.startswith(old):
                key = new + key[len(old):]
        state[key] = value
    net = SLMNet(SlmSpec())
    # Checkpoints from torch < 0.4.1 have no BatchNorm step counters; eval never reads them.
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    load_state_strict(net, state, str(path))
    epoch = checkpoint.get("epoch_id")
    # a label only: kept when it is a whole number (inf, nan, a bool or text are dropped, never raised)
    epoch = int(epoch) if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) \
        and math.isfinite(epoch) else None
    card = ModelCard(spec=net.spec, name="smiletrack-official",
                     description="Official SMILEtrack SLM checkpoint (ResNet-18, raw BGR 0..255).",
                     training={"source": str(path), "epoch_id": epoch})
    return net, card


def load_weights(path: str | Path) -> tuple[SLMNet, ModelCard]:
    """Load ours (``.safetensors``) or an official checkpoint (anything else)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        return load_safetensors_weights(path)
    return load_official_checkpoint(path)
