"""OpenVINO backend: Intel's SSD-style person detectors (``person-detection-retail-0013``:
``detection_out`` 1x1xNx7 rows ``[image_id, label, conf, x_min, y_min, x_max, y_max]``,
corners normalised to the input) and OpenVINO IR exports of the YOLO family.

The ``openvino`` package is an optional extra (``pip install smiletrack_ros[openvino]``).
YOLO-family models go through the ONNX backend's letterbox and decode (same layouts, same
input conventions); SSD models take the whole frame resized to their input (no letterbox),
in BGR 0..255 as Intel's models expect.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from smiletrack_ros.detections import Detections
from smiletrack_ros.image_check import check_image

from .config import DetectorConfig, DetectorConfigError
from .onnx_detector import LAYOUT_INPUT, OnnxDetector
from .postprocess import detect_layout, select, to_detections

SSD_ROW = 7  # image_id, label, confidence, x_min, y_min, x_max, y_max


@dataclass(frozen=True)
class Stretch:
    """The frame resized to the model's (possibly non-square) input: boxes scale back per axis."""

    height: int
    width: int
    in_height: int
    in_width: int

    def apply(self, image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (self.in_width, self.in_height), interpolation=cv2.INTER_LINEAR)

    def boxes_to_source(self, boxes: torch.Tensor) -> torch.Tensor:
        scale = boxes.new_tensor([self.width / self.in_width, self.height / self.in_height] * 2)
        out = boxes * scale
        out[:, 0::2] = out[:, 0::2].clamp(0, self.width)
        out[:, 1::2] = out[:, 1::2].clamp(0, self.height)
        return out


def _openvino_device(setting: str) -> str:
    if setting in ("auto", "cpu"):
        return "CPU"
    raise DetectorConfigError("device", f"{setting!r}: the openvino backend runs on 'cpu' here "
                                        f"(CUDA devices are not OpenVINO devices)")


class OpenVinoDetector(OnnxDetector):
    """``config.weights``: an OpenVINO IR ``.xml`` (its ``.bin`` beside it). The layout is
    ``ssd`` for a (1, 1, N, 7) output, else read as for ONNX models (``yolox``, ``yolov5``
    (YOLOv5/v7/PRB), ``yolov8``) unless ``config.layout`` names it."""

    def __init__(self, config: DetectorConfig):  # replaces the ONNX session set-up; the rest is shared
        import openvino as ov

        path = Path(config.weights or "")
        if not path.is_file() or path.suffix != ".xml":
            raise FileNotFoundError(f"OpenVINO model (.xml with its .bin) not found: {path}")
        self.config = config
        self.device = "cpu"
        core = ov.Core()
        if config.cpu_threads:
            core.set_property("CPU", {"INFERENCE_NUM_THREADS": config.cpu_threads})
        try:
            model = core.read_model(str(path))
        except RuntimeError as err:  # a corrupt or truncated IR, a missing .bin
            raise ValueError(f"{path}: not a readable OpenVINO model ({str(err).splitlines()[0][:200]})") from None
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ValueError(f"{path}: expected one input and one output, got {len(model.inputs)} and "
                             f"{len(model.outputs)}")
        shape = model.inputs[0].get_partial_shape()
        out_shape = model.outputs[0].get_partial_shape()
        if shape.rank.get_length() != 4 or not shape.is_static:
            raise ValueError(f"{path}: expected a static NCHW input, got {shape}")
        _, _, self.in_height, self.in_width = (int(d) for d in shape.to_shape())
        # fp32 as the other backends on the CPU (OpenVINO's default on CPUs with bf16 units is bf16:
        # YOLOX-Nano's raw outputs moved by up to 0.57 here)
        self.compiled = core.compile_model(model, _openvino_device(config.device), {"INFERENCE_PRECISION_HINT": "f32"})
        self.batched = False
        out_dims = [int(d) for d in out_shape.to_shape()] if out_shape.is_static else None
        if config.layout == "ssd" or (config.layout == "auto" and out_dims is not None
                                      and len(out_dims) == 4 and out_dims[-1] == SSD_ROW):
            self.layout = "ssd"
            self.input_size = max(self.in_height, self.in_width)
            return
        if self.in_height != self.in_width:
            raise ValueError(f"{path}: YOLO-family models need a square input, got {self.in_height}x{self.in_width}")
        if config.input_size is not None and config.input_size != self.in_height:
            raise DetectorConfigError("input_size", f"{config.input_size} differs from the model's fixed "
                                                    f"{self.in_height}")
        self.input_size = self.in_height
        if config.layout != "auto":
            self.layout = config.layout
        elif out_dims is None:
            raise ValueError(f"{path}: dynamic output shape; set DetectorConfig.layout")
        else:
            self.layout = detect_layout(tuple(out_dims), self.input_size, config.strides)
        if self.layout not in LAYOUT_INPUT or self.layout == "nanodet":
            raise ValueError(f"{path}: layout {self.layout!r} is not supported by the openvino backend")
        self._adopt_convention()

    def detect_batch(self, images) -> list[Detections]:
        return [self._detect(check_image(image)) for image in images]

    def _detect(self, image_bgr: np.ndarray) -> Detections:
        if self.layout != "ssd":
            blob, box = self.preprocess(image_bgr)
            return self._detections([self._run(blob)], box)
        stretch = Stretch(image_bgr.shape[0], image_bgr.shape[1], self.in_height, self.in_width)
        canvas = stretch.apply(image_bgr).astype(np.float32)
        if self.config.channel_order == "rgb":
            canvas = canvas[..., ::-1]
        if self.config.input_scale is not None:
            canvas = canvas * self.config.input_scale
        rows = self._run(np.ascontiguousarray(canvas.transpose(2, 0, 1)[None])).reshape(-1, SSD_ROW)
        end = np.flatnonzero(rows[:, 0] < 0)  # image_id -1 ends the list
        rows = rows[: end[0] if len(end) else len(rows)]
        rows = rows[rows[:, 1] >= 1]  # label 0 is the background
        labels = rows[:, 1].astype(np.int64) - 1  # SSD labels count from 1: person -> class 0 as in COCO
        xyxy = rows[:, 3:7] * np.float32([self.in_width, self.in_height] * 2)
        xywh = np.concatenate(((xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]), 1)
        scores = np.zeros((len(rows), int(labels.max()) + 1 if len(rows) else 1), np.float32)
        scores[np.arange(len(rows)), labels] = rows[:, 2]
        c = self.config
        chosen = select(torch.from_numpy(xywh), None, torch.from_numpy(scores), score_threshold=c.score_threshold,
                        nms_iou=c.nms_iou, max_detections=c.max_detections, classes=c.classes)
        return to_detections(chosen, stretch)

    def _run(self, blob: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled(blob)[0], dtype=np.float32)
