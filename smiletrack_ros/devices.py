"""The ``device`` setting of every model -> a torch device (no device is ever hard-coded)."""
from __future__ import annotations

import torch


def resolve_device(setting: str, error: type[Exception] = ValueError, name: str = "device") -> torch.device:
    """``auto`` picks the first CUDA device when there is one, else the CPU.

    A device that is not here raises ``error`` (the caller's config error), naming ``name``."""
    if setting == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise error(f"{name} {setting!r}: CUDA is not available here")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise error(f"{name} {setting!r}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    return device
