"""Stage costs: one function per ``Stage.cost`` name, each scoring still-unmatched
track rows against detection rows from the frame's shared inputs.

Every function takes ``(inputs, rows, dets, iou, max_cost)`` (``iou`` is the
(rows x dets) block of the frame's IoU matrix, ``max_cost`` the stage's
threshold) and returns ``(cost, appearance)``: ``appearance`` is None when the
cost used motion only, else (similarity, pair has appearance), which the
tracker records for the matched pairs. A new cost is a new function here and a
new entry in ``COSTS``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import kalman
from .calibration import ImpostorSimilarity
from .inputs import FrameInput
from .matching import fuse_score, fused_cost, gated_iou_cost
from .tracks import TrackState, TrackTable

if TYPE_CHECKING:
    from .config import TrackerConfig

Appearance = tuple[np.ndarray, np.ndarray] | None
CostResult = tuple[np.ndarray, Appearance]


@dataclass(slots=True)
class CostInputs:
    """What every stage's cost may read in one frame (nothing here is modified)."""

    config: TrackerConfig
    tracks: TrackTable
    frame: FrameInput
    det_xyah: np.ndarray  # (N, 4) the detections as Kalman measurements
    frame_id: int  # this frame's number (1-based)
    frame_rate: float  # the tracker's nominal rate
    impostors: ImpostorSimilarity  # similarities between different people, for the "reid" cost's floor


def motion(inputs: CostInputs, rows: np.ndarray, dets: np.ndarray, iou: np.ndarray, max_cost: float) -> CostResult:
    """1 - IoU, fused with the detection score when ``fuse_score`` is set."""
    cost = 1.0 - iou
    if inputs.config.fuse_score:
        cost = fuse_score(cost, inputs.frame.scores[dets], np.ones(iou.shape, bool))
    return cost, None


def iou_only(inputs: CostInputs, rows: np.ndarray, dets: np.ndarray, iou: np.ndarray, max_cost: float) -> CostResult:
    """1 - IoU, whatever else is set."""
    return 1.0 - iou, None


def _one_feature(inputs: CostInputs, rows: np.ndarray, dets: np.ndarray, iou: np.ndarray, max_cost: float,
                 gated: bool) -> CostResult:
    cfg, frame = inputs.config, inputs.frame
    if frame.features is None:
        return motion(inputs, rows, dets, iou, max_cost)
    sim, has = inputs.tracks.appearance.similarity(rows, frame.features.take(dets, axis=0), frame.feature_valid[dets],
                                                   cfg.track_feature)
    if gated:
        # Pairs already over the threshold on IoU alone stay unmatched whatever the gate says.
        candidates = has & (1.0 - iou <= max_cost)
        t = inputs.tracks
        maha = kalman.squared_mahalanobis(t.mean[rows], t.cov[rows], inputs.det_xyah[dets], candidates)
        cost = gated_iou_cost(iou, sim, has, maha, cfg.motion_fusion_lambda, cfg.mahalanobis_gate,
                              cfg.appearance_gate)
    else:
        cost = fused_cost(iou, sim, has, cfg.alpha, cfg.appearance_gate, cfg.min_iou)
    if cfg.fuse_score:
        cost = fuse_score(cost, frame.scores[dets], ~has)
    return cost, (sim, has)


def fused(inputs: CostInputs, rows: np.ndarray, dets: np.ndarray, iou: np.ndarray, max_cost: float) -> CostResult:
    """The paper's 1 - (alpha IoU + (1 - alpha) appearance) with the track's latest
    (or EMA) feature, gated; motion only without embeddings."""
    return _one_feature(inputs, rows, dets, iou, max_cost, gated=False)


def gated_iou(inputs: CostInputs, rows: np.ndarray, dets: np.ndarray, iou: np.ndarray,
              max_cost: float) -> CostResult:
    """The public code's stage 1: IoU, vetoed by appearance fused with Mahalanobis distance."""
    return _one_feature(inputs, rows, dets, iou, max_cost, gated=True)


def bank(inputs: CostInputs, rows: np.ndarray, dets: np.ndarray, iou: np.ndarray, max_cost: float) -> CostResult:
    """Multi-template similarity (max over the feature bank) fused with IoU; IoU only
    without embeddings."""
    cfg, frame = inputs.config, inputs.frame
    if frame.features is None:
        return 1.0 - iou, None
    # The bank is searched only for pairs that a perfect appearance match (cost
    # alpha * (1 - IoU)) could bring under the threshold; the others keep
    # similarity 0, which gates them out or leaves them over the threshold.
    least_iou = 1.0 - max_cost / cfg.alpha if cfg.alpha > 0 else 0.0
    sim, has = inputs.tracks.appearance.bank_similarity(rows, frame.features.take(dets, axis=0),
                                                        frame.feature_valid[dets],
                                                        iou >= max(cfg.min_iou, least_iou))
    return fused_cost(iou, sim, has, cfg.alpha, cfg.appearance_gate, cfg.min_iou), (sim, has)


def unseen_seconds(inputs: CostInputs, rows: np.ndarray) -> np.ndarray:
    """Seconds since each track of ``rows`` was last matched: by timestamps where both
    ends have one, else in frames at the nominal rate."""
    t, stamp = inputs.tracks, inputs.frame.timestamp
    frames = (inputs.frame_id - t.last_frame[rows]) / inputs.frame_rate
    if stamp is None:
        return frames
    elapsed = stamp - t.last_time[rows]
    return np.where(np.isnan(elapsed), frames, elapsed)


def reid(inputs: CostInputs, rows: np.ndarray, dets: np.ndarray, iou: np.ndarray, max_cost: float) -> CostResult:
    """Appearance-led re-identification of tracks that lost their object: 1 - the max
    similarity over the track's feature bank, for detections where the person can be
    after the time unseen, and inf elsewhere (no appearance: no match).

    Where a person can be: within ``reid_base_radius + reid_max_speed * seconds unseen``
    box heights of the track's predicted centre ("speed"), inside the chi-square gate
    of the predicted position's covariance, which grows with the prediction steps
    ("mahalanobis"), or both. The appearance gate applies as in every stage, and the
    similarity must also pass the scene's impostor quantile (``calibration``), and, with
    ``reid_margin``, beat by that margin the detection's similarity to every other
    confirmed track (``_ambiguous``)."""
    cfg, frame, t = inputs.config, inputs.frame, inputs.tracks
    if frame.features is None:
        return np.full(iou.shape, np.inf), None
    near = np.ones(iou.shape, bool)
    centre, det_centre = t.mean[rows, :2], inputs.det_xyah[dets, :2]
    if cfg.reid_gate in ("speed", "both"):
        radius = t.mean[rows, 3] * (cfg.reid_base_radius + cfg.reid_max_speed * unseen_seconds(inputs, rows))
        offset = det_centre[None, :, :] - centre[:, None, :]
        near &= np.einsum("tni,tni->tn", offset, offset) <= (radius * radius)[:, None]
    if cfg.reid_gate in ("mahalanobis", "both"):
        near &= kalman.squared_position_mahalanobis(t.mean[rows], t.cov[rows], det_centre) <= REID_CHI2_GATE
    features, valid = frame.features.take(dets, axis=0), frame.feature_valid[dets]
    sim, has = t.appearance.bank_similarity(rows, features, valid, near)
    cost = 1.0 - sim.astype(np.float64)
    rejected = ~(near & has)
    floor = None if cfg.reid_impostor_quantile is None else inputs.impostors.quantile(cfg.reid_impostor_quantile)
    if floor is not None:
        rejected |= sim < floor
    if cfg.appearance_gate is not None:
        rejected |= sim < cfg.appearance_gate
    if cfg.reid_margin is not None:
        rejected |= _ambiguous(t, rows, features, valid, sim, ~rejected, cfg.reid_margin)
    np.putmask(cost, rejected, np.inf)
    return cost, (sim, has)


def _ambiguous(tracks: TrackTable, rows: np.ndarray, features: np.ndarray, valid: np.ndarray, sim: np.ndarray,
               open_pairs: np.ndarray, margin: float) -> np.ndarray:
    """The ratio test of re-ID retrieval: an open pair of a lost track (``rows``) and a
    detection is ambiguous when the detection is within ``margin`` as similar to another
    confirmed track, lost or tracked, wherever it is: an embedder that finds the newcomer
    as much like someone else cannot say that this person came back. Only detections with
    an open pair are compared with the other tracks' banks."""
    cols = np.flatnonzero(open_pairs.any(axis=0))
    ambiguous = np.zeros(sim.shape, bool)
    others = tracks.state != int(TrackState.TENTATIVE)
    others[rows] = False
    rivals = np.concatenate([rows, others.nonzero()[0]])  # the stage's rows first
    if len(cols) == 0 or len(rivals) < 2:
        return ambiguous
    full, has = tracks.appearance.bank_similarity(rivals, features.take(cols, axis=0), valid[cols],
                                                  np.ones((len(rivals), len(cols)), bool))
    full = np.where(has, full, -np.inf)
    # Each pair's rival: the best other track of its detection (the runner-up for the best track).
    top = full.argmax(axis=0)
    span = np.arange(len(cols))
    best = full[top, span]
    full[top, span] = -np.inf
    rival = np.where(np.arange(len(rows))[:, None] == top, full.max(axis=0), best)
    ambiguous[:, cols] = open_pairs[:, cols] & (sim[:, cols] < rival + margin)
    return ambiguous


# Chi-square 99% quantile, 2 degrees of freedom: the position part of the state.
REID_CHI2_GATE = 9.2103

CostFunction = Callable[[CostInputs, np.ndarray, np.ndarray, np.ndarray, float], CostResult]
COSTS: dict[str, CostFunction] = {
    "fused": fused,
    "gated_iou": gated_iou,
    "bank": bank,
    "iou": iou_only,
    "motion": motion,
    "reid": reid,
}
