"""The synthetic scene: frames rendered lazily, with ground truth and simulated detections."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from smiletrack_ros.detections import Detections
from smiletrack_ros.scene.background import camera_view, make_background
from smiletrack_ros.scene.config import SceneConfig
from smiletrack_ros.scene.detector_model import simulate_detections
from smiletrack_ros.scene.floor_walkers import FloorTruth, MetricCrowd
from smiletrack_ros.scene.sensor import SensorNoise
from smiletrack_ros.scene.walkers import Crowd

# independent random streams: changing the detector model leaves images and motion alone
_STREAM_BACKGROUND, _STREAM_PEOPLE, _STREAM_DETECTOR, _STREAM_SENSOR = range(4)


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one frame.

    One row per person whose body box overlaps the image: ``ids`` (N,) int64,
    ``boxes`` (N, 4) float32 x1, y1, x2, y2 of the whole body (may reach past
    the image border), ``visibility`` (N,) float32, the fraction of the body's
    pixels that are inside the image and not hidden by nearer people.
    ``detection_ids`` (D,) int64: the identity behind each simulated detection,
    -1 for false positives. ``floor``: the people's metric positions and velocities
    (rows as ``ids``) when the scene has a metric camera, else None.
    """

    ids: np.ndarray
    boxes: np.ndarray
    visibility: np.ndarray
    detection_ids: np.ndarray
    floor: FloorTruth | None = None

    def __len__(self) -> int:
        return len(self.ids)


class SceneFrame(NamedTuple):
    index: int            # 1-based, as in MOT files
    image: np.ndarray     # HxWx3 uint8 BGR
    truth: FrameTruth
    detections: Detections


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


class Scene:
    """A seeded scene; every call of ``frames()`` replays it identically from frame 1."""

    def __init__(self, config: SceneConfig):
        self.config = config
        self.horizon_y = int(round(max(config.ground_band[0] - config.person_height[0], 0.05) * config.height))
        if config.camera is not None:
            horizon = config.camera.horizon_row(config.width, config.height)
            self.horizon_y = int(round(np.clip(horizon, 0.05 * config.height, 0.95 * config.height)))
        self.background = make_background(2 * config.width, config.height, self.horizon_y,
                                          _rng(config.seed, _STREAM_BACKGROUND))

    def __len__(self) -> int:
        return self.config.num_frames

    def camera_x(self, index: int) -> float:
        """World x of the image's left edge at 1-based frame ``index``."""
        return self.config.camera_pan * (index - 1) / self.config.fps

    def frames(self) -> Iterator[SceneFrame]:
        """Yield frames 1..num_frames one at a time (nothing is kept between frames)."""
        cfg = self.config
        crowd = (MetricCrowd if cfg.camera is not None else Crowd)(cfg, _rng(cfg.seed, _STREAM_PEOPLE))
        detector_rng = _rng(cfg.seed, _STREAM_DETECTOR)
        sensor = SensorNoise(cfg.height, cfg.width, cfg.image_noise, _rng(cfg.seed, _STREAM_SENSOR)) \
            if cfg.image_noise > 0 else None
        ground_height = (crowd.foot_lo, crowd.foot_hi,
                         float(crowd.height_at(crowd.foot_lo)), float(crowd.height_at(crowd.foot_hi)))
        for index in range(1, cfg.num_frames + 1):
            if index > 1:
                crowd.step(1.0 / cfg.fps, self.camera_x(index))
            camera_x = self.camera_x(index)
            image, truth_boxes, visible_boxes, visibility, ids = self._render(crowd, camera_x)
            detections, sources = simulate_detections(truth_boxes, visible_boxes, visibility, ids, ground_height,
                                                      cfg, detector_rng)
            if sensor is not None:
                image = sensor.apply(image)
            on_image = ((truth_boxes[:, 2] > 0) & (truth_boxes[:, 0] < cfg.width)
                        & (truth_boxes[:, 3] > 0) & (truth_boxes[:, 1] < cfg.height))
            truth = FrameTruth(ids=ids[on_image], boxes=truth_boxes[on_image].astype(np.float32),
                               visibility=visibility[on_image].astype(np.float32), detection_ids=sources,
                               floor=crowd.floor_truth(ids[on_image]) if cfg.camera is not None else None)
            yield SceneFrame(index, image, truth, detections)

    def _render(self, crowd: Crowd | MetricCrowd, camera_x: float):
        """Paint people far to near over the backdrop; measure each one's visible pixels."""
        cfg = self.config
        image = camera_view(self.background, camera_x, cfg.width)
        owner = np.full((cfg.height, cfg.width), -1, np.int32)
        walkers = sorted(crowd.walkers, key=lambda w: (w.foot_y, w.identity))
        n = len(walkers)
        full_boxes = np.zeros((n, 4), np.float64)
        areas = np.zeros(n, np.int64)
        placed: list[tuple[np.ndarray, np.ndarray]] = []
        for k, w in enumerate(walkers):
            figure = crowd.figure(w)
            x0, y0 = crowd.figure_anchor(w, figure, camera_x)
            x1, y1, x2, y2 = figure.box()
            full_boxes[k] = (x0 + x1, y0 + y1, x0 + x2, y0 + y2)
            areas[k] = len(figure.rows)
            rows, cols = figure.rows + y0, figure.cols + x0
            inside = (rows >= 0) & (rows < cfg.height) & (cols >= 0) & (cols < cfg.width)
            rows, cols = rows[inside], cols[inside]
            image[rows, cols] = figure.colours[inside]
            owner[rows, cols] = k
            placed.append((rows, cols))

        for left, right in cfg.occluders:  # pillars hide whoever walks behind them
            a, b = int(round(left * cfg.width)), int(round(right * cfg.width))
            image[:, a:b] = 90
            owner[:, a:b] = -1
        seen = np.bincount(owner[owner >= 0], minlength=n)
        visibility = seen / np.maximum(areas, 1)
        visible_boxes = full_boxes.copy()
        for k in np.flatnonzero(seen):
            rows, cols = placed[k]
            mine = owner[rows, cols] == k
            rows, cols = rows[mine], cols[mine]
            visible_boxes[k] = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        ids = np.array([w.identity for w in walkers], np.int64)
        return image, full_boxes, visible_boxes, visibility, ids


def generate_scene(config: SceneConfig | None = None) -> Scene:
    """The scene for ``config`` (defaults when None); frames are made on demand by ``Scene.frames()``."""
    return Scene(config if config is not None else SceneConfig())
