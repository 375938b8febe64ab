"""Read official PRBNet / YOLOv7-style pickled checkpoints without running their code.

Those files pickle whole ``nn.Module`` objects (``models.yolo.Model``,
``models.common.*``, ``torch.nn.*``). A plain ``torch.load(weights_only=False)``
would import and call whatever the pickle names. Here a restricted unpickler maps
the model classes to inert stand-ins that only keep their attribute dicts, rebuilds
tensors from the zip's raw storages itself, and refuses every other global
(``os.system``, ``builtins.eval``, ``subprocess.*`` ...) with an error naming it.

A hostile file cannot make it hang or allocate without bound either (:class:`ReadLimits`):
only regular files are read; the pickle's size, the number of tensors, the module nesting
depth and every storage's size are checked against limits and against the archive's
directory before anything is read; each tensor view must lie inside its storage (no
stride-0 or overlapping views that would expand a few bytes into gigabytes); shared or
cyclic module graphs are refused.
"""
from __future__ import annotations

import _compat_pickle
import io
import math
import os
import pickle
import stat
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (the message names it)."""


class CheckpointLimitError(ValueError):
    """The file exceeds a :class:`ReadLimits` bound or is malformed in a way that would cost
    unbounded time or memory (the message names the limit)."""


@dataclass(frozen=True)
class ReadLimits:
    """Bounds for reading one checkpoint. The defaults hold every official PRBNet / YOLOv7
    checkpoint with room to spare (the largest has 2,314 tensors, 230 M parameters, module
    nesting depth 6 and a data.pkl of a few MB)."""

    max_file_bytes: int = 8 << 30
    max_pickle_bytes: int = 64 << 20
    max_tensors: int = 100_000
    max_depth: int = 32

STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
TORCH_DTYPES = {"float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool",
                "float", "half", "double", "long", "int"}
# The classes an official checkpoint can hold, by module path (PRBNet / SMILEtrack / YOLOv7:
# models/common.py, models/yolo.py, models/experimental.py, utils/activations.py, and the
# torch.nn classes they use). Each becomes an inert stand-in; any other class is refused.
OFFICIAL_CLASSES: dict[str, frozenset[str]] = {
    "models.common": frozenset("""
        MP SP ReOrg Concat Chuncat Shortcut Foldcut Conv RobustConv RobustConv2 GhostConv Stem DownC SPP SPPF
        Bottleneck Res ResX Ghost SPPCSPC GhostSPPCSPC GhostStem BottleneckCSPA BottleneckCSPB BottleneckCSPC
        BottleneckMSP BottleneckMSPA BottleneckMSPB ResCSPA ResCSPB ResCSPC ResXCSPA ResXCSPB ResXCSPC
        GhostCSPA GhostCSPB GhostCSPC ImplicitA ImplicitM RepConv RepBottleneck RepBottleneckCSPA
        RepBottleneckCSPB RepBottleneckCSPC RepRes RepResCSPA RepResCSPB RepResCSPC RepResX RepResXCSPA
        RepResXCSPB RepResXCSPC TransformerLayer TransformerBlock Focus Contract Expand NMS Classify
        RBBlockA RBBlockB RBBlockC CORE BFM BFMBlockB CBAM ChannelAttention SpatialAttention
        RBBlockTiny BFMTiny""".split()),
    "models.yolo": frozenset("Model Detect IDetect IAuxDetect IBin IKeypoint".split()),
    "models.experimental": frozenset("CrossConv Sum MixConv2d Ensemble ORT_NMS TRT_NMS".split()),
    "utils.activations": frozenset("SiLU Hardswish Mish MemoryEfficientMish FReLU".split()),
}
TORCH_NN_CLASSES = frozenset("""
    Conv2d ConvTranspose2d BatchNorm2d SyncBatchNorm LayerNorm GroupNorm Linear Dropout Identity
    SiLU LeakyReLU ReLU ReLU6 Hardswish Sigmoid Tanh Mish GELU MaxPool2d AvgPool2d AdaptiveAvgPool2d
    AdaptiveMaxPool2d Upsample Sequential ModuleList ModuleDict MultiheadAttention NonDynamicallyQuantizableLinear
    Flatten""".split())


def _allowed_class(module: str, name: str) -> bool:
    if module in OFFICIAL_CLASSES:
        return name in OFFICIAL_CLASSES[module]
    return module.startswith("torch.nn.modules.") and name in TORCH_NN_CLASSES


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


def _ints(values: Any, what: str) -> tuple[int, ...]:
    if not (isinstance(values, (tuple, list)) and len(values) <= 8
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)):
        raise CheckpointLimitError(f"tensor {what} must be at most 8 non-negative ints, got {values!r}")
    return tuple(values)


def _rebuild_tensor(storage: torch.Tensor, offset: int, size, stride, *_unused) -> torch.Tensor:
    """A copy of the view, after checking that it lies inside its storage and that no element
    is shared (a stride-0 or overlapping view would let a few stored bytes grow unbounded)."""
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    (offset,) = _ints((offset,), "offset")
    if len(size) != len(stride):
        raise CheckpointLimitError(f"tensor size {size} and stride {stride} differ in length")
    numel = math.prod(size)
    if numel:
        if any(st == 0 for n, st in zip(size, stride, strict=True) if n > 1):
            raise CheckpointLimitError(f"refusing a zero-stride tensor view (size {size}, stride {stride})")
        extent = offset + sum((n - 1) * st for n, st in zip(size, stride, strict=True)) + 1
        if extent > storage.numel() or numel > storage.numel():
            raise CheckpointLimitError(f"tensor view (offset {offset}, size {size}, stride {stride}) exceeds its "
                                       f"storage of {storage.numel()} elements")
        dims = sorted((st, n) for n, st in zip(size, stride, strict=True) if n > 1)
        span = 1
        for st, n in dims:  # each dimension must step past the previous ones: no element twice
            if st < span:
                raise CheckpointLimitError(f"refusing an overlapping tensor view (size {size}, stride {stride})")
            span = st * n
    return torch.as_strided(storage, size, stride, offset).clone()


def _rebuild_parameter(data: torch.Tensor, *_unused) -> torch.Tensor:
    return data


def _numpy_scalar(dtype: np.dtype, raw: bytes):
    if not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
        raise CheckpointLimitError(f"numpy scalar of {dtype} with {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype)[0].item()


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles spell ``bytes`` as ``_codecs.encode(text, 'latin1')``."""
    if encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_dtype(name: str, *_unused) -> np.dtype:
    if not (isinstance(name, str) and len(name) <= 8 and name.isalnum()):
        raise UnsafeCheckpointError(f"refusing numpy dtype {name!r}")
    dtype = np.dtype(name)
    if dtype.kind not in "biuf":
        raise UnsafeCheckpointError(f"refusing numpy dtype {name!r}")
    return dtype


class _StorageArchive:
    """The ``data/`` entries of a torch zip, read only when the pickle asks for one; every
    entry's size is known from the directory and was checked against the file beforehand."""

    def __init__(self, archive: zipfile.ZipFile | None, root: str):
        self.archive, self.root = archive, root
        self.cache: dict[str, torch.Tensor] = {}

    def get(self, key: str, dtype: torch.dtype, numel: Any) -> torch.Tensor:
        if key in self.cache:
            return self.cache[key]
        if self.archive is None:
            raise pickle.UnpicklingError(f"the pickle references storage {key!r} but the file is not a torch archive")
        try:
            info = self.archive.getinfo(f"{self.root}data/{key}")
        except KeyError:
            raise pickle.UnpicklingError(f"checkpoint references storage {key!r} that the archive lacks") from None
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if isinstance(numel, int) and numel * itemsize != info.file_size:
            raise CheckpointLimitError(f"storage {key!r}: the pickle declares {numel} x {itemsize} bytes, the archive "
                                       f"holds {info.file_size}")
        raw = bytearray(self.archive.read(info))
        storage = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.zeros(0, dtype=torch.uint8)
        self.cache[key] = storage.view(dtype)
        return self.cache[key]


class RestrictedUnpickler(pickle.Unpickler):
    """Allows containers, tensor rebuilding, storages, dtypes and the official model classes
    (as inert stand-ins); everything else raises :class:`UnsafeCheckpointError`."""

    def __init__(self, file, storages: _StorageArchive | None = None, limits: ReadLimits = ReadLimits()):
        super().__init__(file)
        self._storages = storages or _StorageArchive(None, "")
        self._limits = limits
        self._tensors = 0
        self._stand_ins: dict[tuple[str, str], type] = {}

    def _count_tensor(self, *args):
        self._tensors += 1
        if self._tensors > self._limits.max_tensors:
            raise CheckpointLimitError(f"more than {self._limits.max_tensors} tensors (ReadLimits.max_tensors)")
        return _rebuild_tensor(*args)

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
            return self._count_tensor
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
        if _allowed_class(module, name):
            key = (module, name)
            if key not in self._stand_ins:
                self._stand_ins[key] = type(name, (InertModule,), {"source_class": f"{module}.{name}"})
            return self._stand_ins[key]
        raise UnsafeCheckpointError(f"refusing to load global '{module}.{name}': not a tensor, container or "
                                    f"official model class this converter knows")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafeCheckpointError(f"unsupported persistent id {pid!r}")
        return self._storages.get(str(pid[2]), pid[1].dtype, pid[4] if len(pid) >= 5 else None)


def _open_regular(path: Path, limits: ReadLimits) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file within the size limit (a symlink to
    one is fine; /dev/zero, fifos and directories are not)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before open(): a fifo would block it
            raise CheckpointLimitError(f"{path}: not a regular file")
    except OSError as err:
        raise OSError(f"{path}: {err.strerror}") from None
    handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
    try:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointLimitError(f"{path}: not a regular file")
        if info.st_size > limits.max_file_bytes:
            raise CheckpointLimitError(f"{path}: {info.st_size} bytes exceeds ReadLimits.max_file_bytes "
                                       f"({limits.max_file_bytes})")
    except BaseException:
        handle.close()
        raise
    return handle


def _check_archive(path: Path, archive: zipfile.ZipFile, file_size: int, limits: ReadLimits) -> tuple[str, str]:
    """(name of data.pkl, archive root) after checking the directory against the limits:
    data.pkl within max_pickle_bytes, the storages together no larger than the file itself
    (a compressed entry could otherwise expand without bound)."""
    infos = archive.infolist()
    pickles = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
    if len(pickles) != 1:
        raise ValueError(f"{path}: expected one data.pkl in the torch archive, found {len(pickles)}")
    pkl = pickles[0]
    if pkl.file_size > limits.max_pickle_bytes:
        raise CheckpointLimitError(f"{path}: data.pkl of {pkl.file_size} bytes exceeds ReadLimits.max_pickle_bytes "
                                   f"({limits.max_pickle_bytes})")
    root = pkl.filename[: -len("data.pkl")]
    storage = sum(i.file_size for i in infos if i.filename.startswith(root + "data/"))
    if storage > file_size:
        raise CheckpointLimitError(f"{path}: the archive declares {storage} bytes of tensor storage in a file of "
                                   f"{file_size} bytes (compressed storages are refused)")
    order = root + "byteorder"
    if order in archive.namelist():
        info = archive.getinfo(order)
        if info.file_size > 16 or archive.read(info).decode(errors="replace").strip() != "little":
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
    return pkl.filename, root


def read_checkpoint(path: str | Path, limits: ReadLimits = ReadLimits()) -> Any:
    """Unpickle a torch zip checkpoint (or a bare pickle) with the restricted unpickler."""
    path = Path(path)
    with _open_regular(path, limits) as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            if zipfile.is_zipfile(handle):
                handle.seek(0)
                with zipfile.ZipFile(handle) as archive:
                    name, root = _check_archive(path, archive, size, limits)
                    data = archive.read(name)
                    return _unpickle(path, data, _StorageArchive(archive, root), limits)
            handle.seek(0)
            if size > limits.max_pickle_bytes:
                raise CheckpointLimitError(f"{path}: a bare pickle of {size} bytes exceeds "
                                           f"ReadLimits.max_pickle_bytes ({limits.max_pickle_bytes})")
            return _unpickle(path, handle.read(), None, limits)
        except zipfile.BadZipFile as err:
            raise ValueError(f"{path}: corrupt torch archive: {err}") from err


def _unpickle(path: Path, data: bytes, storages: _StorageArchive | None, limits: ReadLimits) -> Any:
    try:
        return RestrictedUnpickler(io.BytesIO(data), storages, limits).load()
    except (UnsafeCheckpointError, CheckpointLimitError):
        raise
    except RecursionError:
        raise CheckpointLimitError(f"{path}: the pickle nests too deeply") from None
    except Exception as err:  # malformed data reaching the allowed rebuild helpers
        raise ValueError(f"{path}: unreadable checkpoint: {type(err).__name__}: {err}") from err


def _module_tensors(root: InertModule, limits: ReadLimits) -> dict[str, torch.Tensor]:
    """The state dict of an inert module tree, walked iteratively: depth-limited, each module
    visited once (a module reachable twice, e.g. a cycle or a shared sub-graph, is refused)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    stack: list[tuple[InertModule, str, int]] = [(root, "", 0)]
    while stack:
        module, prefix, depth = stack.pop()
        if id(module) in seen:
            raise CheckpointLimitError(f"module {prefix[:-1] or '<root>'} ({module.source_class}) is reachable "
                                       f"twice: cyclic or shared module graphs are not checkpoints of a network")
        seen.add(id(module))
        if depth > limits.max_depth:
            raise CheckpointLimitError(f"modules nest deeper than {limits.max_depth} at {prefix[:-1]} "
                                       f"(ReadLimits.max_depth)")
        state = module.__dict__
        skip = state.get("_non_persistent_buffers_set") or ()
        for group in ("_parameters", "_buffers"):
            entries = state.get(group) or {}
            if not isinstance(entries, dict):
                raise ValueError(f"module {prefix[:-1] or '<root>'}: {group} is not a dict")
            for name, value in entries.items():
                if value is None or (group == "_buffers" and name in skip):
                    continue
                if not isinstance(value, torch.Tensor):
                    raise ValueError(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
                out[prefix + str(name)] = value
                if len(out) > limits.max_tensors:
                    raise CheckpointLimitError(f"more than {limits.max_tensors} tensors (ReadLimits.max_tensors)")
        children = state.get("_modules") or {}
        if not isinstance(children, dict):
            raise ValueError(f"module {prefix[:-1] or '<root>'}: _modules is not a dict")
        for name, child in reversed(list(children.items())):
            if child is None:
                continue
            if not isinstance(child, InertModule):
                raise ValueError(f"unexpected object {type(child).__name__} at module {prefix}{name}")
            stack.append((child, f"{prefix}{name}.", depth + 1))
    return out


def plain_spec(value: Any, where: str = "yaml", depth: int = 0) -> Any:
    """``value`` if it is plain yaml data (dict / list / str / number / bool / None), small and
    at most 8 levels deep, as an architecture spec is; else a clear error naming where."""
    if depth > 8:
        raise CheckpointLimitError(f"{where}: the architecture spec nests deeper than 8 levels")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        if len(value) > 1000:
            raise CheckpointLimitError(f"{where}: a string of {len(value)} characters")
        return value
    if isinstance(value, (list, tuple)):
        if len(value) > 5000:
            raise CheckpointLimitError(f"{where}: a list of {len(value)} items")
        return [plain_spec(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if len(value) > 100 or not all(isinstance(k, str) for k in value):
            raise CheckpointLimitError(f"{where}: a mapping must have at most 100 string keys")
        return {k: plain_spec(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    raise ValueError(f"{where}: {type(value).__name__} is not plain yaml data")


def extract_model(checkpoint: Any, limits: ReadLimits = ReadLimits()) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, architecture spec) of the checkpoint's EMA model if present, else its model."""
    model = checkpoint
    if isinstance(checkpoint, dict):
        model = next((checkpoint[k] for k in ("ema", "model") if isinstance(checkpoint.get(k), InertModule)), None)
        if model is None:
            keys = sorted(map(str, checkpoint))[:20]
            raise ValueError(f"checkpoint dict has no 'ema' or 'model' module (keys: {keys})")
    if not isinstance(model, InertModule):
        raise ValueError(f"checkpoint holds {type(model).__name__}, not a pickled model")
    spec = model.__dict__.get("yaml")
    if not isinstance(spec, dict):
        raise ValueError(f"the pickled {model.source_class} carries no architecture yaml dict")
    tensors = _module_tensors(model, limits)
    if not tensors:
        raise ValueError("the pickled model holds no tensors")
    return tensors, plain_spec(spec)
