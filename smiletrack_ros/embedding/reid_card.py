"""The small JSON sidecar card of a foreign re-ID model (``model.onnx`` + ``model.json``,
``model.xml`` + ``model.json``): the preprocessing it was trained with, and what it is.

  {"format": "smiletrack_ros/reid-model", "version": 1, "name": "osnet_x0_25_msmt17",
   "input": {"height": 256, "width": 128, "channel_order": "rgb", "scale": 0.00392156862745098,
             "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
   "embedding_dim": 512, "description": "...", "metrics": {...}}

Every field but ``format`` and ``version`` is optional: ``input`` fields absent keep the
backend's convention, ``embedding_dim`` (when given) must equal the model's output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .card import read_card_json
from .errors import EmbedderConfigError, WeightsError
from .preprocessing import MAX_EMBEDDING_DIM, Preprocessing, is_count

REID_CARD_FORMAT = "smiletrack_ros/reid-model"
REID_CARD_VERSION = 1
_TOP = {"format", "version", "name", "description", "input", "embedding_dim", "metrics", "source", "license"}
_INPUT = {"height", "width", "channel_order", "scale", "mean", "std"}


@dataclass(frozen=True)
class ReidCard:
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def preprocessing(self, base: Preprocessing) -> Preprocessing:
        return base.merged(**self.input)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> ReidCard:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise WeightsError(f"{source}: {what}")

        need(isinstance(data, dict), "must be a JSON object")
        need(data.get("format") == REID_CARD_FORMAT, f"format: expected {REID_CARD_FORMAT!r}, "
                                                     f"got {data.get('format')!r}")
        need(data.get("version") == REID_CARD_VERSION, f"version: expected {REID_CARD_VERSION}, "
                                                       f"got {data.get('version')!r}")
        unknown = set(data) - _TOP
        need(not unknown, f"unknown fields {sorted(unknown)[:8]}")
        inp = data.get("input", {})
        need(isinstance(inp, dict) and set(inp) <= _INPUT, f"input: may hold only {sorted(_INPUT)}")
        dim = data.get("embedding_dim")
        need(dim is None or is_count(dim, MAX_EMBEDDING_DIM),
             f"embedding_dim: must be an int in 1..{MAX_EMBEDDING_DIM}, got {dim!r}"[:200])
        overrides = {k: (tuple(v) if isinstance(v, list) else v) for k, v in inp.items()}
        try:
            Preprocessing().merged(**overrides)  # every input field checked here, once
        except (EmbedderConfigError, TypeError) as exc:
            raise WeightsError(f"{source}: input: {exc}") from exc
        return cls(name=str(data.get("name", ""))[:200], input=overrides, embedding_dim=dim,
                   info={k: data[k] for k in ("description", "metrics", "source", "license") if k in data})

    @classmethod
    def beside(cls, model_path: Path) -> ReidCard | None:
        """The card next to ``model_path`` (same stem, ``.json``), or None when there is none."""
        path = model_path.with_suffix(".json")
        return cls.from_dict(read_card_json(path), str(path)) if path.exists() else None
