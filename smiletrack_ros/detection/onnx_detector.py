"""ONNX Runtime backend for YOLO-family exports (YOLOX raw grids, YOLOv5/v7/PRB, YOLOv8)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import Detections, check_image
from .config import DetectorConfig, DetectorConfigError
from .letterbox import Letterbox
from .postprocess import detect_layout, select, split_prediction, to_detections

# Each layout's own input convention: (channel order, scale, letterbox padding).
LAYOUT_INPUT = {
    "yolox": ("bgr", 1.0, "corner"),
    "yolov5": ("rgb", 1.0 / 255.0, "center"),
    "yolov8": ("rgb", 1.0 / 255.0, "center"),
}


def _providers(device: str) -> tuple[list, str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"], "cpu"
    if "CUDAExecutionProvider" in available:
        index = int(device.split(":")[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"], f"cuda:{index}"
    if device.startswith("cuda"):
        raise DetectorConfigError(f"DetectorConfig.device {device!r}: onnxruntime has no CUDA provider here "
                                  f"(available: {available})")
    return ["CPUExecutionProvider"], "cpu"


class OnnxDetector:
    """Runs a single-input, single-output detector model; the layout is read from the
    output shape unless ``config.layout`` names it."""

    def __init__(self, config: DetectorConfig):
        import onnxruntime as ort

        path = Path(config.weights or "")
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        self.config = config
        providers, self.device = _providers(config.device)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{path}: expected one input and one output, got {len(inputs)} and {len(outputs)} "
                             f"(multi-output models such as NanoDet are not supported)")
        self.input_name = inputs[0].name
        self.input_size = self._input_size(inputs[0].shape, config.input_size, path)
        self.layout = config.layout if config.layout != "auto" else self._infer_layout(outputs[0].shape)
        order, scale, pad = LAYOUT_INPUT[self.layout]
        self.channel_order = config.channel_order or order
        self.input_scale = config.input_scale if config.input_scale is not None else scale
        self.pad_mode = config.pad_mode or pad

    @staticmethod
    def _input_size(shape: list, wanted: int | None, path: Path) -> int:
        if len(shape) != 4:
            raise ValueError(f"{path}: expected an NCHW input, got shape {shape}")
        h, w = shape[2], shape[3]
        if isinstance(h, int) and isinstance(w, int):
            if h != w:
                raise ValueError(f"{path}: only square inputs are supported, got {h}x{w}")
            if wanted is not None and wanted != h:
                raise DetectorConfigError(f"DetectorConfig.input_size {wanted} differs from the model's fixed {h}")
            return h
        if wanted is None:
            raise DetectorConfigError(f"DetectorConfig.input_size must be set: {path} has a dynamic input size")
        return wanted

    def _infer_layout(self, shape: list) -> str:
        if not all(isinstance(d, int) for d in shape):
            probe = np.zeros((1, 3, self.input_size, self.input_size), np.float32)
            shape = list(self.session.run(None, {self.input_name: probe})[0].shape)
        return detect_layout(tuple(shape), self.input_size, self.config.strides)

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        box = Letterbox(image_bgr.shape[0], image_bgr.shape[1], self.input_size, self.pad_mode)
        canvas = box.apply(image_bgr)
        if self.channel_order == "rgb":
            canvas = canvas[..., ::-1]
        blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
        if self.input_scale != 1.0:
            blob *= np.float32(self.input_scale)
        return blob, box

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        check_image(image_bgr)
        blob, box = self.preprocess(image_bgr)
        raw = torch.from_numpy(self.session.run(None, {self.input_name: blob})[0])
        xywh, obj, cls = split_prediction(raw, self.layout, self.input_size, self.config.strides)
        c = self.config
        chosen = select(xywh, obj, cls, score_threshold=c.score_threshold, nms_iou=c.nms_iou,
                        max_detections=c.max_detections, classes=c.classes)
        return to_detections(chosen, box)
