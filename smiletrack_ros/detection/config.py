"""One validated configuration for every detector backend."""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from smiletrack_ros.devices import DEVICE_SYNTAX, is_device_setting

BACKENDS = ("prb", "onnx", "external", "openvino")
ONNX_LAYOUTS = ("auto", "yolox", "yolov5", "yolov8", "nanodet", "ssd")
PAD_MODES = ("center", "corner", "stretch")
CHANNEL_ORDERS = ("bgr", "rgb")
MERGE_MODES = ("nms", "wbf")
_TILES = re.compile(r"^([1-9])x([1-9])$")


class DetectorConfigError(ValueError):
    """A detector setting is invalid; the message names the field."""


@dataclass(frozen=True)
class DetectorConfig:
    """Settings shared by all backends; backend-specific ones are ignored by the others.

    ``score_threshold`` defaults low (0.05) because the tracker's second stage
    associates low-score boxes; ``classes`` keeps boxes whose top class is listed
    (COCO person = 0), ``None`` keeps every class. ``input_size``, ``pad_mode``,
    ``channel_order`` and ``input_scale`` left ``None`` take the model's own
    convention (PRB/YOLOv5/v8: RGB/255 centred letterbox; YOLOX: BGR 0..255,
    padded right/bottom; NanoDet: BGR mean/std-normalised, stretched to the square).

    Test-time views (image backends only, off by default since each view costs one
    more forward pass): ``tiles`` "CxR" adds C columns x R rows of overlapping crops
    (``tile_overlap`` of a tile's side shared with its neighbour) to the full frame, so
    small people reach the network at near native resolution; ``flip`` adds the
    mirror image of every view. ``merge`` combines the views' boxes: ``nms`` keeps the
    best-scoring box of each overlapping group (IoU >= ``merge_iou``), ``wbf`` averages
    the group's boxes weighted by score and scores it by the mean over the views that
    could see it. ``cpu_threads`` > 0 caps ONNX Runtime's intra-op threads (0: its own
    choice, every core).
    """

    backend: str = "prb"
    weights: str | None = None
    architecture: str = "prb-2py-e6e-1280"
    input_size: int | None = None
    score_threshold: float = 0.05
    nms_iou: float = 0.7
    max_detections: int = 300
    classes: tuple[int, ...] | None = (0,)
    device: str = "auto"
    half: bool = True
    layout: str = "auto"
    strides: tuple[int, ...] = (8, 16, 32)
    pad_mode: str | None = None
    channel_order: str | None = None
    input_scale: float | None = None
    stamp_tolerance: float = 1e-3
    missing: str = "empty"
    tiles: str = ""
    tile_overlap: float = 0.2
    flip: bool = False
    merge: str = "nms"
    merge_iou: float = 0.65
    cpu_threads: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.weights, os.PathLike):
            object.__setattr__(self, "weights", os.fspath(self.weights))
        _check(self.backend in BACKENDS, "backend", f"must be one of {BACKENDS}, got {self.backend!r}")
        _check(self.weights is None or (isinstance(self.weights, str) and self.weights != ""),
               "weights", "must be a non-empty path or None")
        _check(isinstance(self.architecture, str) and self.architecture != "", "architecture",
               "must name a PRB variant or a spec file")
        _check(self.input_size is None or (isinstance(self.input_size, int) and self.input_size >= 32
                                           and self.input_size % 32 == 0),
               "input_size", f"must be a multiple of 32 >= 32, got {self.input_size!r}")
        _check(_is_number(self.score_threshold) and 0.0 <= self.score_threshold < 1.0, "score_threshold",
               f"must lie in [0, 1), got {self.score_threshold!r}")
        _check(_is_number(self.nms_iou) and 0.0 < self.nms_iou <= 1.0, "nms_iou",
               f"must lie in (0, 1], got {self.nms_iou!r}")
        _check(isinstance(self.max_detections, int) and self.max_detections > 0, "max_detections",
               f"must be a positive int, got {self.max_detections!r}")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))
            _check(len(self.classes) > 0 and all(isinstance(c, int) and c >= 0 for c in self.classes),
                   "classes", f"must be non-negative ints or None, got {self.classes!r}")
        _check(is_device_setting(self.device), "device", f"must be {DEVICE_SYNTAX}, got {self.device!r}")
        _check(isinstance(self.half, bool), "half", "must be a bool")
        _check(self.layout in ONNX_LAYOUTS, "layout", f"must be one of {ONNX_LAYOUTS}, got {self.layout!r}")
        object.__setattr__(self, "strides", tuple(self.strides))
        _check(len(self.strides) > 0 and all(isinstance(s, int) and s > 0 for s in self.strides), "strides",
               f"must be positive ints, got {self.strides!r}")
        _check(self.pad_mode is None or self.pad_mode in PAD_MODES, "pad_mode",
               f"must be one of {PAD_MODES} or None, got {self.pad_mode!r}")
        _check(self.channel_order is None or self.channel_order in CHANNEL_ORDERS, "channel_order",
               f"must be one of {CHANNEL_ORDERS} or None, got {self.channel_order!r}")
        _check(self.input_scale is None or (_is_number(self.input_scale) and self.input_scale > 0),
               "input_scale", f"must be a positive number or None, got {self.input_scale!r}")
        _check(_is_number(self.stamp_tolerance) and self.stamp_tolerance >= 0, "stamp_tolerance",
               f"must be >= 0, got {self.stamp_tolerance!r}")
        _check(self.missing in ("empty", "error"), "missing",
               f"must be 'empty' or 'error', got {self.missing!r}")
        _check(self.backend != "onnx" or self.weights is not None, "weights",
               "the onnx backend needs the path of a .onnx model")
        _check(self.backend != "openvino" or self.weights is not None, "weights",
               "the openvino backend needs the path of an OpenVINO .xml model")
        _check(isinstance(self.tiles, str) and (self.tiles == "" or bool(_TILES.match(self.tiles))), "tiles",
               f"must be '' (off) or 'CxR' columns x rows of 1..9 each, e.g. '2x1', got {self.tiles!r}")
        _check(_is_number(self.tile_overlap) and 0.0 <= self.tile_overlap < 0.5, "tile_overlap",
               f"must lie in [0, 0.5), got {self.tile_overlap!r}")
        _check(isinstance(self.flip, bool), "flip", "must be a bool")
        _check(self.merge in MERGE_MODES, "merge", f"must be one of {MERGE_MODES}, got {self.merge!r}")
        _check(_is_number(self.merge_iou) and 0.0 < self.merge_iou <= 1.0, "merge_iou",
               f"must lie in (0, 1], got {self.merge_iou!r}")
        _check(isinstance(self.cpu_threads, int) and not isinstance(self.cpu_threads, bool)
               and self.cpu_threads >= 0, "cpu_threads", f"must be an int >= 0, got {self.cpu_threads!r}")
        _check(self.backend != "external" or not self.multi_view, "tiles" if self.tile_grid else "flip",
               "needs an image backend (prb or onnx); the external backend receives boxes, not images")

    @property
    def tile_grid(self) -> tuple[int, int] | None:
        """(columns, rows) of ``tiles``; None when tiling is off ('' or '1x1')."""
        m = _TILES.match(self.tiles)
        grid = (int(m.group(1)), int(m.group(2))) if m else None
        return None if grid in (None, (1, 1)) else grid

    @property
    def multi_view(self) -> bool:
        """More than the one full-frame view is run."""
        return self.tile_grid is not None or self.flip

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DetectorConfig:
        """Build from a parameter/YAML mapping; unknown keys are errors, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DetectorConfigError(f"unknown detector setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> DetectorConfig:
        return dataclasses.replace(self, **changes)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise DetectorConfigError(f"DetectorConfig.{name} {message}")


__all__ = ["DetectorConfig", "DetectorConfigError", "BACKENDS", "ONNX_LAYOUTS", "MERGE_MODES"]
