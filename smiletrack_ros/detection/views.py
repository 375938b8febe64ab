"""Test-time views: the full frame, overlapping tiles and mirror images, merged into one result.

A fixed-size network shrinks a whole frame (640x480 into 416: 0.65x), so small and
half-occluded people lose the pixels that tell them apart. Overlapping tiles (sliced
inference, as SAHI does) reach the network closer to native resolution; the full frame
stays in the set for people larger than a tile. Flipped views average out the
detector's left/right bias, which tightens loose boxes when they are fused (``wbf``).
Written against :class:`ImageBackend`, so it serves every backend that takes images.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from smiletrack_ros.boxes import iou_matrix
from smiletrack_ros.detections import Detections
from smiletrack_ros.image_check import check_image

from .config import DetectorConfig, ImageDetectorConfig

# a tile box ending this close (pixels) to a tile edge inside the frame was cut by it
SEAM_MARGIN_PX = 3.0


class ImageBackend(Protocol):
    """A detector that can take several images in one call (one forward pass where it can)."""

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]: ...

    def update_thresholds(self, config: DetectorConfig) -> None: ...


@dataclass(frozen=True)
class View:
    """The frame region ``x0:x1``, ``y0:y1``, mirrored left-right when ``flipped``."""

    x0: int
    y0: int
    x1: int
    y1: int
    flipped: bool = False

    def crop(self, image: np.ndarray) -> np.ndarray:
        region = image[self.y0:self.y1, self.x0:self.x1]
        return np.ascontiguousarray(region[:, ::-1] if self.flipped else region)

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes in this view's pixels -> frame pixels (exact: a shift, and a mirror)."""
        out = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        if self.flipped:
            width = self.x1 - self.x0
            out[:, [0, 2]] = width - out[:, [2, 0]]
        out[:, [0, 2]] += self.x0
        out[:, [1, 3]] += self.y0
        return out

    def contains(self, boxes: np.ndarray, margin: float = SEAM_MARGIN_PX) -> np.ndarray:
        """Which frame boxes lie inside this view (within ``margin``)."""
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        return ((b[:, 0] >= self.x0 - margin) & (b[:, 1] >= self.y0 - margin)
                & (b[:, 2] <= self.x1 + margin) & (b[:, 3] <= self.y1 + margin))

    def seam_cut(self, boxes: np.ndarray, width: int, height: int, margin: float = SEAM_MARGIN_PX) -> np.ndarray:
        """Which of this view's boxes (in frame pixels) touch one of its edges that lies inside
        the frame: the person goes on beyond the tile, the neighbour or the full frame sees all."""
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        cut = np.zeros(len(b), bool)
        if self.x0 > 0:
            cut |= b[:, 0] <= self.x0 + margin
        if self.y0 > 0:
            cut |= b[:, 1] <= self.y0 + margin
        if self.x1 < width:
            cut |= b[:, 2] >= self.x1 - margin
        if self.y1 < height:
            cut |= b[:, 3] >= self.y1 - margin
        return cut


def tile_spans(length: int, count: int, overlap: float) -> list[tuple[int, int]]:
    """``count`` equal spans covering ``0..length``, neighbours sharing at least ``overlap``
    of a span: span = ceil(length / (count - (count - 1) * overlap)), evenly spaced."""
    if length <= 0 or count < 1 or not 0.0 <= overlap < 1.0:
        raise ValueError(f"tile_spans needs length > 0, count >= 1, overlap in [0, 1); got {length}, {count}, "
                         f"{overlap}")
    if count == 1:
        return [(0, length)]
    span = min(length, math.ceil(length / (count - (count - 1) * overlap)))
    starts = [round(i * (length - span) / (count - 1)) for i in range(count)]
    return [(s, s + span) for s in starts]


def plan_views(height: int, width: int, grid: tuple[int, int] | None, overlap: float, flip: bool) -> list[View]:
    """The full frame first, then the tiles row by row; each followed by its mirror when ``flip``."""
    regions = [(0, 0, width, height)]
    if grid is not None:
        cols, rows = grid
        regions += [(x0, y0, x1, y1) for y0, y1 in tile_spans(height, rows, overlap)
                    for x0, x1 in tile_spans(width, cols, overlap)]
    return [View(*r, flipped=f) for r in regions for f in ((False, True) if flip else (False,))]


@dataclass(frozen=True)
class ViewBoxes:
    """Every view's surviving boxes in frame pixels; ``view`` indexes the view list."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    view: np.ndarray


def collect(views: Sequence[View], results: Sequence[Detections], height: int, width: int) -> ViewBoxes:
    """Map each view's detections to the frame, dropping tile boxes cut by a seam."""
    if len(views) != len(results):
        raise ValueError(f"{len(results)} results for {len(views)} views")
    parts = []
    for i, (view, det) in enumerate(zip(views, results, strict=True)):
        boxes = view.to_frame(det.boxes)
        keep = ~view.seam_cut(boxes, width, height)
        parts.append((boxes[keep], det.scores[keep], det.class_ids[keep], np.full(int(keep.sum()), i)))
    return ViewBoxes(*(np.concatenate(p) for p in zip(*parts, strict=True)))


def merge_nms(found: ViewBoxes, iou: float) -> Detections:
    """Class-offset NMS over all views: each group keeps its best-scoring box."""
    import torch
    from torchvision.ops import batched_nms

    kept = batched_nms(torch.from_numpy(found.boxes), torch.from_numpy(found.scores.astype(np.float32)),
                       torch.from_numpy(found.class_ids), iou).numpy()
    return Detections(found.boxes[kept], found.scores[kept], found.class_ids[kept])


def merge_wbf(found: ViewBoxes, views: Sequence[View], iou: float) -> Detections:
    """Weighted box fusion: boxes join the best-overlapping group of their class (IoU with
    the group's fused box >= ``iou``), in descending score; the fused box is the score-
    weighted mean; its score the sum of each view's best member over the number of views
    whose region holds the fused box (a view that could see it and did not counts 0)."""
    order = np.argsort(-found.scores, kind="stable")
    fused: list[np.ndarray] = []
    members: list[list[int]] = []
    classes: list[int] = []
    for i in order:
        box, cls = found.boxes[i], found.class_ids[i]
        best, best_iou = -1, iou
        if fused:
            overlaps = iou_matrix(box[None], np.stack(fused))[0]
            overlaps[np.asarray(classes) != cls] = -1.0
            j = int(np.argmax(overlaps))
            if overlaps[j] >= best_iou:
                best = j
        if best < 0:
            fused.append(box.astype(np.float64))
            members.append([i])
            classes.append(int(cls))
            continue
        members[best].append(i)
        weights = found.scores[members[best]].astype(np.float64)
        fused[best] = (found.boxes[members[best]] * weights[:, None]).sum(0) / weights.sum()
    if not fused:
        return Detections.empty()
    boxes = np.stack(fused).astype(np.float32)
    scores = np.zeros(len(fused), np.float32)
    for g, group in enumerate(members):
        best_per_view: dict[int, float] = {}
        for i in group:
            v = int(found.view[i])
            best_per_view[v] = max(best_per_view.get(v, 0.0), float(found.scores[i]))
        seeing = sum(bool(v.contains(boxes[g:g + 1])[0]) for v in views)
        scores[g] = sum(best_per_view.values()) / max(seeing, len(best_per_view))
    return Detections(boxes, scores, np.asarray(classes, np.int64))


class MultiViewDetector:
    """Runs ``backend`` on every view of ``config`` (one batch) and merges the results;
    keeps the final ``score_threshold`` and ``max_detections`` of the configuration."""

    def __init__(self, backend: ImageBackend, config: ImageDetectorConfig):
        self.backend = backend
        self.config = config

    def __getattr__(self, name: str):
        """``device``, ``input_size``, ``layout``, ...: the backend's."""
        if name == "backend":
            raise AttributeError(name)
        return getattr(self.backend, name)

    def update_thresholds(self, config: DetectorConfig) -> None:
        self.backend.update_thresholds(config)
        self.config = self.config.with_thresholds_of(config)

    def views(self, height: int, width: int) -> list[View]:
        c = self.config
        return plan_views(height, width, c.tile_grid, c.tile_overlap, c.flip)

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        check_image(image_bgr)
        height, width = image_bgr.shape[:2]
        views = self.views(height, width)
        found = collect(views, self.backend.detect_batch([v.crop(image_bgr) for v in views]), height, width)
        c = self.config
        merged = merge_wbf(found, views, c.merge_iou) if c.merge == "wbf" else merge_nms(found, c.merge_iou)
        order = np.argsort(-merged.scores, kind="stable")
        order = order[merged.scores[order] > c.score_threshold][:c.max_detections]
        return Detections(merged.boxes[order], merged.scores[order], merged.class_ids[order])
