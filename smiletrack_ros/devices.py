"""The ``device`` setting of every model: one syntax check (no torch needed, for config
validation), one resolution to a torch device and one to ONNX Runtime execution providers
(no device is ever hard-coded)."""
from __future__ import annotations

import re
from collections.abc import Sequence
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
        return _setting_error(error, name, reason)

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


ONNX_CPU, ONNX_CUDA, ONNX_TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


def onnx_providers(setting: str, available: Sequence[str], error: type[Exception] = ValueError,
                   name: str = "device", fp16: bool = False) -> tuple[list, str]:
    """ONNX Runtime providers for a device setting, from the runtime's ``available`` ones
    (``onnxruntime.get_available_providers()``), and the device they run on.

    cpu: the CPU; auto: CUDA when the runtime has it, else the CPU; cuda[:N]: CUDA, an error
    (``error``, naming ``name``) without it. On CUDA, TensorRT goes first where this runtime has
    it (fp16 engines with ``fp16``), then CUDA, then the CPU for any node the others cannot run."""
    if setting == "cpu" or (setting == "auto" and ONNX_CUDA not in available):
        return [ONNX_CPU], "cpu"
    if ONNX_CUDA not in available:
        raise _setting_error(error, name, f"{setting!r}: this ONNX Runtime has no {ONNX_CUDA} (install "
                                          f"onnxruntime-gpu; it has {list(available)})")
    index = int(setting.split(":")[1]) if ":" in setting else 0
    providers: list = [(ONNX_CUDA, {"device_id": index}), ONNX_CPU]
    if ONNX_TENSORRT in available:
        providers.insert(0, (ONNX_TENSORRT, {"device_id": index, "trt_fp16_enable": fp16}))
    return providers, f"cuda:{index}"


def _setting_error(error: type[Exception], name: str, reason: str) -> Exception:
    """The caller's config error: ``field`` = ``name`` for a SettingError, else named in the message."""
    return error(name, reason) if issubclass(error, SettingError) else error(f"{name} {reason}")
