"""ONNX Runtime backend for YOLO-family exports (YOLOX raw grids, YOLOv5/v7/PRB, YOLOv8)
and NanoDet's six-map GFL outputs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from smiletrack_ros.detections import Detections
from smiletrack_ros.devices import onnx_providers
from smiletrack_ros.image_check import check_image

from .config import DetectorConfig, DetectorConfigError, OnnxConfig
from .letterbox import Letterbox
from .postprocess import decode_nanodet, detect_layout, pair_nanodet_outputs, select, split_prediction, to_detections


@dataclass(frozen=True)
class InputConvention:
    """How a model family wants its pixels: (x - mean) / std per channel, in this order."""

    channel_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pad_mode: str


LAYOUT_INPUT = {
    "yolox": InputConvention("bgr", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "corner"),
    "yolov5": InputConvention("rgb", (0.0, 0.0, 0.0), (255.0, 255.0, 255.0), "center"),
    "yolov8": InputConvention("rgb", (0.0, 0.0, 0.0), (255.0, 255.0, 255.0), "center"),
    "nanodet": InputConvention("bgr", (103.53, 116.28, 123.675), (57.375, 57.12, 58.395), "stretch"),
}


class OnnxDetector:
    """Runs a single-input detector model; the layout is read from the output shape
    (six outputs: NanoDet) unless ``config.layout`` names it."""

    def __init__(self, config: OnnxConfig):
        import onnxruntime as ort

        path = Path(config.weights or "")
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        self.config = config
        # TensorRT builds fp32 engines here: an fp16 engine would change the boxes of an fp32 export
        providers, self.device = onnx_providers(config.device, ort.get_available_providers(), DetectorConfigError)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if config.cpu_threads:
            options.intra_op_num_threads = config.cpu_threads
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ValueError(f"{path}: expected one input, got {len(inputs)}")
        self.input_name = inputs[0].name
        self.input_size = self._input_size(inputs[0].shape, config.input_size, path)
        # several images go through in one run only where the batch axis is free and every
        # output has one to split along
        self.batched = not isinstance(inputs[0].shape[0], int) and all(len(o.shape) == 3 for o in outputs)
        if len(outputs) == 1:
            self.layout = config.layout if config.layout != "auto" else self._infer_layout(outputs[0].shape)
            if self.layout == "nanodet":
                raise ValueError(f"{path}: layout 'nanodet' needs the six class/box maps, the model has one output")
        elif config.layout in ("auto", "nanodet") and len(outputs) % 2 == 0:
            self.layout = "nanodet"
            shapes = [tuple(o.shape) for o in outputs]
            if all(isinstance(d, int) for shape in shapes for d in shape):
                pair_nanodet_outputs(shapes)  # fail at start-up, not on the first image
        else:
            raise ValueError(f"{path}: {len(outputs)} outputs fit no supported layout (one output, or NanoDet's "
                             f"class/box map pairs)")
        self._adopt_convention()

    def _adopt_convention(self) -> None:
        """Channel order, padding and normalisation: the config's where set, else the layout's."""
        config, convention = self.config, LAYOUT_INPUT[self.layout]
        self.channel_order = config.channel_order or convention.channel_order
        self.pad_mode = config.pad_mode or convention.pad_mode
        if config.input_scale is not None:
            self.mean, self.std = np.zeros(3, np.float32), np.full(3, 1.0 / config.input_scale, np.float32)
        else:
            self.mean, self.std = np.float32(convention.mean), np.float32(convention.std)

    @staticmethod
    def _input_size(shape: list, wanted: int | None, path: Path) -> int:
        if len(shape) != 4:
            raise ValueError(f"{path}: expected an NCHW input, got shape {shape}")
        h, w = shape[2], shape[3]
        if isinstance(h, int) and isinstance(w, int):
            if h != w:
                raise ValueError(f"{path}: only square inputs are supported, got {h}x{w}")
            if wanted is not None and wanted != h:
                raise DetectorConfigError("input_size", f"{wanted} differs from the model's fixed {h}")
            return h
        if wanted is None:
            raise DetectorConfigError("input_size", f"must be set: {path} has a dynamic input size")
        return wanted

    def _infer_layout(self, shape: list) -> str:
        if not all(isinstance(d, int) for d in shape):
            probe = np.zeros((1, 3, self.input_size, self.input_size), np.float32)
            shape = list(self.session.run(None, {self.input_name: probe})[0].shape)
        return detect_layout(tuple(shape), self.input_size, self.config.strides)

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        box = Letterbox(image_bgr.shape[0], image_bgr.shape[1], self.input_size, self.pad_mode)
        canvas = box.apply(image_bgr)
        # channel by channel straight into the NCHW blob: (x - mean) / std as one float32 expression
        # over the whole HWC array gave, but without its two temporaries and the transposing copy
        # (~10x faster at 416 x 416); mean/std are given in BGR order
        blob = np.empty((1, 3, *canvas.shape[:2]), np.float32)
        for c, target in enumerate(blob[0]):
            source = 2 - c if self.channel_order == "rgb" else c
            np.subtract(canvas[..., source], self.mean[source], out=target)
            target /= self.std[source]
        return blob, box

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        return self.detect_batch([image_bgr])[0]

    def update_thresholds(self, config: DetectorConfig) -> None:
        """``config``'s thresholds from the next image on; the session stays."""
        self.config = self.config.with_thresholds_of(config)

    def detect_batch(self, images) -> list[Detections]:
        """Images of any sizes: one run for all where the model takes a batch, else one each."""
        prepared = [self.preprocess(check_image(image)) for image in images]
        if self.batched and len(prepared) > 1:
            stacked = self.session.run(None, {self.input_name: np.concatenate([blob for blob, _ in prepared])})
            runs = [[o[i:i + 1] for o in stacked] for i in range(len(prepared))]
        else:
            runs = [self.session.run(None, {self.input_name: blob}) for blob, _ in prepared]
        return [self._detections(outputs, box) for outputs, (_, box) in zip(runs, prepared, strict=True)]

    def _detections(self, raw_outputs: list[np.ndarray], box: Letterbox) -> Detections:
        outputs = [torch.from_numpy(o) for o in raw_outputs]
        if self.layout == "nanodet":
            pairs = pair_nanodet_outputs([tuple(o.shape) for o in outputs])
            xywh, obj, cls = decode_nanodet([outputs[c] for c, _ in pairs], [outputs[b] for _, b in pairs],
                                            self.input_size)
        else:
            xywh, obj, cls = split_prediction(outputs[0], self.layout, self.input_size, self.config.strides)
        c = self.config
        chosen = select(xywh, obj, cls, score_threshold=c.score_threshold, nms_iou=c.nms_iou,
                        max_detections=c.max_detections, classes=c.classes)
        return to_detections(chosen, box)
