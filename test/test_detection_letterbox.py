"""Letterbox in / scale back out: the geometry round trip and real image content."""
import numpy as np
import pytest
import torch

from smiletrack_ros.detection.letterbox import PAD_VALUE, Letterbox


@pytest.mark.parametrize("pad_mode", ["center", "corner", "stretch"])
@pytest.mark.parametrize("hw", [(480, 640), (1080, 1920), (640, 480), (100, 100), (37, 211)])
def test_boxes_round_trip(pad_mode, hw):
    rng = np.random.default_rng(0)
    h, w = hw
    box = Letterbox(h, w, 416, pad_mode)
    xy1 = rng.uniform(0, [w - 2, h - 2], size=(50, 2))
    xy2 = xy1 + rng.uniform(1, [w, h], size=(50, 2))
    boxes = np.concatenate([xy1, np.minimum(xy2, [w, h])], 1).astype(np.float32)
    canvas = box.boxes_to_canvas(boxes)
    assert canvas.min() >= -1e-3 and canvas.max() <= 416 + 1e-3
    np.testing.assert_allclose(box.boxes_to_source(canvas), boxes, atol=1e-3)
    np.testing.assert_allclose(box.boxes_to_source(torch.from_numpy(canvas)).numpy(), boxes, atol=1e-3)


def test_scale_back_clips_to_the_image():
    box = Letterbox(480, 640, 640, "center")  # 80 px bands above and below
    out = box.boxes_to_source(np.array([[-50.0, 0.0, 700.0, 640.0]], np.float32))
    np.testing.assert_allclose(out, [[0, 0, 640, 480]])


@pytest.mark.parametrize("pad_mode,resized,offset", [("center", (480, 640), (0, 80)),
                                                     ("corner", (480, 640), (0, 0)),
                                                     ("stretch", (640, 640), (0, 0))])
def test_padding_geometry(pad_mode, resized, offset):
    box = Letterbox(480, 640, 640, pad_mode)
    assert box.resized_hw == resized and box.offset == offset


def _rect_image(h, w, rect):
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = rect
    img[y1:y2, x1:x2] = 255
    return img


def _bright_bbox(canvas_hw3):
    ys, xs = np.nonzero(canvas_hw3[..., 0] > 200)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("pad_mode", ["center", "corner", "stretch"])
def test_image_content_lands_where_the_boxes_say(pad_mode):
    rect = (300, 100, 420, 380)
    img = _rect_image(480, 640, rect)
    box = Letterbox(480, 640, 320, pad_mode)
    host = box.apply(img)
    device = box.apply(torch.from_numpy(img).permute(2, 0, 1)).permute(1, 2, 0).round().byte().numpy()
    assert host.shape == device.shape == (320, 320, 3)
    left, top = box.offset
    h, w = box.resized_hw
    if h < 320:
        assert host[top - 1 if top else top + h, 5, 0] == PAD_VALUE
    for canvas in (host, device):
        found = _bright_bbox(canvas)
        np.testing.assert_allclose(found, box.boxes_to_canvas(np.array(rect, np.float32)), atol=1.5)
        np.testing.assert_allclose(box.boxes_to_source(found), rect, atol=3.0)
    assert np.abs(host.astype(int) - device.astype(int)).mean() < 2.0


def test_wrong_image_size_is_rejected():
    box = Letterbox(480, 640, 320)
    with pytest.raises(ValueError, match="480x640"):
        box.apply(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="pad_mode"):
        Letterbox(10, 10, 32, "middle")
