"""Every node setting: its ROS parameter (name, type, default, description) and its validation.

Kept free of rclpy so that the parameter list can be checked against
config/tracker.yaml and the validation tested without DDS. ``NodeSettings``
is built once at start-up; the parameters marked ``runtime`` may change later
through the parameter service and are re-validated by the same code.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smiletrack_ros.detection.config import DetectorConfig, parameter_defaults
from smiletrack_ros.devices import DEVICE_SYNTAX, is_device_setting
from smiletrack_ros.ros.image_budget import DEFAULT_FORMATS, DEFAULT_MAX_PIXELS
from smiletrack_ros.tracking import PRESETS, ConfigError, TrackerConfig

QOS_RELIABILITY = ("best_effort", "reliable")
TRACKER_PRESETS = tuple(PRESETS)


class ParameterError(ValueError):
    """A parameter value is invalid; ``name`` is the ROS parameter."""

    def __init__(self, name: str, message: str):
        super().__init__(f"parameter '{name}': {message}")
        self.name = name


@dataclass(frozen=True)
class ParamSpec:
    """``default`` None: declared without a value (a tracker override that keeps the preset's)."""

    name: str
    type: str
    default: Any
    description: str
    runtime: bool = False


def _p(name: str, type_: str, default: Any, description: str, runtime: bool = False) -> ParamSpec:
    return ParamSpec(name, type_, default, description, runtime)


NODE_PARAMS: tuple[ParamSpec, ...] = (
    _p("image_topic", "string", "image", "camera image topic (sensor_msgs/Image); with compressed=true the node "
       "subscribes to <image_topic>/compressed (sensor_msgs/CompressedImage), as image_transport names it"),
    _p("compressed", "bool", False, "subscribe to CompressedImage (jpeg/png) instead of raw Image"),
    _p("detections_topic", "string", "detections", "external detections (vision_msgs/Detection2DArray), "
       "used only with detector.backend=external; paired with images by header stamp"),
    _p("tracks_topic", "string", "tracks", "output: confirmed tracks matched in the frame (Detection2DArray, "
       "id = persistent track id)"),
    _p("tracks_full_topic", "string", "tracks_full",
       "output: every live track with its state (smiletrack_ros/TrackArray)"),
    _p("debug_image_topic", "string", "debug_image", "output: annotated image (bgr8), when publish_debug_image"),
    _p("publish_debug_image", "bool", False, "publish the annotated debug image (costs a copy and drawing)",
       runtime=True),
    _p("input_qos.reliability", "string", "best_effort", "QoS reliability of the image and detections "
       "subscriptions: best_effort (sensor data) or reliable"),
    _p("input_qos.depth", "int", 1, "QoS history depth of the image and detections subscriptions"),
    _p("output_qos.reliability", "string", "reliable", "QoS reliability of the outputs: best_effort or reliable"),
    _p("output_qos.depth", "int", 10, "QoS history depth of the outputs"),
    _p("sync.max_pending", "int", 10, "images / detection arrays kept while waiting for their partner stamp"),
    _p("class_names", "string_array", [], "class names by class index for the outputs' class_id (and to read "
       "external detections' class_id); empty: the index as text"),
    _p("frame_rate", "double", 30.0, "nominal camera rate; the tracker scales its lost-track buffer by it"),
    _p("diagnostics_period", "double", 1.0, "seconds between /diagnostics messages"),
    _p("embedder.enabled", "bool", True, "compute SLM appearance embeddings (off: motion + IoU only)"),
    _p("embedder.weights", "string", "", "SLM weights (.safetensors); empty: the weights shipped with the "
       "package when present, else appearance is off (with a warning)"),
    _p("embedder.device", "string", "auto", "auto, cpu or cuda[:N] for the embedder"),
    _p("embedder.fp16", "bool", True, "half precision on CUDA (the CPU always runs fp32)"),
    _p("tracker.preset", "string", "paper", "tracker preset: paper, official or bytetrack; the tracker.* "
       "parameters below override single fields of it"),
    # bounds on input (validated by ros/input_limits.py)
    _p("input_limits.max_pixels", "int", DEFAULT_MAX_PIXELS, "largest image (width x height) converted or "
       "decoded, read from a compressed image's header before decoding; bigger ones are refused (4096x2160)"),
    _p("input_limits.formats", "string_array", list(DEFAULT_FORMATS), "compressed codecs decoded, told by the "
       "data's magic bytes whatever the message's format says: jpeg, png"),
    _p("input_limits.max_detections", "int", 1000, "largest external Detection2DArray read; a longer one is "
       "refused before it is deserialised"),
    _p("input_limits.max_clock_lead", "double", 1.0, "seconds an image stamp may be ahead of the node clock "
       "(wall or sim time) before the frame is refused; 0: unchecked (camera clocks not synchronised)"),
)

# DetectorConfig fields exposed as parameters; ROS parameters cannot be null, so for
# these the empty value (empty string / 0 / empty list) stands for None.
_DETECTOR_NONE_AS_EMPTY = {"weights", "input_size", "classes", "pad_mode", "channel_order", "input_scale"}
_DETECTOR_DESCRIPTIONS = {
    "backend": "detector backend: prb (PyTorch PRB-FPN), onnx (YOLOX/YOLOv5/YOLOv8 export) or external "
               "(detections from detections_topic)",
    "weights": "detector weights path (.safetensors for prb, .onnx for onnx; required by both)",
    "architecture": "PRB variant name or spec file (prb backend)",
    "input_size": "network input size (multiple of 32); 0: the model's own",
    "score_threshold": "minimum detection score kept (low, since the tracker's 2nd stage uses low-score boxes)",
    "nms_iou": "NMS IoU threshold",
    "max_detections": "at most this many boxes per image after NMS",
    "classes": "class indices kept (COCO person = 0); [-1]: every class (a parameter file cannot hold an "
               "empty list)",
    "device": "auto, cpu or cuda[:N] for the detector",
    "half": "half precision on CUDA (ignored on the CPU)",
    "layout": "ONNX output layout: auto, yolox, yolov5 or yolov8",
    "strides": "ONNX anchor-free strides",
    "pad_mode": "letterbox padding: center or corner; empty: the model's own",
    "channel_order": "network input channel order: bgr or rgb; empty: the model's own",
    "input_scale": "input pixel scale (e.g. 0.00392 for /255); 0: the model's own",
    "stamp_tolerance": "seconds within which an external detection array's stamp pairs with an image's",
    "tiles": "test-time tiles 'CxR' (columns x rows, e.g. 2x1) run besides the full frame, for small people; "
             "empty: off (each tile costs one more forward pass)",
    "tile_overlap": "share of a tile's side overlapping its neighbour, in [0, 0.5)",
    "flip": "also run the mirror image of every view (doubles the forward passes)",
    "merge": "how the views' boxes combine: nms (best box of a group) or wbf (score-weighted mean box)",
    "merge_iou": "IoU at which boxes from different views are the same object",
    "cpu_threads": "ONNX Runtime intra-op threads; 0: every core",
}
_DETECTOR_RUNTIME = {"score_threshold", "nms_iou", "max_detections", "classes"}


def _ros_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    raise TypeError(f"no ROS parameter type for {value!r}")


def _detector_params() -> tuple[ParamSpec, ...]:
    defaults = parameter_defaults()
    specs = []
    for name, description in _DETECTOR_DESCRIPTIONS.items():
        value = defaults[name]
        if name in ("classes", "strides"):
            specs.append(_p(f"detector.{name}", "integer_array", list(value or ()), description,
                            name in _DETECTOR_RUNTIME))
            continue
        if value is None:
            value = {"weights": "", "pad_mode": "", "channel_order": "", "input_size": 0, "input_scale": 0.0}[name]
        specs.append(_p(f"detector.{name}", _ros_type(value), value, description, name in _DETECTOR_RUNTIME))
    return tuple(specs)


# TrackerConfig field annotation -> ROS parameter type
_TRACKER_TYPES = {"float": "double", "int": "int", "bool": "bool", "str": "string"}
# Thresholds and weights the live tracker may take at run time; the rest shape state
# (feature bank, buffers, camera-motion compensation) and are fixed at start-up.
TRACKER_RUNTIME = {"min_score", "high_threshold", "new_track_threshold", "alpha", "appearance_gate", "min_iou",
                   "stage1_match_threshold", "stage2_match_threshold", "unconfirmed_match_threshold",
                   "duplicate_iou_distance", "mahalanobis_gate", "motion_fusion_lambda"}


def _tracker_params() -> tuple[ParamSpec, ...]:
    """One optional override per scalar TrackerConfig field; unset keeps the preset's value
    (fields whose preset value is None, e.g. the adaptive high_threshold, can be set but not unset)."""
    specs = []
    for f in dataclasses.fields(TrackerConfig):
        base = str(f.type).replace(" | None", "").replace("Optional[", "").rstrip("]")
        if f.name == "preset" or base not in _TRACKER_TYPES:
            continue
        runtime = f.name in TRACKER_RUNTIME
        specs.append(_p(f"tracker.{f.name}", _TRACKER_TYPES[base], None,
                        f"override of the preset's {f.name} (unset: the preset's value)"
                        + ("" if runtime else "; fixed at start-up"), runtime=runtime))
    return tuple(specs)


def all_param_specs() -> tuple[ParamSpec, ...]:
    from smiletrack_ros.ros.ground_settings import GROUND_PARAMS  # imports ParamSpec from here

    return NODE_PARAMS + _detector_params() + _tracker_params() + GROUND_PARAMS


@dataclass(frozen=True)
class NodeSettings:
    image_topic: str
    compressed: bool
    detections_topic: str
    tracks_topic: str
    tracks_full_topic: str
    debug_image_topic: str
    publish_debug_image: bool
    input_reliability: str
    input_depth: int
    output_reliability: str
    output_depth: int
    sync_max_pending: int
    class_names: tuple[str, ...]
    frame_rate: float
    diagnostics_period: float
    embedder_enabled: bool
    embedder_weights: str
    embedder_device: str
    embedder_fp16: bool
    tracker_preset: str
    tracker_overrides: Mapping[str, Any]
    tracker: TrackerConfig
    detector: DetectorConfig

    @property
    def external_detections(self) -> bool:
        return self.detector.backend == "external"

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeSettings:
        """``values``: parameter name -> value (None for an unset tracker override)."""
        topics = {}
        for name in ("image_topic", "detections_topic", "tracks_topic", "tracks_full_topic", "debug_image_topic"):
            topics[name] = _topic(name, values[name])
        for name in ("input_qos.reliability", "output_qos.reliability"):
            _require(values[name] in QOS_RELIABILITY, name, f"must be one of {QOS_RELIABILITY}, got {values[name]!r}")
        for name in ("input_qos.depth", "output_qos.depth", "sync.max_pending"):
            _require(values[name] >= 1, name, f"must be >= 1, got {values[name]}")
        for name in ("frame_rate", "diagnostics_period"):
            _require(values[name] > 0, name, f"must be > 0, got {values[name]}")
        names = tuple(values["class_names"])
        _require(all(n.strip() for n in names), "class_names", "names must be non-empty")
        _require(len(set(names)) == len(names), "class_names", f"names must be unique, got {list(names)}")
        _require(is_device_setting(values["embedder.device"]), "embedder.device",
                 f"must be {DEVICE_SYNTAX}, got {values['embedder.device']!r}")
        preset = values["tracker.preset"]
        _require(preset in TRACKER_PRESETS, "tracker.preset", f"must be one of {TRACKER_PRESETS}, got {preset!r}")
        overrides = {k[len("tracker."):]: v for k, v in values.items()
                     if k.startswith("tracker.") and k != "tracker.preset" and v is not None}
        detector = detector_config(values)
        _require(detector.backend == "external" or detector.weights is not None, "detector.weights",
                 f"the {detector.backend} backend needs weights (an untrained detector finds nothing useful); "
                 f"or use detector.backend external")
        return cls(
            **topics, compressed=values["compressed"], publish_debug_image=values["publish_debug_image"],
            input_reliability=values["input_qos.reliability"], input_depth=values["input_qos.depth"],
            output_reliability=values["output_qos.reliability"], output_depth=values["output_qos.depth"],
            sync_max_pending=values["sync.max_pending"], class_names=names, frame_rate=float(values["frame_rate"]),
            diagnostics_period=float(values["diagnostics_period"]), embedder_enabled=values["embedder.enabled"],
            embedder_weights=values["embedder.weights"], embedder_device=values["embedder.device"],
            embedder_fp16=values["embedder.fp16"], tracker_preset=preset, tracker_overrides=overrides,
            tracker=tracker_config(preset, overrides), detector=detector)


def tracker_config(preset: str, overrides: Mapping[str, Any]) -> TrackerConfig:
    try:
        return TrackerConfig.from_preset(preset, **overrides)
    except ConfigError as exc:
        raise ParameterError(_field_param("tracker", str(exc), overrides), str(exc)) from exc


def detector_config(values: Mapping[str, Any]) -> DetectorConfig:
    fields = {}
    for key, value in values.items():
        if not key.startswith("detector."):
            continue
        name = key[len("detector."):]
        if name in ("classes", "strides"):
            value = tuple(int(v) for v in value)
        if name == "classes" and value == (-1,):
            value = None
        if name in _DETECTOR_NONE_AS_EMPTY and value in ("", 0, 0.0, ()):
            value = None
        fields[name] = value
    try:
        return DetectorConfig.from_mapping(fields)
    except ValueError as exc:
        raise ParameterError(_field_param("detector", str(exc), fields), str(exc)) from exc


def _field_param(prefix: str, message: str, candidates: Mapping[str, Any]) -> str:
    """The parameter a config error is about: the first field name the message mentions."""
    for name in sorted(candidates, key=len, reverse=True):
        if re.search(rf"\b{re.escape(name)}\b", message):
            return f"{prefix}.{name}"
    return f"{prefix}.*"


def _topic(name: str, value: str) -> str:
    _require(bool(re.match(r"^~?/?[A-Za-z_{][A-Za-z0-9_/{}~]*$", value)) and "//" not in value
             and not value.endswith("/"), name, f"not a valid ROS topic name: {value!r}")
    return value


def _require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ParameterError(name, message)
