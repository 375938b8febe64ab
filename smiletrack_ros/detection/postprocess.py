"""Decode YOLO-family outputs into scored boxes and run class-offset NMS (torch).

Every backend ends here, so score = objectness x class probability, the class
filter, the threshold and NMS behave identically whatever produced the tensor.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms

from smiletrack_ros.detections import Detections

MAX_NMS_CANDIDATES = 30000


@dataclass(frozen=True)
class Selection:
    """Post-NMS detections on the model's canvas (torch, on the input's device)."""

    boxes: torch.Tensor      # (K, 4) x1, y1, x2, y2
    scores: torch.Tensor     # (K,)
    class_ids: torch.Tensor  # (K,) int64


def grid_points(input_size: int, strides: tuple[int, ...]) -> int:
    """Anchor points of an anchor-free head over a square input."""
    return sum((input_size // s) ** 2 for s in strides)


def detect_layout(shape: tuple[int, ...], input_size: int, strides: tuple[int, ...]) -> str:
    """Tell the export layout from an output shape.

    ``(B, 4+nc, N)`` with N > channels is YOLOv8-style; ``(B, N, 5+nc)`` is YOLOX raw
    when N equals the anchor-free grid count, YOLOv5/v7/PRB when N is 3 anchors per
    cell over 3 or 4 levels.
    """
    if len(shape) != 3:
        raise ValueError(f"expected a (B, N, C) or (B, C, N) output, got shape {shape}")
    _, a, b = shape
    if b > a:
        return "yolov8"
    if a == grid_points(input_size, strides):
        return "yolox"
    if a in (3 * grid_points(input_size, (8, 16, 32)), 3 * grid_points(input_size, (8, 16, 32, 64))):
        return "yolov5"
    raise ValueError(
        f"cannot tell the layout of output {shape} for input {input_size} and strides {strides}; "
        f"set OnnxConfig.layout (detector.layout) to one of 'yolox', 'yolov5', 'yolov8'")


def decode_yolox(raw: torch.Tensor, input_size: int, strides: tuple[int, ...]) -> torch.Tensor:
    """YOLOX raw grid outputs (dx, dy, log w, log h, ...) -> centre x, y, w, h in canvas pixels."""
    centres, scales = [], []
    for s in strides:
        n = input_size // s
        ys, xs = torch.meshgrid(torch.arange(n, device=raw.device), torch.arange(n, device=raw.device),
                                indexing="ij")
        centres.append(torch.stack((xs, ys), -1).reshape(-1, 2))
        scales.append(torch.full((n * n, 1), float(s), device=raw.device))
    grid = torch.cat(centres).to(raw.dtype)
    stride = torch.cat(scales).to(raw.dtype)
    if raw.shape[-2] != grid.shape[0]:
        raise ValueError(f"YOLOX output has {raw.shape[-2]} points, the grid {grid.shape[0]}")
    out = raw.clone()
    out[..., 0:2] = (raw[..., 0:2] + grid) * stride
    out[..., 2:4] = torch.exp(raw[..., 2:4]) * stride
    return out


NANODET_REG_CHANNELS = 32  # 4 box sides x (reg_max 7 + 1) distribution bins


def pair_nanodet_outputs(shapes: list[tuple[int, ...]]) -> list[tuple[int, int]]:
    """(class-map index, box-map index) per level, finest first, matched by shape (the
    order of a NanoDet export's outputs is not reliable): both maps of a level share N;
    the box map has 4 x (reg_max + 1) = 32 channels."""
    by_points: dict[int, dict[str, int]] = {}
    for i, shape in enumerate(shapes):
        if len(shape) not in (2, 3):
            raise ValueError(f"NanoDet outputs must be (N, C) or (1, N, C), got {shape}")
        role = "box" if shape[-1] == NANODET_REG_CHANNELS else "cls"
        level = by_points.setdefault(shape[-2], {})
        if role in level:
            raise ValueError(f"two NanoDet {role} outputs with {shape[-2]} points: cannot pair {shapes}")
        level[role] = i
    if any(len(level) != 2 for level in by_points.values()):
        raise ValueError(f"NanoDet outputs must pair up by point count, got {shapes}")
    return [(by_points[n]["cls"], by_points[n]["box"]) for n in sorted(by_points, reverse=True)]


def decode_nanodet(cls_maps: list[torch.Tensor], box_maps: list[torch.Tensor], input_size: int):
    """GFL heads: each side's distance is the expectation of a softmax over bins, in strides,
    measured from the cell centre ((x + 0.5) * stride, (y + 0.5) * stride); checked against
    TUD ground truth, where the corner point instead cost a third of the AP.
    -> (xywh, None, class scores)."""
    boxes, scores = [], []
    for cls, reg in zip(cls_maps, box_maps, strict=True):
        cls, reg = cls.reshape(-1, cls.shape[-1]), reg.reshape(-1, reg.shape[-1])
        side = int(round(reg.shape[0] ** 0.5))
        if side * side != reg.shape[0] or input_size % side:
            raise ValueError(f"NanoDet map with {reg.shape[0]} points does not tile a {input_size} input")
        stride = input_size // side
        ys, xs = torch.meshgrid(torch.arange(side, device=reg.device), torch.arange(side, device=reg.device),
                                indexing="ij")
        centre = (torch.stack((xs, ys), -1).reshape(-1, 2).to(reg.dtype) + 0.5) * stride
        bins = reg.view(-1, 4, reg.shape[-1] // 4).softmax(-1)
        dist = (bins * torch.arange(bins.shape[-1], device=reg.device, dtype=reg.dtype)).sum(-1) * stride
        x1y1, x2y2 = centre - dist[:, :2], centre + dist[:, 2:]
        boxes.append(torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1))
        scores.append(cls)
    return torch.cat(boxes), None, torch.cat(scores)


def split_prediction(pred: torch.Tensor, layout: str, input_size: int, strides: tuple[int, ...]):
    """One image's output -> (xywh (N, 4), objectness (N,) or None, class scores (N, nc))."""
    if pred.dim() == 3:
        if pred.shape[0] != 1:
            raise ValueError(f"expected batch 1, got output shape {tuple(pred.shape)}")
        pred = pred[0]
    if layout == "yolov8":
        pred = pred.transpose(0, 1)
        return pred[:, :4], None, pred[:, 4:]
    if layout == "yolox":
        pred = decode_yolox(pred, input_size, strides)
    elif layout != "yolov5":
        raise ValueError(f"unknown layout {layout!r}")
    return pred[:, :4], pred[:, 4], pred[:, 5:]


def cxcywh_to_xyxy(xywh: torch.Tensor) -> torch.Tensor:
    """Centre x, y, width, height (what YOLO heads emit) -> x1, y1, x2, y2."""
    half = xywh[:, 2:4] / 2
    return torch.cat((xywh[:, 0:2] - half, xywh[:, 0:2] + half), 1)


def select(xywh: torch.Tensor, objectness: torch.Tensor | None, class_scores: torch.Tensor, *,
           score_threshold: float, nms_iou: float, max_detections: int,
           classes: tuple[int, ...] | None) -> Selection:
    """Top class per box, score = obj x p(class); class filter, threshold, class-offset NMS."""
    if class_scores.shape[1] == 0:
        raise ValueError("model output has no class columns")
    best, cls = class_scores.max(1)
    scores = best * objectness if objectness is not None else best
    keep = scores > score_threshold
    if classes is not None:
        wanted = torch.tensor(classes, device=cls.device, dtype=cls.dtype)
        keep &= torch.isin(cls, wanted)
    boxes, scores, cls = cxcywh_to_xyxy(xywh[keep]).float(), scores[keep].float(), cls[keep]
    if scores.numel() > MAX_NMS_CANDIDATES:
        top = scores.topk(MAX_NMS_CANDIDATES).indices
        boxes, scores, cls = boxes[top], scores[top], cls[top]
    kept = batched_nms(boxes, scores, cls, nms_iou)[:max_detections]
    return Selection(boxes[kept], scores[kept], cls[kept].long())


def to_detections(selection: Selection, letterbox) -> Detections:
    """Scale canvas boxes back to source pixels and hand them to the host as numpy."""

    boxes = letterbox.boxes_to_source(selection.boxes)
    return Detections(boxes.cpu().numpy().astype("float32"), selection.scores.cpu().numpy().astype("float32"),
                      selection.class_ids.cpu().numpy().astype("int64"))
