"""The ``onnx`` backend: any re-ID ONNX model through ONNX Runtime (the CUDA provider
when the device setting asks for it or ``auto`` finds it, else the CPU).

The model takes one N x 3 x H x W float (or float16) input and gives (N, D) (or
(N, D, 1, 1)) features. H and W come from the model when fixed, else from the sidecar
card or the overrides; preprocessing defaults to the torchreid / BoxMOT convention
(RGB, /255, ImageNet mean/std). Dynamic batch: one call per chunk; fixed batch: padded.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..devices import onnx_providers
from .array_embedder import ArrayEmbedder, check_dim, check_model_file, fixed_batch, model_input_size
from .config import EmbedderConfig
from .errors import EmbedderConfigError, WeightsError
from .preprocessing import IMAGENET_REID
from .reid_card import ReidCard

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OnnxEmbedder(ArrayEmbedder):
    runtime = "onnxruntime"

    def __init__(self, config: EmbedderConfig) -> None:
        import onnxruntime as ort

        if config.backend != "onnx":
            raise EmbedderConfigError("backend", f"OnnxEmbedder is the onnx backend, not {config.backend!r}")
        self.config = config
        path = check_model_file(str(config.weights), (".onnx",))
        card = ReidCard.beside(path)
        providers, self.device = onnx_providers(config.device, ort.get_available_providers(), EmbedderConfigError,
                                                fp16=config.precision != "fp32")
        try:
            self.session = ort.InferenceSession(str(path), session_options(config.threads), providers=providers)
        except Exception as exc:  # noqa: BLE001 - InvalidProtobuf, Fail, InvalidGraph, ...: all unloadable
            raise WeightsError(f"{path}: not a loadable ONNX model ({type(exc).__name__}: {exc})") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise WeightsError(f"{path}: expected one image input and an output, got {len(inputs)} inputs, "
                               f"{len(outputs)} outputs")
        spec = inputs[0]
        if spec.type not in _DTYPES:
            raise WeightsError(f"{path}: input {spec.name!r} is {spec.type}, expected float or float16")
        self.input_dtype = _DTYPES[spec.type]
        if config.precision == "fp16" and self.input_dtype != np.float16:
            raise EmbedderConfigError("precision", "fp16: this ONNX model takes float32 input (export it in fp16)")
        self.input_name, self.output_name = spec.name, outputs[0].name
        self.preprocessing = model_input_size(config, list(spec.shape), IMAGENET_REID, card, str(path))
        self.batch = fixed_batch(list(spec.shape))
        self.name = f"onnx:{path.name}"
        out_shape = list(outputs[0].shape)
        if len(out_shape) >= 2 and isinstance(out_shape[1], int):
            self.dim = check_dim(out_shape[1], card, str(path))
        else:  # dynamic feature size: ask the model once
            self.dim = -1
            probe = np.zeros((self.batch or 1, 3, *self.preprocessing.size), self.input_dtype)
            self.dim = check_dim(int(np.prod(np.asarray(self._run(probe)).shape[1:])), card, str(path))
        if config.warmup:
            self._warm_up()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]


def session_options(threads: int):
    """ONNX Runtime session options: ``threads`` intra-op threads (0: the runtime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return options


def export_onnx(net, path: str | Path | BinaryIO, input_size: tuple[int, int],
                dynamic_batch: bool = True) -> Path | BinaryIO:
    """Export a torch re-ID network ((B, 3, H, W) -> (B, D)) to ONNX, e.g. our OSNet; the
    exported file runs in this backend with the same preprocessing card. ``path`` may be a
    binary buffer (the torch embedders' onnxruntime runtime exports into memory)."""
    import torch

    net = net.eval().float().cpu()
    example = torch.zeros(2, 3, *input_size)
    axes = {"images": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    target = path if hasattr(path, "write") else str(path)
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter (the one that needs no onnx package) warns of its deprecation and of
        # the shape checks it traces as constants; neither changes the exported graph
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(net, (example,), target, input_names=["images"], output_names=["output"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    return path if hasattr(path, "write") else Path(path)


def onnx_bytes(net, input_size: tuple[int, int]) -> bytes:
    """The ONNX export of a torch re-ID network, in memory (the torch embedders' CPU runtimes)."""
    buffer = io.BytesIO()
    export_onnx(net, buffer, input_size)
    return buffer.getvalue()


class TorchNetSession:
    """A torch network run by ONNX Runtime on the CPU: exported into memory once (no file), then
    ``(B, 3, H, W)`` float32 tensors in, ``(B, D)`` tensors out; the same network and weights, the
    outputs equal torch's within float rounding."""

    def __init__(self, net, input_size: tuple[int, int], threads: int) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(onnx_bytes(net, input_size), session_options(threads),
                                            providers=["CPUExecutionProvider"])

    def __call__(self, crops):
        import torch

        return torch.from_numpy(self.session.run(["output"], {"images": crops.numpy()})[0])
