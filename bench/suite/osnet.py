"""OSNet x0.25 (MSMT17) embeddings for the accuracy suite, through ONNX Runtime.

A stand-in until the package's ``onnx`` embedder backend lands (issue 14): the
lead swaps ``osnet_embeddings`` for it. Preprocessing from ../shared/models/README.md:
crop clipped to the image, resized to 128 x 256 (W x H), BGR -> RGB, /255, ImageNet
mean/std, NCHW; the 512-d output is L2-normalised.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

OSNET_FILE = Path("models") / "reid" / "osnet_x0_25_msmt17.onnx"
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def osnet_session(shared_dir: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    path = shared_dir / OSNET_FILE
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]), sha


def osnet_embeddings(session, image: np.ndarray, boxes: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, 512) float32 unit rows for the (N, 4) x1, y1, x2, y2 boxes of a BGR image."""
    import cv2

    h, w = image.shape[:2]
    crops = []
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64):
        a, b = int(np.clip(np.floor(x1), 0, w - 1)), int(np.clip(np.floor(y1), 0, h - 1))
        c, d = int(np.clip(np.ceil(x2), a + 1, w)), int(np.clip(np.ceil(y2), b + 1, h))
        crop = cv2.resize(image[b:d, a:c], (128, 256), interpolation=cv2.INTER_LINEAR)
        crops.append((crop[:, :, ::-1].astype(np.float32) / 255.0 - _MEAN) / _STD)
    if not crops:
        return np.zeros((0, 512), np.float32)
    x = np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2))
    out = np.concatenate([session.run(None, {"images": x[i:i + batch]})[0] for i in range(0, len(x), batch)])
    return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)
