"""A simulated person detector: what a real one gets right and wrong, from the scene's truth.

Misses grow with occlusion, scores fall with it (so occluded people land in the
tracker's low-score band), boxes jitter and shrink to the visible part, and
spurious boxes appear with mostly low scores.
"""
from __future__ import annotations

import numpy as np

from smiletrack_ros.detections import Detections
from smiletrack_ros.scene.config import SceneConfig

_RECALL_SLOPE = 0.07      # width of the logistic recall-vs-visibility curve
_MIN_BOX_SIDE = 4.0       # pixels; smaller boxes are never reported
PERSON_CLASS = 0          # COCO person, as the real detectors report it


def detection_probability(visibility: np.ndarray, config: SceneConfig) -> np.ndarray:
    """Chance that a person with this visible fraction is detected (0 when nothing shows)."""
    v = np.asarray(visibility, np.float64)
    p = config.det_recall / (1.0 + np.exp(-(v - config.det_half_visibility) / _RECALL_SLOPE))
    return np.where(v > 0.0, p, 0.0)


def mean_score(visibility: np.ndarray, config: SceneConfig) -> np.ndarray:
    v = np.clip(np.asarray(visibility, np.float64), 0.0, 1.0)
    return config.det_score_low + (config.det_score_high - config.det_score_low) * v**1.5


def simulate_detections(full_boxes: np.ndarray, visible_boxes: np.ndarray, visibility: np.ndarray,
                        identities: np.ndarray, ground_height: tuple[float, float, float, float],
                        config: SceneConfig, rng: np.random.Generator) -> tuple[Detections, np.ndarray]:
    """Detections for one frame and, per detection, the identity it came from (-1: false positive).

    ``full_boxes``/``visible_boxes``: (N, 4) x1, y1, x2, y2 of each person's whole body and of
    its visible pixels; ``ground_height``: (foot_lo, foot_hi, height_lo, height_hi) for placing
    false positives where people could stand.
    """
    w, h = config.width, config.height
    found = rng.random(len(visibility)) < detection_probability(visibility, config)
    v = visibility[found][:, None].astype(np.float64)
    clipped = np.clip(full_boxes[found], [0, 0, 0, 0], [w, h, w, h])
    boxes = v * clipped + (1.0 - v) * visible_boxes[found]
    size = np.tile(boxes[:, 2:4] - boxes[:, 0:2], (1, 2))
    boxes = boxes + rng.normal(0.0, config.det_box_noise, boxes.shape) * size
    scores = mean_score(visibility[found], config) + rng.normal(0.0, config.det_score_noise, len(boxes))
    sources = identities[found]

    fp_boxes, fp_scores = _false_positives(ground_height, config, rng)
    boxes = np.clip(np.concatenate([boxes, fp_boxes]), [0, 0, 0, 0], [w, h, w, h])
    scores = np.clip(np.concatenate([scores, fp_scores]), 0.01, 0.99)
    sources = np.concatenate([sources, np.full(len(fp_boxes), -1, np.int64)])

    keep = np.all(boxes[:, 2:4] - boxes[:, 0:2] >= _MIN_BOX_SIDE, axis=1)
    order = rng.permutation(int(keep.sum()))
    boxes, scores, sources = boxes[keep][order], scores[keep][order], sources[keep][order]
    detections = Detections(boxes.astype(np.float32), scores.astype(np.float32),
                            np.full(len(boxes), PERSON_CLASS, np.int64))
    return detections, sources.astype(np.int64)


def _false_positives(ground_height: tuple[float, float, float, float], config: SceneConfig,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Person-shaped clutter boxes standing on the ground band, with mostly low scores."""
    count = int(rng.poisson(config.det_false_positives))
    foot_lo, foot_hi, height_lo, height_hi = ground_height
    foot = rng.uniform(foot_lo, foot_hi, count)
    height = height_lo + (height_hi - height_lo) * (foot - foot_lo) / (foot_hi - foot_lo)
    height = height * rng.uniform(0.4, 1.1, count)
    width = height * rng.uniform(0.3, 0.55, count)
    cx = rng.uniform(0, config.width, count)
    boxes = np.stack([cx - width / 2, foot - height, cx + width / 2, foot], axis=1).reshape(-1, 4)
    scores = 0.05 + 0.6 * rng.beta(1.3, 4.0, count)
    return boxes, scores
