"""The JSON model card that travels with every safetensors weights file.

The card is what makes a bare tensor file usable: it names the architecture and
the pixel normalisation the weights were trained with, and records where they
came from (training data, settings) and how well they did (metrics).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import EmbedderConfigError, WeightsError
from .slm import SlmSpec

CARD_FORMAT = "smiletrack_ros/slm-weights"
CARD_VERSION = 1
STORAGE_DTYPES = ("float32", "float16")
_ARCH_KEYS = {"backbone", "embedding_dim"}
_INPUT_KEYS = {"height", "width", "channel_order", "mean", "std"}
_INFERENCE_KEYS = {"flip_average"}
MAX_CARD_BYTES = 1 << 20
MAX_CARD_DEPTH = 16
_TOP_KEYS = {"format", "version", "name", "description", "architecture", "input", "inference", "storage_dtype",
             "training", "metrics"}


@dataclass(frozen=True)
class ModelCard:
    """``flip_average``: the weights were selected for embedding each crop as the mean
    of it and its mirror image, so the embedder does that whenever the card says so
    (the optional ``inference`` section; absent means False)."""

    spec: SlmSpec
    name: str = "slm"
    description: str = ""
    storage_dtype: str = "float32"
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    flip_average: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.flip_average, bool):
            raise EmbedderConfigError("flip_average", f"must be true or false, got {self.flip_average!r}")
        if self.storage_dtype not in STORAGE_DTYPES:
            raise EmbedderConfigError("storage_dtype", f"must be one of {STORAGE_DTYPES}, got {self.storage_dtype!r}")

    def with_metrics(self, **metrics: Any) -> ModelCard:
        return replace(self, metrics={**self.metrics, **metrics})

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "format": CARD_FORMAT,
            "version": CARD_VERSION,
            "name": self.name,
            "description": self.description,
            "architecture": {"backbone": spec.backbone, "embedding_dim": spec.embedding_dim},
            "input": {"height": spec.input_height, "width": spec.input_width, "channel_order": spec.channel_order,
                      "mean": list(spec.mean), "std": list(spec.std)},
            "inference": {"flip_average": self.flip_average},
            "storage_dtype": self.storage_dtype,
            "training": self.training,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "model card") -> ModelCard:
        def need(cond: bool, what: str) -> None:
            if not cond:
                raise WeightsError(f"{source}: {what}")

        need(isinstance(data, dict), "must be a JSON object")
        need(data.get("format") == CARD_FORMAT, f"format: expected {CARD_FORMAT!r}, got {data.get('format')!r}")
        need(data.get("version") == CARD_VERSION, f"version: expected {CARD_VERSION}, got {data.get('version')!r}")
        unknown = set(data) - _TOP_KEYS
        need(not unknown, f"unknown fields {sorted(unknown)}")
        arch, inp = data.get("architecture"), data.get("input")
        need(isinstance(arch, dict) and set(arch) == _ARCH_KEYS, f"architecture: needs exactly {sorted(_ARCH_KEYS)}")
        need(isinstance(inp, dict) and set(inp) == _INPUT_KEYS, f"input: needs exactly {sorted(_INPUT_KEYS)}")
        inference = data.get("inference", {})
        need(isinstance(inference, dict) and set(inference) <= _INFERENCE_KEYS,
             f"inference: may hold only {sorted(_INFERENCE_KEYS)}")
        try:
            spec = SlmSpec(backbone=arch["backbone"], embedding_dim=arch["embedding_dim"],
                           input_height=inp["height"], input_width=inp["width"],
                           channel_order=inp["channel_order"], mean=tuple(inp["mean"]), std=tuple(inp["std"]))
            return cls(spec=spec, name=str(data.get("name", "slm")), description=str(data.get("description", "")),
                       storage_dtype=data.get("storage_dtype", "float32"),
                       training=dict(data.get("training", {})), metrics=dict(data.get("metrics", {})),
                       flip_average=inference.get("flip_average", False))
        except (EmbedderConfigError, TypeError, ValueError) as exc:
            raise WeightsError(f"{source}: {exc}") from exc

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"{path}: model card not found (every .safetensors needs its .json card)")
        return cls.from_dict(read_card_json(path), str(path))


def json_depth(data: Any) -> int:
    """Nesting depth of parsed JSON (0 for a scalar), without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
    return deepest


def read_card_json(path: Path) -> Any:
    """A model card's JSON, bounded: at most ``MAX_CARD_BYTES`` and ``MAX_CARD_DEPTH`` levels,
    so a hostile card is a clear error, never a RecursionError or a huge read."""
    try:
        size = path.stat().st_size
        if not path.is_file() or size > MAX_CARD_BYTES:
            raise WeightsError(f"{path}: model card must be a regular file of at most {MAX_CARD_BYTES} bytes "
                               f"(got {size} bytes)")
        data = json.loads(path.read_bytes())
    except RecursionError as exc:
        raise WeightsError(f"{path}: model card JSON is nested too deeply (at most {MAX_CARD_DEPTH} levels)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: unreadable model card ({exc})") from exc
    if json_depth(data) > MAX_CARD_DEPTH:
        raise WeightsError(f"{path}: model card JSON is nested too deeply (at most {MAX_CARD_DEPTH} levels)")
    return data
