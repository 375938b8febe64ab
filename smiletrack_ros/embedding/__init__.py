"""Appearance embeddings: ``build_embedder(config)(image_bgr, boxes) -> (N, D)`` unit vectors.

Backends (``EmbedderConfig.backend``): ``slm`` (ours, default: ``Embedder()`` uses the
weights shipped in ``weights/``, see their model card; ``Embedder(weights=path)`` loads
ours (.safetensors + .json card) or an official SMILEtrack checkpoint), ``osnet``
(torchreid state dicts), ``onnx`` (any re-ID ONNX model) and ``openvino`` (optional extra).
"""
from .card import ModelCard
from .config import BACKENDS, EmbedderConfig
from .embedder import Embedder
from .errors import EmbedderConfigError, EmbedderInputError, WeightsError
from .factory import AppearanceEmbedder, build_embedder
from .preprocessing import Preprocessing
from .slm import SLMNet, SlmSpec
from .weights import DEFAULT_WEIGHTS, load_weights, save_weights

__all__ = ["BACKENDS", "DEFAULT_WEIGHTS", "AppearanceEmbedder", "Embedder", "EmbedderConfig", "EmbedderConfigError",
           "EmbedderInputError", "ModelCard", "Preprocessing", "SLMNet", "SlmSpec", "WeightsError", "build_embedder",
           "load_weights", "save_weights"]
