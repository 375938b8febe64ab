"""A simulated person detector: what a real one gets right and wrong, from the scene's truth.

It stands for a detector trained on MOT-style data (MOT17, CrowdHuman full-body
boxes), whose targets are the whole (amodal) body even where it is hidden: for a
partly occluded person it predicts the full extent, inferring the hidden edges
from the visible part, so those edges are the uncertain ones. Hence:

- boxes are the full body (clipped to the image), every edge jittered by
  ``det_box_noise`` of the box size, plus, on an edge that is hidden,
  ``det_amodal_noise`` times how far it lies beyond what is seen (an edge inferred
  across half the body is uncertain by a tenth of the body with the default 0.2,
  about how much human proportions vary);
- misses grow with occlusion (a logistic in the visible fraction: people mostly
  hidden are rarely found) and scores fall with it, so occluded people land in the
  tracker's low-score band;
- spurious boxes appear with mostly low scores.
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
    boxes = amodal_boxes(full_boxes[found], visible_boxes[found], config, rng)
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


def amodal_boxes(full_boxes: np.ndarray, visible_boxes: np.ndarray, config: SceneConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """The detector's full-body boxes for people it found: the true extent inside the image, each edge
    jittered by ``det_box_noise`` of the box size and, where the edge is hidden, by ``det_amodal_noise``
    of the distance it is inferred beyond the visible pixels (``visible_boxes``)."""
    w, h = config.width, config.height
    full = np.clip(np.asarray(full_boxes, np.float64).reshape(-1, 4), [0, 0, 0, 0], [w, h, w, h])
    seen = np.asarray(visible_boxes, np.float64).reshape(-1, 4)
    size = np.tile(np.maximum(full[:, 2:4] - full[:, 0:2], 1.0), (1, 2))
    inferred = np.abs(full - seen)  # pixels beyond the visible part, per edge (0 for a visible edge)
    std = config.det_box_noise * size + config.det_amodal_noise * inferred
    return full + rng.normal(0.0, 1.0, full.shape) * std


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
