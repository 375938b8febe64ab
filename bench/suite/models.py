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


def embedder(weights: Path | None, device: str = "cpu", half: bool = False) -> Built:
    """Our SLM embedder: ``weights`` when given, else the package's shipped default
    weights when present, else the untrained seeded network (timing is the same;
    its embeddings carry no learned identity, which the description says)."""
    from smiletrack_ros.embedding import DEFAULT_WEIGHTS, Embedder

    if weights is None and DEFAULT_WEIGHTS.is_file():
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
