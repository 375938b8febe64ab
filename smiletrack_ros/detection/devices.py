"""Turn the ``device`` setting into a torch device (no device is ever hard-coded)."""
from __future__ import annotations

import torch

from .config import DetectorConfigError


def resolve_device(setting: str) -> torch.device:
    """``auto`` picks the first CUDA device when there is one, else the CPU."""
    if setting == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DetectorConfigError(f"DetectorConfig.device {setting!r}: CUDA is not available here")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise DetectorConfigError(
                f"DetectorConfig.device {setting!r}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    return device
