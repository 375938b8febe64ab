"""The one typed configuration of every embedder backend, validated once.

``backend`` picks the implementation (``build_embedder``): ``slm`` (ours, default),
``osnet`` (torch OSNet on torchreid state dicts), ``onnx`` (any re-ID ONNX model, ONNX
Runtime) or ``openvino`` (OpenVINO IR, optional extra). The preprocessing overrides
(``input_height`` ... ``std``) beat what the weights' card or the model says; None keeps
those. ``EmbedderConfig.from_mapping`` takes the node's ``embedder.*`` parameter values.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..devices import DEVICE_SYNTAX, is_device_setting
from .errors import EmbedderConfigError
from .preprocessing import CHANNEL_ORDERS, MAX_INPUT_SIDE, Preprocessing, is_count, three_floats

BACKENDS = ("slm", "osnet", "onnx", "openvino")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
# what each backend's network may run in ("auto" chooses among them: factory.py)
BACKEND_RUNTIMES = {"slm": ("torch", "onnxruntime", "openvino"), "osnet": ("torch", "onnxruntime", "openvino"),
                    "onnx": ("onnxruntime", "openvino"), "openvino": ("openvino",)}
DEFAULT = "default"
MAX_BATCH = 4096
MAX_THREADS = 1024
# ROS parameters cannot be None: these values mean "not set" in ``from_mapping``.
_UNSET = ("", "card", None)


@dataclass(frozen=True)
class EmbedderConfig:
    """``weights``: for ``slm`` "default" (the weights shipped in the package), our
    ``.safetensors`` (+ ``.json`` card) or an official SMILEtrack checkpoint, None for an
    untrained seeded network of ``backbone``; for ``osnet`` a torchreid state dict (None:
    untrained, seeded, of ``variant``); for ``onnx`` a ``.onnx``, for ``openvino`` an
    ``.xml`` (each with an optional ``.json`` sidecar card beside it).
    ``precision``: "auto" = fp16 on CUDA, fp32 on the CPU; "fp16" needs CUDA (torch) or a
    float16 model (onnx); "bf16": bfloat16 on the CPU in OpenVINO (runtime openvino or auto),
    several times the crops/s on CPUs with bf16 units (AMX, AVX512-BF16), embeddings within
    about 1e-4 in cosine of fp32's. ``flip_average`` (torch backends): None = as the card says.
    ``threads``: CPU threads of ONNX Runtime / OpenVINO (0: the runtime's default).
    ``runtime``: what runs the network. The torch backends: "torch", "onnxruntime" or
    "openvino" (an ONNX export of the same network and weights, made in memory at load, on the
    CPU); "auto": onnxruntime on the CPU (measured faster), openvino for bf16, torch on CUDA.
    The onnx backend: "onnxruntime" or "openvino" (the same .onnx file read by OpenVINO, fp32
    on the CPU unless bf16; the openvino extra);
    "auto": openvino on the CPU when installed (OSNet x0.25: ~3x ONNX Runtime's crops/s at one
    thread), else onnxruntime. ``parallel_calls``: calls that may run at once (the node's
    ``pipeline.embed_split``): OpenVINO gets that many streams of ``threads`` threads each.
    """

    backend: str = "slm"
    weights: str | Path | None = DEFAULT
    device: str = "auto"
    precision: str = "auto"
    max_batch: int = 256
    warmup: bool = True
    input_height: int | None = None
    input_width: int | None = None
    channel_order: str | None = None
    scale: float | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    flip_average: bool | None = None
    sampling_ratio: int = 1
    backbone: str = "resnet18"
    variant: str | None = None
    seed: int = 0
    threads: int = 0
    runtime: str = "auto"
    parallel_calls: int = 1

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise EmbedderConfigError("backend", f"expected one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.weights is not None and not isinstance(self.weights, (str, Path)):
            raise EmbedderConfigError("weights", f"expected a path, got {self.weights!r}")
        if self.weights is None and self.backend in ("onnx", "openvino"):
            raise EmbedderConfigError("weights", f"the {self.backend} backend needs a model file")
        if self.weights == DEFAULT and self.backend != "slm":
            raise EmbedderConfigError("weights", f"only the slm backend ships default weights; give the "
                                                 f"{self.backend} model file")
        if not is_device_setting(self.device):
            raise EmbedderConfigError("device", f"expected {DEVICE_SYNTAX}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise EmbedderConfigError("precision", f"expected 'auto', 'fp32', 'fp16' or 'bf16', got {self.precision!r}")
        if not is_count(self.max_batch, MAX_BATCH):
            raise EmbedderConfigError("max_batch", f"must be an int in 1..{MAX_BATCH}, got {self.max_batch!r}")
        if not isinstance(self.warmup, bool):
            raise EmbedderConfigError("warmup", f"must be true or false, got {self.warmup!r}")
        for name in ("input_height", "input_width"):
            value = getattr(self, name)
            if value is not None and not is_count(value, MAX_INPUT_SIDE):
                raise EmbedderConfigError(name, f"must be an int in 1..{MAX_INPUT_SIDE}, got {value!r}")
        if self.channel_order is not None and self.channel_order not in CHANNEL_ORDERS:
            raise EmbedderConfigError("channel_order", f"must be 'bgr' or 'rgb', got {self.channel_order!r}")
        if self.mean is not None:
            object.__setattr__(self, "mean", three_floats("mean", self.mean))
        if self.std is not None:
            object.__setattr__(self, "std", three_floats("std", self.std, positive=True))
        if self.scale is not None:
            Preprocessing(scale=self.scale)  # the one scale check
        if self.flip_average is not None and not isinstance(self.flip_average, bool):
            raise EmbedderConfigError("flip_average", f"expected None, True or False, got {self.flip_average!r}")
        if self.flip_average and self.backend not in ("slm", "osnet"):
            raise EmbedderConfigError("flip_average", "only the torch backends (slm, osnet) average mirrored crops")
        if not is_count(self.sampling_ratio, 64):
            raise EmbedderConfigError("sampling_ratio", f"must be an int in 1..64, got {self.sampling_ratio!r}")
        if not (self.threads == 0 or is_count(self.threads, MAX_THREADS)):
            raise EmbedderConfigError("threads", f"must be an int in 0..{MAX_THREADS}, got {self.threads!r}")
        if self.runtime not in RUNTIMES:
            raise EmbedderConfigError("runtime", f"expected one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.runtime != "auto" and self.runtime not in BACKEND_RUNTIMES[self.backend]:
            raise EmbedderConfigError("runtime", f"the {self.backend} backend runs in "
                                                 f"{' or '.join(BACKEND_RUNTIMES[self.backend])}, not {self.runtime}")
        if self.precision == "bf16" and self.runtime not in ("auto", "openvino"):
            raise EmbedderConfigError("precision", f"bf16 runs in OpenVINO on the CPU (runtime openvino or auto), "
                                                   f"not in {self.runtime}")
        if not is_count(self.parallel_calls, 64):
            raise EmbedderConfigError("parallel_calls", f"must be an int in 1..64, got {self.parallel_calls!r}")
        if self.backend == "slm" and self.overrides():
            name = next(iter(self.overrides()))
            raise EmbedderConfigError(f"input_{name}" if name in ("height", "width") else name,
                                      "the slm backend takes its preprocessing from its model card")

    def overrides(self) -> dict[str, Any]:
        """The preprocessing overrides that are set, as ``Preprocessing`` field names."""
        given = {"height": self.input_height, "width": self.input_width, "channel_order": self.channel_order,
                 "scale": self.scale, "mean": self.mean, "std": self.std}
        return {k: v for k, v in given.items() if v is not None}

    def preprocessing(self, base: Preprocessing) -> Preprocessing:
        """``base`` (from the card or the backend's convention) with the overrides applied."""
        return base.merged(**self.overrides())

    @classmethod
    def from_spec(cls, spec: str, **more: Any) -> EmbedderConfig:
        """``BACKEND[:WEIGHTS]`` (the command lines' form, e.g. ``osnet:osnet_x0_25_msmt17.pth``,
        ``openvino:person-reidentification-retail-0288.xml``, ``slm`` = ``slm:default``);
        ``untrained`` as WEIGHTS is a seeded untrained network (slm, osnet)."""
        backend, _, weights = str(spec).partition(":")
        if backend not in BACKENDS:
            raise EmbedderConfigError("backend", f"{spec!r}: expected BACKEND[:WEIGHTS] with BACKEND one of "
                                                 f"{', '.join(BACKENDS)}")
        path: str | None = weights or DEFAULT
        if weights == "untrained":
            path = None
        return cls(backend=backend, weights=path, **more)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EmbedderConfig:
        """From the node's parameters: keys with or without the ``embedder.`` prefix; "", 0,
        [] and "card" mean "not set" for the optional fields (an empty ``weights`` is "default",
        which only the slm backend has); ``fp16`` (bool) is the older
        spelling of ``precision`` (True: "auto", False: "fp32"), and ``bf16`` (bool) True means
        "bf16" whatever ``fp16`` says; ``enabled`` is the node's."""
        known = {f.name for f in fields(cls)}
        out: dict[str, Any] = {}
        for key, value in values.items():
            name = key.removeprefix("embedder.")
            if name == "enabled":
                continue
            if name in ("fp16", "bf16"):
                if not isinstance(value, bool):
                    raise EmbedderConfigError(name, f"must be true or false, got {value!r}")
                if name == "bf16" and value:
                    out["precision"] = "bf16"
                elif name == "fp16":
                    out.setdefault("precision", "auto" if value else "fp32")
                continue
            if name not in known:
                raise EmbedderConfigError(name, f"unknown embedder setting; known: {', '.join(sorted(known))}")
            if name in ("input_height", "input_width", "scale") and value in (0, 0.0) and not isinstance(value, bool):
                continue
            if name in ("mean", "std") and hasattr(value, "__len__") and len(value) == 0:
                continue
            if name in ("weights", "channel_order", "variant", "flip_average") and value in _UNSET:
                continue
            if name in ("mean", "std") and not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
                value = tuple(value)
            out[name] = value
        return cls(**out)
