"""Detector settings: one small frozen dataclass per backend, every field checked once.

``DetectorConfig`` holds what every backend shares (the weights file and the box
filter); ``ImageDetectorConfig`` adds what the image backends share (device,
letterbox input, test-time views); ``PrbConfig``, ``OnnxConfig`` and
``ExternalConfig`` add their own. ``DetectorConfig.from_mapping`` builds the one
``backend`` names from a flat mapping (the node's ``detector.*`` parameters,
YAML). A new backend is a subclass plus an entry in ``CONFIGS`` (and one in
``factory.DETECTORS``); docs/ARCHITECTURE.md has the steps.
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from smiletrack_ros.devices import DEVICE_SYNTAX, is_device_setting
from smiletrack_ros.errors import SettingError

ONNX_LAYOUTS = ("auto", "yolox", "yolov5", "yolov8", "nanodet", "ssd")
PAD_MODES = ("center", "corner", "stretch")
CHANNEL_ORDERS = ("bgr", "rgb")
MERGE_MODES = ("nms", "wbf")
MISSING_MODES = ("empty", "error")
_TILES = re.compile(r"^([1-9])x([1-9])$")
# read afresh by every detection: changing them needs no new session or network
THRESHOLD_FIELDS = ("score_threshold", "nms_iou", "max_detections", "classes")


class DetectorConfigError(SettingError):
    """A detector setting is invalid: ``field`` names it, the message says why."""


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _choice(options: tuple[str, ...], none: bool = False) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: (none and v is None) or v in options), f"must be one of {options}{' or None' if none else ''}"


# field -> (check, what a valid value is): the one place each setting is validated.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "weights": (lambda v: v is None or (isinstance(v, str) and v != ""), "must be a non-empty path or None"),
    "score_threshold": (lambda v: _is_number(v) and 0.0 <= v < 1.0, "must lie in [0, 1)"),
    "nms_iou": (lambda v: _is_number(v) and 0.0 < v <= 1.0, "must lie in (0, 1]"),
    "max_detections": (lambda v: _is_int(v) and v > 0, "must be a positive int"),
    "classes": (lambda v: v is None or (len(v) > 0 and all(_is_int(c) and c >= 0 for c in v)),
                "must be non-negative ints or None"),
    "device": (is_device_setting, f"must be {DEVICE_SYNTAX}"),
    "input_size": (lambda v: v is None or (_is_int(v) and v >= 32 and v % 32 == 0), "must be a multiple of 32 >= 32"),
    "pad_mode": _choice(PAD_MODES, none=True),
    "channel_order": _choice(CHANNEL_ORDERS, none=True),
    "input_scale": (lambda v: v is None or (_is_number(v) and v > 0), "must be a positive number or None"),
    "tiles": (lambda v: isinstance(v, str) and (v == "" or bool(_TILES.match(v))),
              "must be '' (off) or 'CxR' columns x rows of 1..9 each, e.g. '2x1'"),
    "tile_overlap": (lambda v: _is_number(v) and 0.0 <= v < 0.5, "must lie in [0, 0.5)"),
    "flip": (lambda v: isinstance(v, bool), "must be a bool"),
    "merge": _choice(MERGE_MODES),
    "merge_iou": (lambda v: _is_number(v) and 0.0 < v <= 1.0, "must lie in (0, 1]"),
    "architecture": (lambda v: isinstance(v, str) and v != "", "must name a PRB variant or a spec file"),
    "half": (lambda v: isinstance(v, bool), "must be a bool"),
    "layout": _choice(ONNX_LAYOUTS),
    "strides": (lambda v: len(v) > 0 and all(_is_int(s) and s > 0 for s in v), "must be positive ints"),
    "cpu_threads": (lambda v: _is_int(v) and v >= 0, "must be an int >= 0"),
    "stamp_tolerance": (lambda v: _is_number(v) and v >= 0, "must be >= 0"),
    "missing": _choice(MISSING_MODES),
}
_TUPLES = {"classes", "strides"}  # given as any sequence (YAML and ROS give lists), kept as tuples


def _normalised(name: str, value: Any) -> Any:
    if name == "weights" and isinstance(value, os.PathLike):
        return os.fspath(value)
    if name in _TUPLES and value is not None and not isinstance(value, str):
        try:
            return tuple(value)
        except TypeError:
            return value
    return value


def _check(name: str, value: Any) -> None:
    ok, valid = _CHECKS[name]
    try:
        good = bool(ok(value))
    except TypeError:
        good = False
    if not good:
        raise DetectorConfigError(name, f"{valid}, got {value!r}")


@dataclass(frozen=True)
class DetectorConfig:
    """What every backend shares: ``weights`` (a model file, or for ``external`` an optional MOT
    det file to read) and the box filter. ``score_threshold`` defaults low (0.05) because the
    tracker's second stage associates low-score boxes; ``classes`` keeps boxes whose top class
    is listed (COCO person = 0), ``None`` keeps every class; ``nms_iou`` is the image backends'
    NMS (external boxes arrive already filtered)."""

    backend: ClassVar[str]
    weights: str | None = None
    score_threshold: float = 0.05
    nms_iou: float = 0.7
    max_detections: int = 300
    classes: tuple[int, ...] | None = (0,)

    def __post_init__(self) -> None:
        if type(self) not in CONFIGS.values():
            raise TypeError(f"{type(self).__name__} is not a backend's config: build one of "
                            f"{', '.join(c.__name__ for c in CONFIGS.values())} or use DetectorConfig.from_mapping")
        for f in dataclasses.fields(self):
            value = _normalised(f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
            _check(f.name, value)

    @property
    def multi_view(self) -> bool:
        """More than the one full-frame view is run (image backends with tiles or flips)."""
        return False

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DetectorConfig:
        """The config of ``values["backend"]`` (default prb) from a flat mapping of settings.

        Every setting given is checked, also those of other backends (the node passes all
        ``detector.*`` parameters), which are then left out; unknown names are errors,
        and so are test-time views for a backend that gets no images."""
        values = dict(values)
        backend = values.pop("backend", "prb")
        if backend not in CONFIGS:
            raise DetectorConfigError("backend", f"must be one of {tuple(CONFIGS)}, got {backend!r}")
        unknown = sorted(set(values) - set(_CHECKS))
        if unknown:
            raise DetectorConfigError(unknown[0], f"unknown detector setting(s) {unknown}; known: "
                                                  f"{['backend', *sorted(_CHECKS)]}")
        chosen = CONFIGS[backend]
        own = {f.name for f in dataclasses.fields(chosen)}
        for name, value in values.items():
            value = _normalised(name, value)
            _check(name, value)
            if name in VIEW_FIELDS and name not in own and value != _VIEW_DEFAULTS[name]:
                raise DetectorConfigError(name, f"needs an image backend ({', '.join(IMAGE_BACKENDS)}); "
                                                f"the {backend} backend receives boxes, not images")
        return chosen(**{k: v for k, v in values.items() if k in own})

    def replace(self, **changes: Any) -> DetectorConfig:
        """A copy with ``changes``; a new ``backend`` keeps the settings the two share."""
        if "backend" in changes:
            return DetectorConfig.from_mapping({**self.as_mapping(), **changes})
        return dataclasses.replace(self, **changes)

    def as_mapping(self) -> dict[str, Any]:
        """The flat settings ``from_mapping`` takes, ``backend`` included."""
        return {"backend": self.backend, **dataclasses.asdict(self)}

    def thresholds_only_differ(self, other: DetectorConfig) -> bool:
        """True when ``other`` changes nothing but THRESHOLD_FIELDS: no model needs rebuilding."""
        return self.replace(**{f: getattr(other, f) for f in THRESHOLD_FIELDS}) == other

    def with_thresholds_of(self, other: DetectorConfig) -> DetectorConfig:
        return self.replace(**{f: getattr(other, f) for f in THRESHOLD_FIELDS})


@dataclass(frozen=True)
class ImageDetectorConfig(DetectorConfig):
    """What the image backends share. ``input_size``, ``pad_mode``, ``channel_order`` and
    ``input_scale`` left ``None`` take the model's own convention (PRB/YOLOv5/v8: RGB/255
    centred letterbox; YOLOX: BGR 0..255, padded right/bottom; NanoDet: BGR
    mean/std-normalised, stretched to the square).

    Test-time views (off by default since each view costs one more forward pass):
    ``tiles`` "CxR" adds C columns x R rows of overlapping crops (``tile_overlap`` of a
    tile's side shared with its neighbour) to the full frame, so small people reach the
    network at near native resolution; ``flip`` adds the mirror image of every view.
    ``merge`` combines the views' boxes: ``nms`` keeps the best-scoring box of each
    overlapping group (IoU >= ``merge_iou``), ``wbf`` averages the group's boxes weighted
    by score and scores it by the mean over the views that could see it.
    """

    device: str = "auto"
    input_size: int | None = None
    pad_mode: str | None = None
    channel_order: str | None = None
    input_scale: float | None = None
    tiles: str = ""
    tile_overlap: float = 0.2
    flip: bool = False
    merge: str = "nms"
    merge_iou: float = 0.65

    @property
    def tile_grid(self) -> tuple[int, int] | None:
        """(columns, rows) of ``tiles``; None when tiling is off ('' or '1x1')."""
        m = _TILES.match(self.tiles)
        grid = (int(m.group(1)), int(m.group(2))) if m else None
        return None if grid in (None, (1, 1)) else grid

    @property
    def multi_view(self) -> bool:
        return self.tile_grid is not None or self.flip


@dataclass(frozen=True)
class PrbConfig(ImageDetectorConfig):
    """PRB-FPN in torch: ``architecture`` names a variant or a spec file (weights converted with
    ``convert_prb`` carry their own); ``half`` runs fp16 on CUDA (the CPU always runs fp32)."""

    backend: ClassVar[str] = "prb"
    architecture: str = "prb-2py-e6e-1280"
    half: bool = True


@dataclass(frozen=True)
class OnnxConfig(ImageDetectorConfig):
    """A YOLO-family export on ONNX Runtime: ``weights`` is the .onnx file (required);
    ``layout`` its output format (auto: inferred from the shapes), ``strides`` the anchor-free
    grid; ``cpu_threads`` > 0 caps ONNX Runtime's intra-op threads (0: its own choice)."""

    backend: ClassVar[str] = "onnx"
    model_file: ClassVar[str] = ".onnx model"
    layout: str = "auto"
    strides: tuple[int, ...] = (8, 16, 32)
    cpu_threads: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weights is None:
            raise DetectorConfigError("weights", f"the {self.backend} backend needs the path of its {self.model_file}")


@dataclass(frozen=True)
class OpenVinoConfig(OnnxConfig):
    """An OpenVINO IR model (``weights``: the .xml, its .bin beside it; the ``openvino`` extra): an
    SSD-style detection output (``layout: ssd``, e.g. Intel's person-detection-retail-0013) or a
    YOLO-family export, read as the ONNX ones; ``cpu_threads`` > 0 caps OpenVINO's CPU threads."""

    backend: ClassVar[str] = "openvino"
    model_file: ClassVar[str] = "OpenVINO .xml model"


@dataclass(frozen=True)
class ExternalConfig(DetectorConfig):
    """Boxes from outside (a Detection2DArray topic, or ``weights``: a MOT det file): an array
    pairs with the image whose stamp is within ``stamp_tolerance`` seconds; ``missing``: what
    an image without one gets (``empty``: no boxes, ``error``: an error)."""

    backend: ClassVar[str] = "external"
    stamp_tolerance: float = 1e-3
    missing: str = "empty"


# backend name -> its config class (factory.DETECTORS names the detector class of each)
CONFIGS: dict[str, type[DetectorConfig]] = {"prb": PrbConfig, "onnx": OnnxConfig, "openvino": OpenVinoConfig,
                                            "external": ExternalConfig}
BACKENDS = tuple(CONFIGS)
IMAGE_BACKENDS = tuple(n for n, c in CONFIGS.items() if issubclass(c, ImageDetectorConfig))
VIEW_FIELDS = ("tiles", "tile_overlap", "flip", "merge", "merge_iou")
_VIEW_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ImageDetectorConfig) if f.name in VIEW_FIELDS}


def parameter_defaults() -> dict[str, Any]:
    """Every backend's settings with their defaults, flat (``backend`` is prb): the node's
    ``detector.*`` parameters."""
    defaults: dict[str, Any] = {"backend": "prb"}
    for config in CONFIGS.values():
        for f in dataclasses.fields(config):
            defaults.setdefault(f.name, f.default)
    return defaults


__all__ = ["BACKENDS", "CONFIGS", "DetectorConfig", "DetectorConfigError", "ExternalConfig", "ImageDetectorConfig",
           "MERGE_MODES", "ONNX_LAYOUTS", "OnnxConfig", "OpenVinoConfig", "PrbConfig", "parameter_defaults"]
