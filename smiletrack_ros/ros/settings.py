"""Every node setting: its ROS parameter (name, type, default, description) and its validation.

Kept free of rclpy so that the parameter list can be checked against
config/tracker.yaml and the validation tested without DDS. ``NodeSettings``
is built once at start-up; the parameters marked ``runtime`` may change later
through the parameter service and are re-validated by the same code.
"""
from __future__ import annotations

import math
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smiletrack_ros.detection.config import DetectorConfig, parameter_defaults
from smiletrack_ros.devices import DEVICE_SYNTAX, is_device_setting
from smiletrack_ros.embedding.config import EmbedderConfig
from smiletrack_ros.errors import SettingError
from smiletrack_ros.image_codec import DEFAULT_FORMATS, DEFAULT_MAX_PIXELS
from smiletrack_ros.tracking import PRESETS, ConfigError, TrackerConfig

QOS_RELIABILITY = ("best_effort", "reliable")
PIPELINE_MODES = ("pipelined", "sequential")
TRACKER_PRESETS = tuple(PRESETS)


class ParameterError(ValueError):
    """A parameter value is invalid; ``name`` is the ROS parameter."""

    def __init__(self, name: str, message: str):
        super().__init__(f"parameter '{name}': {message}")
        self.name = name


@dataclass(frozen=True)
class ParamSpec:
    """``default`` None: a tracker field, whose value comes from ``tracker.preset``.
    ``limits`` (low, high), inclusive: checked here and shown by ``ros2 param describe``
    (FloatingPointRange / IntegerRange); every double must also be finite."""

    name: str
    type: str
    default: Any
    description: str
    runtime: bool = False
    limits: tuple[float, float] | None = None

    @property
    def constraints(self) -> str:
        """The descriptor's additional_constraints: what the validation enforces, in words."""
        parts = []
        if self.limits is not None:
            parts.append(f"in [{self.limits[0]:g}, {self.limits[1]:g}]")
        if self.type == "double":
            parts.append("finite")
        if self.name.startswith("tracker.") and self.name in TRACKER_OPTIONAL:
            parts.append(f"{NONE_VALUE:g}: none ({TRACKER_OPTIONAL[self.name]})")
        if self.name.startswith("tracker.") and self.name != "tracker.preset":
            parts.append("validated with the preset by TrackerConfig")
        return "; ".join(parts)


def _p(name: str, type_: str, default: Any, description: str, runtime: bool = False,
       limits: tuple[float, float] | None = None) -> ParamSpec:
    return ParamSpec(name, type_, default, description, runtime, limits)


NODE_PARAMS: tuple[ParamSpec, ...] = (
    _p("image_topic", "string", "image", "camera image topic (sensor_msgs/Image); with compressed=true the node "
       "subscribes to <image_topic>/compressed (sensor_msgs/CompressedImage), as image_transport names it"),
    _p("cameras", "string_array", [], "several cameras in one node: for each NAME the node reads NAME/<image_topic> "
       "(+ NAME/<detections_topic>) and publishes NAME/<tracks_topic> etc., with a tracker of its own (ids per "
       "camera) and its own diagnostics; one detector and one embedder serve all, the frames that arrived together "
       "in one batch. Empty: one camera on the topics as given"),
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
    _p("input_qos.depth", "int", 1, "QoS history depth of the image and detections subscriptions",
       limits=(1, 1000)),
    _p("output_qos.reliability", "string", "reliable", "QoS reliability of the outputs: best_effort or reliable"),
    _p("output_qos.depth", "int", 10, "QoS history depth of the outputs", limits=(1, 1000)),
    _p("sync.max_pending", "int", 10, "images / detection arrays kept while waiting for their partner stamp",
       limits=(1, 1000)),
    _p("class_names", "string_array", [], "class names by class index for the outputs' class_id (and to read "
       "external detections' class_id); empty: the index as text"),
    _p("frame_rate", "double", 30.0, "nominal camera rate (Hz); the tracker scales its lost-track buffer by it "
       "and the diagnostics count frames missing from the stamps by it", limits=(0.1, 1000.0)),
    _p("diagnostics_period", "double", 1.0, "seconds between /diagnostics messages", limits=(0.01, 3600.0)),
    _p("embedder.enabled", "bool", True, "compute appearance embeddings (off: motion + IoU only)"),
    _p("embedder.backend", "string", "slm", "appearance model: slm (SMILEtrack's SLM, default), osnet (OSNet, "
       "torchreid state dict), onnx (any re-ID .onnx) or openvino (OpenVINO IR .xml, the openvino extra)"),
    _p("embedder.weights", "string", "", "model file of the backend (.safetensors for slm, .pth for osnet, .onnx, "
       ".xml); empty: the SLM weights shipped with the package (slm only)"),
    _p("embedder.device", "string", "auto", "auto, cpu or cuda[:N] for the embedder"),
    _p("embedder.fp16", "bool", True, "half precision on CUDA (the CPU runs fp32 unless embedder.bf16)"),
    _p("embedder.bf16", "bool", False, "bfloat16 on the CPU in OpenVINO (the openvino extra): on CPUs with bf16 "
       "units (AMX, AVX512-BF16) several times the crops/s (the SLM here: 1.8 vs 10.3 ms a crop), embeddings "
       "within ~1e-4 in cosine of fp32's; CPU only"),
    _p("embedder.threads", "int", 1, "CPU threads of ONNX Runtime / OpenVINO (0: the runtime's default, every "
       "core)", limits=(0, 256)),
    _p("embedder.runtime", "string", "auto", "what runs the network: slm / osnet: torch, onnxruntime or openvino "
       "(an in-memory ONNX export of the same network and weights, on the CPU); onnx: onnxruntime or openvino (the "
       "same file, fp32; the openvino extra); auto: the measured faster one (slm / osnet: onnxruntime on the CPU, "
       "openvino with embedder.bf16, torch on CUDA; onnx: openvino on the CPU when installed, else onnxruntime)"),
    _p("embedder.input_height", "int", 0, "crop height fed to the model (0: from the model or its card)",
       limits=(0, 1024)),
    _p("embedder.input_width", "int", 0, "crop width fed to the model (0: from the model or its card)",
       limits=(0, 1024)),
    _p("embedder.channel_order", "string", "", "channel order the model takes: bgr or rgb (empty: from its card "
       "or the backend's convention)"),
    # how the node runs the models (ros/latest_worker.py) and on how many CPU threads
    _p("pipeline.mode", "string", "sequential", "pipelined: the detector works on frame t+1 while the embedder "
       "and tracker finish frame t (a thread each: for machines with cores to spare); sequential (default, best "
       "latency on a 2-core CPU): one thread runs each frame start to end, its crops still split "
       "(pipeline.embed_split); the tracks are the same"),
    _p("pipeline.embed_workers", "int", 1, "pipelined mode: frames embedded at once; 1: the embedder runs on the "
       "tracker's thread; more: a stage of its own with that many threads (more throughput, more latency); "
       "tracking stays in frame order", limits=(1, 8)),
    _p("pipeline.embed_split", "int", 2, "the crops of a frame (of all cameras' frames taken together) cut into "
       "that many parts embedded at once, each on a thread of its own (2: both cores of a small CPU on the "
       "slowest step); 1: one call. Any mode: the same cut gives the same tracks", limits=(1, 8)),
    _p("threads.torch", "int", 1, "torch intra-op threads of the process (the SLM, OSNet and PRB backends); "
       "0: torch's default (every core)", limits=(0, 256)),
    _p("threads.opencv", "int", 1, "OpenCV threads (image decoding and resizing); 0: OpenCV's default",
       limits=(0, 256)),
    _p("tracker.preset", "string", "reid", "tracker preset: reid (default), paper, official or bytetrack; "
       "the tracker.* parameters below override single fields of it"),
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
    "backend": "detector backend: prb (PyTorch PRB-FPN), onnx (YOLOX/YOLOv5/YOLOv8/PRB export), openvino "
               "(OpenVINO IR, the openvino extra) or external (detections from detections_topic)",
    "weights": "detector weights path (.safetensors for prb, .onnx for onnx, .xml for openvino; required by each)",
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
    "cpu_threads": "ONNX Runtime / OpenVINO intra-op threads; 0: every core",
}
# The node's own defaults where they differ from DetectorConfig's (measured on a 2-core CPU: with the
# detector and the embedder on threads of their own, one runtime thread each is fastest).
_DETECTOR_NODE_DEFAULTS = {"cpu_threads": 1}
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


_DETECTOR_LIMITS = {"stamp_tolerance": (0.0, 10.0)}


def _detector_params() -> tuple[ParamSpec, ...]:
    defaults = parameter_defaults() | _DETECTOR_NODE_DEFAULTS
    specs = []
    for name, description in _DETECTOR_DESCRIPTIONS.items():
        value = defaults[name]
        if name in ("classes", "strides"):
            specs.append(_p(f"detector.{name}", "integer_array", list(value or ()), description,
                            name in _DETECTOR_RUNTIME))
            continue
        if value is None:
            value = {"weights": "", "pad_mode": "", "channel_order": "", "input_size": 0, "input_scale": 0.0}[name]
        specs.append(_p(f"detector.{name}", _ros_type(value), value, description, name in _DETECTOR_RUNTIME,
                        _DETECTOR_LIMITS.get(name)))
    return tuple(specs)


_ROS_TYPES = {float: "double", int: "int", bool: "bool", str: "string"}
# Thresholds and weights the live tracker may take at run time; the rest shape state
# (feature bank, buffers, camera-motion compensation) and are fixed at start-up.
TRACKER_RUNTIME = {"min_score", "high_threshold", "new_track_threshold", "alpha", "appearance_gate", "min_iou",
                   "stage1_match_threshold", "stage2_match_threshold", "unconfirmed_match_threshold",
                   "duplicate_iou_distance", "mahalanobis_gate", "motion_fusion_lambda"}
# A ROS parameter cannot be null: the tracker fields that may be None take NONE_VALUE for it
# (below every such field's range), so that every parameter has a value to read, dump and load.
NONE_VALUE = -2.0
# What None means for the tracker fields that may be None (any other such field: "none").
_NONE_MEANS = {"tracker.high_threshold": "the adaptive score split",
               "tracker.new_track_threshold": "the frame's high threshold",
               "tracker.appearance_gate": "no gate",
               "tracker.lost_track_seconds": "track_buffer frames at 30 fps",
               "tracker.motion_reference_fps": "steps in frames at the tracker frame rate",
               "tracker.reid_impostor_quantile": "no learnt similarity floor",
               "tracker.impostor_reference_fps": "each impostor pair counted once",
               "tracker.reid_margin": "no ambiguity test"}


def _tracker_fields() -> dict[str, type]:
    """TrackerConfig's scalar fields -> their Python type (Optional unwrapped), from the real annotations."""
    out = {}
    for name, hint in typing.get_type_hints(TrackerConfig).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if args else hint
        if name != "preset" and base in _ROS_TYPES:
            out[name] = base
    return out


def _optional_tracker_fields() -> dict[str, str]:
    """tracker.<field> -> what None means, for every scalar field whose annotation admits None."""
    hints = typing.get_type_hints(TrackerConfig)
    return {f"tracker.{n}": _NONE_MEANS.get(f"tracker.{n}", "none") for n in _tracker_fields()
            if type(None) in typing.get_args(hints[n])}


TRACKER_OPTIONAL = _optional_tracker_fields()


def _tracker_params() -> tuple[ParamSpec, ...]:
    """One parameter per scalar TrackerConfig field; its value comes from ``tracker.preset`` unless given."""
    specs = []
    for name, base in _tracker_fields().items():
        runtime = name in TRACKER_RUNTIME
        specs.append(_p(f"tracker.{name}", _ROS_TYPES[base], None,
                        f"the preset's {name} unless set here" + ("" if runtime else "; fixed at start-up"),
                        runtime=runtime))
    return tuple(specs)


def tracker_values(preset: str) -> dict[str, Any]:
    """The tracker.* parameter values of a preset (what the node declares when none is given)."""
    config = tracker_config(preset, {})
    values = {}
    for name in _tracker_fields():
        value = getattr(config, name)
        values[f"tracker.{name}"] = NONE_VALUE if value is None else value
    return values


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
    embedder: EmbedderConfig | None     # None when embedder.enabled is false
    tracker_preset: str
    tracker: TrackerConfig
    detector: DetectorConfig
    cameras: tuple[str, ...]
    pipeline_mode: str
    embed_workers: int
    embed_split: int
    torch_threads: int
    opencv_threads: int

    @property
    def external_detections(self) -> bool:
        return self.detector.backend == "external"

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeSettings:
        """``values``: parameter name -> value (None for a tracker field left to the preset)."""
        check_limits(values)
        topics = {}
        for name in ("image_topic", "detections_topic", "tracks_topic", "tracks_full_topic", "debug_image_topic"):
            topics[name] = _topic(name, values[name])
        for name in ("input_qos.reliability", "output_qos.reliability"):
            _require(values[name] in QOS_RELIABILITY, name, f"must be one of {QOS_RELIABILITY}, got {values[name]!r}")
        names = tuple(values["class_names"])
        _require(all(n.strip() for n in names), "class_names", "names must be non-empty")
        _require(len(set(names)) == len(names), "class_names", f"names must be unique, got {list(names)}")
        _require(is_device_setting(values["embedder.device"]), "embedder.device",
                 f"must be {DEVICE_SYNTAX}, got {values['embedder.device']!r}")
        embedder = embedder_config(values) if values["embedder.enabled"] else None
        preset = values["tracker.preset"]
        _require(preset in TRACKER_PRESETS, "tracker.preset", f"must be one of {TRACKER_PRESETS}, got {preset!r}")
        cameras = tuple(values["cameras"])
        for camera in cameras:
            _require(bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$", camera)), "cameras",
                     f"a camera name is a relative topic name (letters, digits, _ and /), got {camera!r}")
        _require(len(set(cameras)) == len(cameras), "cameras", f"names must be unique, got {list(cameras)}")
        _require(values["pipeline.mode"] in PIPELINE_MODES, "pipeline.mode",
                 f"must be one of {PIPELINE_MODES}, got {values['pipeline.mode']!r}")
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
            embedder=embedder, tracker_preset=preset,
            tracker=tracker_config(preset, tracker_overrides(values)), detector=detector,
            cameras=cameras, pipeline_mode=values["pipeline.mode"], embed_workers=values["pipeline.embed_workers"],
            embed_split=values["pipeline.embed_split"],
            torch_threads=values["threads.torch"], opencv_threads=values["threads.opencv"])


def check_limits(values: Mapping[str, Any]) -> None:
    """Every double finite, every value with limits within them (what the descriptors show)."""
    for spec in all_param_specs():
        value = values.get(spec.name)
        if value is None or spec.type not in ("double", "int"):
            continue
        _require(spec.type != "double" or math.isfinite(value), spec.name, f"must be finite, got {value!r}")
        if spec.limits is not None:
            low, high = spec.limits
            _require(low <= value <= high, spec.name, f"must lie in [{low:g}, {high:g}], got {value!r}")


def tracker_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """TrackerConfig fields from the tracker.* parameters (None: left to the preset; NONE_VALUE: None)."""
    out = {}
    for key, value in values.items():
        if key.startswith("tracker.") and key != "tracker.preset" and value is not None:
            out[key[len("tracker."):]] = None if key in TRACKER_OPTIONAL and value == NONE_VALUE else value
    return out


def embedder_config(values: Mapping[str, Any]) -> EmbedderConfig:
    """The ``embedder.*`` parameters as the embedder's config (its errors name the parameter)."""
    try:
        return EmbedderConfig.from_mapping({k: v for k, v in values.items() if k.startswith("embedder.")})
    except SettingError as exc:
        raise ParameterError(f"embedder.{exc.field}", exc.reason) from exc


def tracker_config(preset: str, overrides: Mapping[str, Any]) -> TrackerConfig:
    try:
        return TrackerConfig.from_preset(preset, **overrides)
    except ConfigError as exc:
        raise ParameterError(_error_param("tracker", exc), str(exc)) from exc


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
        raise ParameterError(_error_param("detector", exc), str(exc)) from exc


def _error_param(prefix: str, exc: Exception) -> str:
    """The parameter a config error is about: its ``SettingError.field`` (every config's errors
    derive from it; another ValueError names no field)."""
    return f"{prefix}.{exc.field}" if isinstance(exc, SettingError) else f"{prefix}.*"


def _topic(name: str, value: str) -> str:
    _require(bool(re.match(r"^~?/?[A-Za-z_{][A-Za-z0-9_/{}~]*$", value)) and "//" not in value
             and not value.endswith("/"), name, f"not a valid ROS topic name: {value!r}")
    return value


def _require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ParameterError(name, message)
