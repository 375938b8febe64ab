"""SLM appearance embeddings (torch): ``Embedder()(image_bgr, boxes) -> (N, 128)``.

``Embedder()`` uses the weights shipped in ``weights/`` (see their model card);
``Embedder(weights=path)`` loads ours (.safetensors + .json card) or an official
SMILEtrack checkpoint; ``Embedder(weights=None)`` is an untrained seeded network.
"""
from .card import ModelCard
from .embedder import Embedder, EmbedderConfig
from .errors import EmbedderConfigError, EmbedderInputError, WeightsError
from .slm import SLMNet, SlmSpec
from .weights import DEFAULT_WEIGHTS, load_weights, save_weights

__all__ = ["DEFAULT_WEIGHTS", "Embedder", "EmbedderConfig", "EmbedderConfigError", "EmbedderInputError",
           "ModelCard", "SLMNet", "SlmSpec", "WeightsError", "load_weights", "save_weights"]
