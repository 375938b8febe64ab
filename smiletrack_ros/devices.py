"""The ``device`` setting of every model: one syntax check (no torch needed, for config
validation) and one resolution to a torch device (no device is ever hard-coded)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from smiletrack_ros.errors import SettingError

if TYPE_CHECKING:
    import torch

DEVICE_SYNTAX = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def is_device_setting(setting: object) -> bool:
    """Whether ``setting`` is a device string this package accepts (see ``DEVICE_SYNTAX``)."""
    return isinstance(setting, str) and _DEVICE.match(setting) is not None


def resolve_device(setting: str, error: type[Exception] = ValueError, name: str = "device") -> torch.device:
    """``auto`` picks the first CUDA device when there is one, else the CPU.

    A device that is not here raises ``error`` (the caller's config error), naming ``name``
    (as its ``field`` when ``error`` is a ``SettingError``)."""
    import torch

    def fail(reason: str) -> Exception:
        return error(name, reason) if issubclass(error, SettingError) else error(f"{name} {reason}")

    if setting == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise fail(f"{setting!r}: CUDA is not available here")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise fail(f"{setting!r}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    return device
