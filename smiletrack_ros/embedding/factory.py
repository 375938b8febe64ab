"""``build_embedder(config)``: the one way to get an embedder of any backend.

Every embedder is called as ``embedder(image_bgr, boxes) -> (N, dim)`` float32 unit
vectors (one batched pass per frame) and has ``dim``, ``device`` and ``name``.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from .config import EmbedderConfig


class AppearanceEmbedder(Protocol):
    dim: int
    name: str

    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...


def build_embedder(config: EmbedderConfig | Mapping[str, Any]) -> AppearanceEmbedder:
    """A config or a mapping of settings (``EmbedderConfig.from_mapping``, e.g. the node's
    ``embedder.*`` parameters) -> the embedder of its ``backend``. Runtimes are imported
    only for the backend asked for (openvino is an optional extra)."""
    if not isinstance(config, EmbedderConfig):
        config = EmbedderConfig.from_mapping(config)
    if config.backend == "slm":
        from .embedder import Embedder

        return Embedder.from_config(config)
    if config.backend == "osnet":
        from .osnet import OSNetEmbedder

        return OSNetEmbedder(config)
    if config.backend == "onnx" and onnx_runtime(config) == "onnxruntime":
        from .onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(config)
    from .openvino_embedder import OpenVinoEmbedder

    return OpenVinoEmbedder(config)


def onnx_runtime(config: EmbedderConfig) -> str:
    """The onnx backend's runtime: as set, or for "auto" OpenVINO for bf16, or on the CPU when it is installed
    (fp32, the same outputs within float rounding; OSNet x0.25 at one thread: ~3x ONNX Runtime's
    crops/s here), else ONNX Runtime (also wherever a CUDA device is asked for or found)."""
    if config.runtime != "auto":
        return config.runtime
    if config.precision == "bf16":
        return "openvino"
    if config.device != "cpu":
        import onnxruntime as ort

        if config.device != "auto" or "CUDAExecutionProvider" in ort.get_available_providers():
            return "onnxruntime"
    return "openvino" if importlib.util.find_spec("openvino") is not None else "onnxruntime"
