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
    from smiletrack_ros.detection import DetectorConfig, build_detector

    path = shared_dir / "models" / YOLOX_FILE
    config = DetectorConfig(backend="onnx", weights=str(path), nms_iou=YOLOX_NMS_IOU, device=device)
    return Built(build_detector(config), {"detector": "yolox_nano onnx", "sha": _digest(path),
                                        "score_threshold": config.score_threshold, "nms_iou": config.nms_iou})


def embedder(weights: Path | None, device: str = "cpu", half: bool = False) -> Built:
    """Our SLM embedder; ``weights`` None builds it with its default initialisation."""
    from smiletrack_ros.embedding import Embedder, EmbedderConfig

    config = EmbedderConfig(weights=str(weights) if weights else None, device=device, half=half)
    desc = {"embedder": "slm", "weights": _digest(weights) if weights else None, "half": half}
    return Built(Embedder(config), desc)
