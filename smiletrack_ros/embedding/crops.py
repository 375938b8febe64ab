"""Cutting fixed-size crops out of images on the device, all boxes in one call.

``torchvision.ops.roi_align`` with ``aligned=True`` and one sample per output
pixel is a bilinear resize of each box (what the official SLM does with
``F.interpolate`` crop by crop), but batched and without leaving the device.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.ops import roi_align

from smiletrack_ros.image_check import check_image

from .errors import EmbedderInputError
from .preprocessing import Preprocessing

MIN_BOX_SIZE = 1.0


def clip_boxes(boxes: torch.Tensor, width: int, height: int, min_size: float = MIN_BOX_SIZE) -> torch.Tensor:
    """Order, clip to the image and give every box at least ``min_size`` pixels a side.

    Boxes partly outside keep their inside part; boxes wholly outside or degenerate
    (zero or negative size) shrink to a ``min_size`` box at the nearest image
    location, so every box yields a crop of real pixels.
    """
    out = boxes.clone()
    for lo, hi, limit in ((0, 2, width), (1, 3, height)):
        a = torch.minimum(boxes[:, lo], boxes[:, hi]).clamp(0, limit)
        b = torch.maximum(boxes[:, lo], boxes[:, hi]).clamp(0, limit)
        small = (b - a) < min_size
        centre = ((a + b) / 2).clamp(min_size / 2, limit - min_size / 2)
        out[:, lo] = torch.where(small, centre - min_size / 2, a)
        out[:, hi] = torch.where(small, centre + min_size / 2, b)
    return out


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int],
               batch_index: torch.Tensor | None = None, sampling_ratio: int = 1) -> torch.Tensor:
    """(B, C, H, W) float images, (N, 4) x1y1x2y2 pixel boxes -> (N, C, size[0], size[1]).

    ``batch_index`` (N,) says which image each box is cut from (default: image 0).
    Boxes must already lie inside their image (see ``clip_boxes``).
    """
    if batch_index is None:
        batch_index = torch.zeros(len(boxes), dtype=boxes.dtype, device=boxes.device)
    rois = torch.cat([batch_index.to(boxes.dtype)[:, None], boxes], dim=1).to(images.dtype)
    return roi_align(images, rois, output_size=size, spatial_scale=1.0, sampling_ratio=sampling_ratio, aligned=True)


def check_image_and_boxes(image_bgr: object, boxes: object) -> np.ndarray:
    """Validate an HxWx3 uint8 image and (N, 4) finite boxes; returns boxes as float32."""
    check_image(image_bgr, error=EmbedderInputError)
    try:
        array = np.asarray(boxes, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbedderInputError(f"boxes must be numeric (N, 4) x1, y1, x2, y2: {exc}") from exc
    if array.size == 0:
        return np.zeros((0, 4), np.float32)
    if array.ndim != 2 or array.shape[1] != 4:
        raise EmbedderInputError(f"boxes must have shape (N, 4), got {array.shape}")
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array).all(axis=1)).tolist()
        raise EmbedderInputError(f"boxes must be finite; rows {bad} are not")
    return array


def checked_pairs(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[list[tuple[np.ndarray, np.ndarray]],
                                                                           list[int]]:
    """Several frames' (image, boxes), each checked by ``check_image_and_boxes``: the pairs that have
    boxes (their boxes as checked) and every pair's box count (to split one batch's rows by)."""
    kept, counts = [], []
    for image_bgr, boxes in pairs:
        boxes = check_image_and_boxes(image_bgr, boxes)
        counts.append(len(boxes))
        if len(boxes):
            kept.append((image_bgr, boxes))
    return kept, counts


def image_to_tensor(image_bgr: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """HxWx3 uint8 -> (1, 3, H, W) ``dtype`` on ``device``: one host-to-device copy of
    the uint8 frame (from page-locked memory on CUDA, so the copy runs asynchronously),
    the conversion happens on the device."""
    frame = torch.from_numpy(np.ascontiguousarray(image_bgr))
    if device.type == "cuda":
        frame = frame.pin_memory()
    frame = frame.to(device, non_blocking=True)
    return frame.permute(2, 0, 1).unsqueeze(0).to(dtype).contiguous()


def crop_inputs(image_bgr: np.ndarray, boxes: np.ndarray, preprocessing: Preprocessing,
                dtype: type = np.float32) -> np.ndarray:
    """HxWx3 uint8 BGR image, (N, 4) clipped boxes -> (N, 3, H, W) network input, for the
    runtimes fed host arrays (ONNX Runtime, OpenVINO): the bilinear samples of ``crop_boxes``
    (aligned, one sample per output pixel, edges clamped), cut by ``cv2.warpAffine`` from the
    normalised channel planes of the boxes' bounding region (normalising before sampling equals
    normalising after: both are linear per channel). OpenCV places samples on a 1/32-pixel grid
    (its ``INTER_TAB_SIZE``), so a value differs from ``roi_align``'s by at most the image's
    gradient over 1/64 pixel per axis (measured on a real frame: at most ~1.5 of 255 levels)."""
    import cv2

    out_h, out_w = preprocessing.size
    out = np.empty((len(boxes), 3, out_h, out_w), np.float32)
    if not len(boxes):
        return out.astype(dtype, copy=False)
    height, width = image_bgr.shape[:2]
    boxes = np.asarray(boxes, np.float64)
    # the region every sample of every box reads (bilinear: one pixel beyond each sample)
    x0, y0 = (max(0, int(np.floor(boxes[:, i].min())) - 1) for i in (0, 1))
    x1, y1 = min(width, int(np.ceil(boxes[:, 2].max())) + 1), min(height, int(np.ceil(boxes[:, 3].max())) + 1)
    planes = preprocessing.planes(image_bgr[y0:y1, x0:x1])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for crop, (bx1, by1, bx2, by2) in zip(out, boxes - (x0, y0, x0, y0), strict=True):
        # output pixel (i, j) samples (x1 - 0.5 + (j + 0.5) * bin_w, y1 - 0.5 + (i + 0.5) * bin_h)
        bin_w, bin_h = (bx2 - bx1) / out_w, (by2 - by1) / out_h
        to_source = np.array([[bin_w, 0.0, bx1 - 0.5 + 0.5 * bin_w], [0.0, bin_h, by1 - 0.5 + 0.5 * bin_h]])
        for plane, target in zip(planes, crop, strict=True):
            cv2.warpAffine(plane, to_source, (out_w, out_h), dst=target, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return out.astype(dtype, copy=False)
