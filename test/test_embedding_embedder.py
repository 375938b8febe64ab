"""Embedder: shapes, unit norm, batch-size invariance, box clipping, bad input."""
import numpy as np
import pytest
import torch

from smiletrack_ros.embedding import Embedder, EmbedderConfigError, EmbedderInputError
from smiletrack_ros.embedding.crops import clip_boxes, crop_boxes


@pytest.fixture(scope="module")
def embedder():
    return Embedder(weights=None, device="cpu", warmup=False)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)


BOXES = np.array([[10, 10, 50, 110], [60, 5, 100, 100], [100, 20, 150, 118], [0, 0, 160, 120]], np.float32)


def test_shapes_and_unit_norm(embedder, image):
    out = embedder(image, BOXES)
    assert out.shape == (4, 128) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert embedder(image, np.zeros((0, 4))).shape == (0, 128)
    assert embedder(image, []).shape == (0, 128)


def test_same_result_whatever_the_batch_size(image):
    whole = Embedder(weights=None, device="cpu", warmup=False)(image, BOXES)
    chunked = Embedder(weights=None, device="cpu", warmup=False, max_batch=3)(image, BOXES)
    one_by_one = np.concatenate([Embedder(weights=None, device="cpu", warmup=False)(image, b[None]) for b in BOXES[:2]])
    assert np.allclose(whole, chunked, atol=1e-5)
    assert np.allclose(whole[:2], one_by_one, atol=1e-5)


def test_flip_average_is_the_renormalised_mean_of_the_crop_and_its_mirror(image):
    plain = Embedder(weights=None, device="cpu", warmup=False, flip_average=False)
    flipped = Embedder(weights=None, device="cpu", warmup=False, flip_average=True)
    width = image.shape[1]
    # the box mirrored in the mirrored image cuts exactly the mirrored crop
    mirror_boxes = np.stack([width - BOXES[:, 2], BOXES[:, 1], width - BOXES[:, 0], BOXES[:, 3]], axis=1)
    mean = plain(image, BOXES) + plain(np.ascontiguousarray(image[:, ::-1]), mirror_boxes)
    expected = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    out = flipped(image, BOXES)
    assert np.allclose(out, expected, atol=1e-5)
    assert not np.allclose(out, plain(image, BOXES), atol=1e-3)
    for max_batch in (1, 3):
        chunked = Embedder(weights=None, device="cpu", warmup=False, flip_average=True, max_batch=max_batch)
        assert np.allclose(chunked(image, BOXES), out, atol=1e-5)
    assert np.allclose(flipped(image, BOXES[1:2]), out[1:2], atol=1e-5)


def test_flip_average_follows_the_card_unless_overridden(tmp_path, image):
    from smiletrack_ros.embedding import ModelCard, SLMNet, save_weights

    torch.manual_seed(0)
    net = SLMNet()
    path = tmp_path / "w.safetensors"
    save_weights(net, path, ModelCard(spec=net.spec, flip_average=True))
    assert Embedder(weights=path, device="cpu", warmup=False).flip_average is True
    assert Embedder(weights=path, device="cpu", warmup=False, flip_average=False).flip_average is False
    assert Embedder(weights=None, device="cpu", warmup=False).flip_average is False
    with pytest.raises(EmbedderConfigError, match="flip_average"):
        Embedder(weights=None, device="cpu", warmup=False, flip_average="yes")


def test_clip_boxes_at_and_beyond_borders():
    boxes = torch.tensor([[-20.0, -10, 30, 40],    # partly outside (top-left)
                          [150, 100, 400, 300],    # partly outside (bottom-right)
                          [300, 300, 400, 400],    # wholly outside
                          [50, 50, 50, 80],        # zero width
                          [80, 90, 40, 20]])       # corners swapped
    out = clip_boxes(boxes, 160, 120)
    assert torch.equal(out[0], torch.tensor([0.0, 0, 30, 40]))
    assert torch.equal(out[1], torch.tensor([150.0, 100, 160, 120]))
    assert torch.equal(out[2], torch.tensor([159.0, 119, 160, 120]))
    assert torch.equal(out[3], torch.tensor([49.5, 50, 50.5, 80]))
    assert torch.equal(out[4], torch.tensor([40.0, 20, 80, 90]))


def test_partly_outside_box_embeds_its_inside_part(embedder, image):
    outside = embedder(image, np.array([[-40, -30, 50, 110]], np.float32))
    inside = embedder(image, np.array([[0, 0, 50, 110]], np.float32))
    assert np.allclose(outside, inside, atol=1e-6)
    degenerate = embedder(image, np.array([[500, 500, 600, 600], [30, 30, 30, 30]], np.float32))
    assert np.isfinite(degenerate).all() and degenerate.shape == (2, 128)


def test_crop_is_a_bilinear_resize_of_the_box():
    image = torch.arange(4 * 6, dtype=torch.float32).reshape(1, 1, 4, 6)
    # the whole image resized to itself: roi_align with aligned=True samples pixel centres
    assert torch.allclose(crop_boxes(image, torch.tensor([[0.0, 0, 6, 4]]), (4, 6)), image)
    # a box over pixels 2..3 of row 1, upsampled x2: samples at x = 1.75 .. 3.25 on a linear ramp
    crop = crop_boxes(image, torch.tensor([[2.0, 1, 4, 2]]), (1, 4))
    assert torch.allclose(crop.flatten(), torch.tensor([7.75, 8.25, 8.75, 9.25]))


@pytest.mark.parametrize("bad_image,bad_boxes,match", [
    (np.zeros((10, 10), np.uint8), BOXES, "HxWx3"),
    (np.zeros((10, 10, 3), np.float32), BOXES, "uint8"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((2, 3)), r"\(N, 4\)"),
    (np.zeros((10, 10, 3), np.uint8), np.array([[0, 0, np.nan, 5]]), "finite"),
    (np.zeros((10, 10, 3), np.uint8), [["a", 0, 1, 2]], "numeric"),
])
def test_bad_input_gives_a_clear_error(embedder, bad_image, bad_boxes, match):
    with pytest.raises(EmbedderInputError, match=match):
        embedder(bad_image, bad_boxes)


@pytest.mark.parametrize("kwargs,field", [({"device": "gpu"}, "device"), ({"precision": "fp8"}, "precision"),
                                          ({"max_batch": 0}, "max_batch"), ({"precision": "fp16", "device": "cpu"},
                                                                            "precision")])
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(EmbedderConfigError, match=field):
        Embedder(weights=None, warmup=False, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_request_without_cuda_is_a_clear_error():
    with pytest.raises(EmbedderConfigError, match="CUDA is not available"):
        Embedder(weights=None, device="cuda:0", warmup=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_matches_cpu_fp32(image):
    cpu = Embedder(weights=None, device="cpu", warmup=False)(image, BOXES)
    gpu = Embedder(weights=None, device="cuda:0")(image, BOXES)
    assert np.abs(cpu - gpu).max() < 2e-2
    assert np.allclose(Embedder(weights=None, device="cuda:0", max_batch=1)(image, BOXES), gpu, atol=2e-3)
