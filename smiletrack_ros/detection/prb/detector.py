"""The ``prb`` backend: PRB-FPN in torch, letterbox and decode on the model's device."""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import torch

from smiletrack_ros.detections import Detections
from smiletrack_ros.image_check import check_image

from ...devices import resolve_device
from ..config import DetectorConfig, DetectorConfigError
from ..letterbox import Letterbox
from ..postprocess import select, to_detections
from .network import PRBNet, SpecError
from .reparam import fuse
from .variants import load_spec
from .weights import load_weights, read_spec

log = logging.getLogger(__name__)


class PRBDetector:
    """``config.weights`` (a .safetensors from convert_prb) is loaded strictly into the
    architecture stored with it (else ``config.architecture``); without weights the
    network keeps its random initialisation (structure and timing checks only)."""

    def __init__(self, config: DetectorConfig, net: PRBNet | None = None):
        self.config = config
        self.device = resolve_device(config.device, DetectorConfigError, "DetectorConfig.device")
        # one conv per Conv / RepConv: the same output, faster (a network passed in stays as it is)
        net = self._load(config) if net is None else copy.deepcopy(net)
        self.net = fuse(net.eval()).to(self.device)
        self.half = config.half and self.device.type == "cuda"
        if self.half:
            self.net.half()
        # converted official specs carry no size: P6 (stride-64) models are trained at 1280
        default_size = 1280 if self.net.max_stride >= 64 else 640
        self.input_size = config.input_size or int(self.net.yaml.get("input_size", default_size))
        if self.input_size % self.net.max_stride:
            raise ValueError(f"input_size {self.input_size} is not a multiple of the network's "
                             f"largest stride {self.net.max_stride}")
        self.pad_mode = config.pad_mode or "center"
        self.channel_order = config.channel_order or "rgb"
        self.input_scale = config.input_scale if config.input_scale is not None else 1.0 / 255.0

    @staticmethod
    def _load(config: DetectorConfig) -> PRBNet:
        """The network of ``config.weights`` (its stored spec), else of ``config.architecture``."""
        weights = Path(config.weights) if config.weights is not None else None
        spec = read_spec(weights) if weights is not None else None
        where = f"{weights} (stored spec)" if spec is not None else config.architecture
        try:
            net = PRBNet(spec or load_spec(config.architecture))
        except SpecError as err:
            raise SpecError(f"{where}: {err}") from None
        if weights is not None:
            load_weights(net, weights)
        else:
            log.warning("prb detector %s has no weights: random initialisation, detections are meaningless "
                        "(set DetectorConfig.weights to a converted .safetensors)", config.architecture)
        return net

    def preprocess(self, image_bgr: np.ndarray) -> tuple[torch.Tensor, Letterbox]:
        """uint8 HWC goes to the device as is (a quarter of the float bytes); colour
        order, letterbox and scaling happen there."""
        box = Letterbox(image_bgr.shape[0], image_bgr.shape[1], self.input_size, self.pad_mode)
        x = torch.from_numpy(np.ascontiguousarray(image_bgr)).to(self.device, non_blocking=True).permute(2, 0, 1)
        if self.channel_order == "rgb":
            x = x.flip(0)
        x = box.apply(x) * self.input_scale
        return x[None].to(torch.float16 if self.half else torch.float32), box

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        return self.detect_batch([image_bgr])[0]

    def update_thresholds(self, config: DetectorConfig) -> None:
        """``config``'s thresholds from the next image on; the network stays."""
        self.config = self.config.with_thresholds_of(config)

    @torch.inference_mode()
    def detect_batch(self, images) -> list[Detections]:
        """Images of any sizes, letterboxed to the same canvas: one forward pass for all."""
        prepared = [self.preprocess(check_image(image)) for image in images]
        preds = self.net(torch.cat([x for x, _ in prepared]))
        c = self.config
        return [to_detections(select(pred[:, :4], pred[:, 4], pred[:, 5:], score_threshold=c.score_threshold,
                                     nms_iou=c.nms_iou, max_detections=c.max_detections, classes=c.classes), box)
                for pred, (_, box) in zip(preds, prepared, strict=True)]
