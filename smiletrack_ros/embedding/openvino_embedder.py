"""The ``openvino`` backend (optional extra: ``pip install smiletrack_ros[openvino]``):
OpenVINO IR re-ID models such as Intel's person-reidentification-retail-0288 / 0286,
the usual runtime on Intel robot computers, and the onnx backend's .onnx files with
``runtime: openvino``. Preprocessing defaults to the Open Model Zoo convention for IR
(BGR 0..255, no normalisation) and to the onnx backend's for .onnx files; the sidecar
card or overrides change it. The model is reshaped to a dynamic batch where it allows
it, else fed padded chunks. fp32 unless fp16 or bf16 is asked for (OpenVINO's own
default on CPUs with bf16 units is bf16, which changes the embeddings). The torch backends
(slm, osnet) run here too with ``runtime: openvino``: their network exported into memory at
load (``TorchNetOpenVino``); ``precision: bf16`` is the reason to: on CPUs with bf16 units
(AMX, AVX512-BF16) the SLM runs several times faster, with embeddings within about 1e-4 in
cosine of fp32's. Each calling thread has its own infer request, on one
of ``parallel_calls`` streams, so calls run at once.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from .array_embedder import ArrayEmbedder, check_dim, check_model_file, fixed_batch, model_input_size
from .config import EmbedderConfig
from .errors import EmbedderConfigError, WeightsError
from .preprocessing import IMAGENET_REID, RAW_BGR_REID
from .reid_card import ReidCard

log = logging.getLogger(__name__)
_PRECISION_HINTS = {"auto": "f32", "fp32": "f32", "fp16": "f16", "bf16": "bf16"}


def import_openvino(config: EmbedderConfig):
    """The openvino module, or a config error naming the setting that asked for it."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise EmbedderConfigError("backend" if config.backend == "openvino" else "runtime",
                                  "openvino is an optional extra: pip install 'smiletrack_ros[openvino]' "
                                  "(or pip install openvino)") from exc
    if config.device.startswith("cuda"):
        raise EmbedderConfigError("device", f"{config.device!r}: OpenVINO runs on Intel devices; use cpu or auto")
    return ov


def compile_on_cpu(core, model, config: EmbedderConfig, what: str):
    """``model`` compiled for the CPU at the config's precision, threads and streams."""
    if config.precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        log.warning("embedder precision bf16: this CPU has no bf16 units; OpenVINO runs %s in fp32", what)
    properties: dict[str, object] = {"INFERENCE_PRECISION_HINT": _PRECISION_HINTS[config.precision],
                                     "NUM_STREAMS": config.parallel_calls}
    if config.threads:
        properties["INFERENCE_NUM_THREADS"] = config.threads * config.parallel_calls
    try:
        return core.compile_model(model, "CPU", properties)
    except Exception as exc:  # noqa: BLE001 - the runtime raises RuntimeError subclasses
        raise WeightsError(f"{what}: OpenVINO could not compile the model ({type(exc).__name__}: {exc})") from exc


class _Requests:
    """One infer request per calling thread (a request runs one call at a time)."""

    def __init__(self, compiled) -> None:
        self.compiled, self._local = compiled, threading.local()

    def run(self, batch: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        request.infer({0: batch})
        return request.get_output_tensor(0).data.copy()


class TorchNetOpenVino:
    """A torch network run by OpenVINO on the CPU, exported into memory once (no file):
    ``(B, 3, H, W)`` float32 tensors in, ``(B, D)`` tensors out, at the config's precision."""

    def __init__(self, net, input_size: tuple[int, int], config: EmbedderConfig) -> None:
        from .onnx_embedder import onnx_bytes

        core = import_openvino(config).Core()
        self._requests = _Requests(compile_on_cpu(core, core.read_model(onnx_bytes(net, input_size)), config,
                                                  f"the {config.backend} network"))

    def __call__(self, crops):
        import torch

        return torch.from_numpy(self._requests.run(crops.numpy()))


def _dims(partial_shape) -> list:
    """An OpenVINO PartialShape as a list of ints (static dims) and None (dynamic ones)."""
    return [d.get_length() if d.is_static else None for d in partial_shape]


class OpenVinoEmbedder(ArrayEmbedder):
    runtime = "openvino"

    def __init__(self, config: EmbedderConfig) -> None:
        if config.backend not in ("openvino", "onnx"):
            raise EmbedderConfigError("backend", f"OpenVinoEmbedder runs the openvino and onnx backends, not "
                                                 f"{config.backend!r}")
        ov = import_openvino(config)
        self.config, self.device = config, "cpu"
        path = check_model_file(str(config.weights), (".xml",) if config.backend == "openvino" else (".onnx",))
        card = ReidCard.beside(path)
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # noqa: BLE001 - the runtime raises RuntimeError subclasses for corrupt IR
            kind = "OpenVINO IR" if config.backend == "openvino" else "ONNX"
            raise WeightsError(f"{path}: not a loadable {kind} model ({type(exc).__name__}: {exc})") from exc
        if len(model.inputs) != 1 or not model.outputs:
            raise WeightsError(f"{path}: expected one image input and an output, got {len(model.inputs)} inputs")
        shape = _dims(model.inputs[0].get_partial_shape())
        convention = RAW_BGR_REID if config.backend == "openvino" else IMAGENET_REID
        self.preprocessing = model_input_size(config, shape, convention, card, str(path))
        self.batch = fixed_batch(shape)
        if self.batch is not None:
            try:  # one call per chunk where the model allows a dynamic batch
                model.reshape([-1, 3, *self.preprocessing.size])
                self.batch = None
            except Exception:  # noqa: BLE001 - a model that cannot be reshaped keeps its fixed batch
                pass
        else:
            try:
                model.reshape([-1, 3, *self.preprocessing.size])
            except Exception as exc:  # noqa: BLE001
                raise WeightsError(f"{path}: cannot take {self.preprocessing.size} inputs ({exc})") from exc
        self._requests = _Requests(compile_on_cpu(core, model, config, str(path)))
        self.name = f"openvino:{path.stem}" if config.backend == "openvino" else f"onnx:{path.name}@openvino"
        out = _dims(model.outputs[0].get_partial_shape())
        self.dim = check_dim(int(np.prod(out[1:])) if all(isinstance(d, int) for d in out[1:]) else None,
                             card, str(path))
        if config.warmup:
            self._warm_up()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._requests.run(batch)
