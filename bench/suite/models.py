"""Builds the package's detector and embedder for the suites, and describes them.

The description goes into each cache's metadata, so changing a model (or its
weights) recomputes the cached detections and embeddings.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

YOLOX_FILE = "yolox_nano.onnx"
# YOLOX's own NMS setting; the score floor is the package default (low boxes feed stage 2).
YOLOX_NMS_IOU = 0.45


@dataclass(frozen=True)
class Built:
    model: object
    description: dict


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def yolox_detector(shared_dir: Path, device: str = "cpu") -> Built:
    from smiletrack_ros.detection import OnnxConfig, build_detector

    path = shared_dir / "models" / YOLOX_FILE
    config = OnnxConfig(weights=str(path), nms_iou=YOLOX_NMS_IOU, device=device)
    return Built(build_detector(config), {"detector": "yolox_nano onnx", "sha": _digest(path),
                                        "score_threshold": config.score_threshold, "nms_iou": config.nms_iou})


NO_EMBEDDER = "none"
# The accuracy suite's embedders when none is asked for: the shipped SLM and BoxMOT's default re-ID model.
DEFAULT_EMBEDDERS = ("slm", "onnx:{shared}/models/reid/osnet_x0_25_msmt17.onnx")


def _model_digest(path: Path) -> str:
    """The model file's digest, with its companions (OpenVINO .bin, sidecar .json card) when present."""
    digest = hashlib.sha256(path.read_bytes())
    for companion in (path.with_suffix(".bin"), path.with_suffix(".json")):
        if companion != path and companion.is_file():
            digest.update(companion.read_bytes())
    return digest.hexdigest()[:16]


def embedder_label(spec: str) -> str:
    """A short table name for a ``BACKEND[:WEIGHTS]`` spec: ``slm`` (the shipped SLM), ``none``,
    else ``backend:stem`` (``onnx:osnet_x0_25_msmt17``)."""
    from smiletrack_ros.embedding import EmbedderConfig

    if spec == NO_EMBEDDER:
        return NO_EMBEDDER
    config = EmbedderConfig.from_spec(spec)
    if config.weights in (None, "default"):
        return config.backend if config.weights else f"{config.backend}:untrained"
    return f"{config.backend}:{Path(config.weights).stem}"


def embedder_from_spec(spec: str, device: str = "cpu") -> Built:
    """Any backend from a ``BACKEND[:WEIGHTS]`` spec (``EmbedderConfig.from_spec``), one runtime
    thread; the description names the spec and digests the model file."""
    from smiletrack_ros.embedding import EmbedderConfig, build_embedder

    config = EmbedderConfig.from_spec(spec, device=device, precision="fp32", threads=1)
    if config.backend == "slm":
        return embedder(None if config.weights == "default" else Path(config.weights), device,
                        untrained=config.weights is None)
    model = build_embedder(config)
    path = Path(str(config.weights)) if config.weights is not None else None
    return Built(model, {"embedder": f"{model.name} ({config.backend} backend)", "spec": spec,
                         "sha": _model_digest(path) if path is not None else None, "precision": "fp32",
                         "trained_on": []})


def embedder(weights: Path | None, device: str = "cpu", half: bool = False, untrained: bool = False) -> Built:
    """Our SLM embedder: ``weights`` when given, else the package's shipped default
    weights when present (unless ``untrained``), else the untrained seeded network (timing is
    the same; its embeddings carry no learned identity, which the description says)."""
    from smiletrack_ros.embedding import DEFAULT_WEIGHTS, Embedder

    if weights is None and DEFAULT_WEIGHTS.is_file() and not untrained:
        weights = DEFAULT_WEIGHTS
    model = Embedder(weights=str(weights) if weights else None, device=device, precision="fp16" if half else "fp32")
    name = "untrained (seeded)" if weights is None else Path(weights).name
    trained_on = (model.card.training.get("data") or {}).get("sequences", [])
    desc = {"embedder": f"SLM {model.spec.backbone}, weights {name}", "sha": _digest(weights) if weights else None,
            "precision": "fp16" if half else "fp32", "trained_on": sorted(trained_on)}
    return Built(model, desc)


# Untrained weights score every anchor alike; a high floor keeps NMS at the small
# candidate count a trained model gives, so the timing reflects network + decode.
UNTRAINED_SCORE_FLOOR = 0.95


def prb_detector(architecture: str, input_size: int, device: str = "cpu", half: bool = False) -> Built:
    """A PRB-FPN variant with its default initialisation: for timing only."""
    from smiletrack_ros.detection import PrbConfig, build_detector

    config = PrbConfig(architecture=architecture, input_size=input_size, device=device,
                            half=half, score_threshold=UNTRAINED_SCORE_FLOOR)
    return Built(build_detector(config), {"architecture": architecture, "input_size": input_size, "half": half})
