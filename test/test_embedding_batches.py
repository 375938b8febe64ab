"""The crops of several cameras' frames in one embedder batch (``embed_many``) give each frame the
embeddings a call of its own gives (bitwise for ONNX Runtime on the CPU, to float rounding for
torch, whose kernels may sum in another order for another batch size)."""
import numpy as np
import pytest

from smiletrack_ros.embedding import build_embedder
from smiletrack_ros.embedding.config import EmbedderConfig


def _frames():
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (120, 160, 3), np.uint8) for _ in range(3)]
    boxes = [np.array([[5, 5, 40, 100], [60, 10, 90, 110]], np.float32),
             np.zeros((0, 4), np.float32),                                  # a camera with nobody in view
             np.array([[100, 20, 150, 119], [-10, 0, 30, 60], [70, 40, 100, 100]], np.float32)]
    return list(zip(images, boxes, strict=True))


def _check(embedder, exact: bool) -> None:
    pairs = _frames()
    together = embedder.embed_many(pairs)
    alone = [embedder(image, boxes) for image, boxes in pairs]
    assert [len(t) for t in together] == [2, 0, 3]
    for t, a in zip(together, alone, strict=True):
        if exact:
            np.testing.assert_array_equal(t, a)
        else:
            np.testing.assert_allclose(t, a, atol=1e-5)


def test_slm_batches_across_cameras(torch_one_thread):
    _check(build_embedder(EmbedderConfig(backend="slm", weights=None, device="cpu", warmup=False)), exact=False)


def test_onnx_batches_across_cameras_bitwise(shared_dir):
    model = shared_dir / "models" / "reid" / "osnet_x0_25_msmt17.onnx"
    if not model.is_file():
        pytest.skip(f"{model} not found")
    _check(build_embedder(EmbedderConfig(backend="onnx", weights=str(model), device="cpu", threads=1,
                                         warmup=False)), exact=True)
