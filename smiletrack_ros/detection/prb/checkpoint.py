"""Read official PRBNet / YOLOv7-style pickled checkpoints without running their code.

Those files pickle whole ``nn.Module`` objects (``models.yolo.Model``,
``models.common.*``, ``torch.nn.*``). A plain ``torch.load(weights_only=False)``
would import and call whatever the pickle names. Here a restricted unpickler maps
the model classes to inert stand-ins that only keep their attribute dicts, rebuilds
tensors from the zip's raw storages itself, and refuses every other global
(``os.system``, ``builtins.eval``, ``subprocess.*`` ...) with an error naming it.
"""
from __future__ import annotations

import _compat_pickle
import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (the message names it)."""


STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
TORCH_DTYPES = {"float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool",
                "float", "half", "double", "long", "int"}
MODEL_MODULE_PREFIXES = ("models.", "torch.nn.modules.")


class InertModule:
    """Stand-in for a pickled nn.Module class: construction does nothing and the
    pickled state is kept as plain attributes to read tensors from."""

    source_class = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<inert {self.source_class}>"


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _rebuild_tensor(storage: torch.Tensor, offset: int, size, stride, *_unused) -> torch.Tensor:
    return torch.as_strided(storage, tuple(size), tuple(stride), int(offset)).clone()


def _rebuild_parameter(data: torch.Tensor, *_unused) -> torch.Tensor:
    return data


def _numpy_scalar(dtype: np.dtype, raw: bytes):
    return np.frombuffer(raw, dtype=dtype)[0].item()


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles spell ``bytes`` as ``_codecs.encode(text, 'latin1')``."""
    if encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_dtype(name: str, *_unused) -> np.dtype:
    return np.dtype(name)


class RestrictedUnpickler(pickle.Unpickler):
    """Allows containers, tensor rebuilding, storages, dtypes and model classes (as inert
    stand-ins); everything else raises :class:`UnsafeCheckpointError`."""

    def __init__(self, file, storages: dict[str, torch.Tensor] | None = None):
        super().__init__(file)
        self._storages = storages or {}
        self._stand_ins: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str):
        # protocol-2 pickles use Python 2 names (__builtin__, copy_reg): judge the Python 3 ones
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if module == "builtins" and name in ("set", "frozenset"):
            return set if name == "set" else frozenset
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if module == "torch" and name in TORCH_DTYPES:
            return getattr(torch, name)
        if module == "torch" and name == "Size":
            return tuple
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            return _numpy_scalar
        if module == "numpy" and name == "dtype":
            return _numpy_dtype
        if module.startswith(MODEL_MODULE_PREFIXES) and name.isidentifier() and name[0].isupper():
            key = (module, name)
            if key not in self._stand_ins:
                self._stand_ins[key] = type(name, (InertModule,), {"source_class": f"{module}.{name}"})
            return self._stand_ins[key]
        raise UnsafeCheckpointError(f"refusing to load global '{module}.{name}': not a tensor, container or "
                                    f"model class this converter knows")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafeCheckpointError(f"unsupported persistent id {pid!r}")
        key = str(pid[2])
        if key not in self._storages:
            raise pickle.UnpicklingError(f"checkpoint references storage {key!r} that the archive lacks")
        return self._storages[key].view(pid[1].dtype) if pid[1].dtype != torch.uint8 else self._storages[key]


def _read_zip(path: Path) -> tuple[bytes, dict[str, torch.Tensor]]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the torch archive, found {len(pickles)}")
        root = pickles[0][: -len("data.pkl")]
        order = root + "byteorder"
        if order in names and archive.read(order).decode().strip() != "little":
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        storages = {}
        for name in names:
            if name.startswith(root + "data/"):
                raw = bytearray(archive.read(name))
                storages[name[len(root + "data/"):]] = (torch.frombuffer(raw, dtype=torch.uint8) if raw
                                                        else torch.zeros(0, dtype=torch.uint8))
        return archive.read(pickles[0]), storages


def read_checkpoint(path: str | Path) -> Any:
    """Unpickle a torch zip checkpoint (or a bare pickle) with the restricted unpickler."""
    path = Path(path)
    data, storages = _read_zip(path) if zipfile.is_zipfile(path) else (path.read_bytes(), {})
    try:
        return RestrictedUnpickler(io.BytesIO(data), storages).load()
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # malformed data reaching the allowed rebuild helpers
        raise ValueError(f"{path}: unreadable checkpoint: {type(err).__name__}: {err}") from err


def _module_tensors(module: InertModule, prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = module.__dict__
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for name, value in (state.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + name] = value
    for name, value in (state.get("_buffers") or {}).items():
        if value is not None and name not in skip:
            out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            if not isinstance(child, InertModule):
                raise ValueError(f"unexpected object {type(child).__name__} at module {prefix + name}")
            _module_tensors(child, f"{prefix}{name}.", out)


def extract_model(checkpoint: Any) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, architecture spec) of the checkpoint's EMA model if present, else its model."""
    model = checkpoint
    if isinstance(checkpoint, dict):
        model = next((checkpoint[k] for k in ("ema", "model") if isinstance(checkpoint.get(k), InertModule)), None)
        if model is None:
            raise ValueError(f"checkpoint dict has no 'ema' or 'model' module (keys: {sorted(checkpoint)})")
    if not isinstance(model, InertModule):
        raise ValueError(f"checkpoint holds {type(model).__name__}, not a pickled model")
    spec = model.__dict__.get("yaml")
    if not isinstance(spec, dict):
        raise ValueError(f"the pickled {model.source_class} carries no architecture yaml dict")
    tensors: dict[str, torch.Tensor] = {}
    _module_tensors(model, "", tensors)
    if not tensors:
        raise ValueError("the pickled model holds no tensors")
    return tensors, spec
