"""SmileTracker: the Similarity Matching Cascade over a stacked track table.

One ``update()`` per frame, in numbered steps:
 1. read and clean the input (errors raise before any state changes);
 2. predict every track one step (one vectorised Kalman step; lost tracks stop growing);
 3. camera-motion compensation (optional);
 4. drop boxes scoring < ``min_score``; split high / low (adaptive threshold by default);
 5.-7. the cascade, ``config.stages`` in order; the paper's three stages are
    stage 1: tracked + lost tracks vs high-score boxes;
    stage 2: still-unmatched tracks vs low-score boxes;
    unconfirmed: tentative tracks vs the remaining boxes that could start a
    track (high-score ones, and low-score ones scoring >= ``new_track_threshold``);
 8. apply every match at once (Kalman correction, appearance, counters);
 9. matched -> tracked, unmatched tracked -> lost; unmatched tentative and timed-out lost removed;
10. new tracks from the remaining boxes scoring >= ``new_track_threshold``;
11. optional duplicate removal (a tracked and a lost track on one object);
12. report the confirmed tracks matched in this frame.

Lost tracks are removed once unmatched for longer than ``lost_track_seconds``
(by default ``track_buffer / 30``) seconds: measured by timestamps when both ends
have one, otherwise in frames at the tracker's nominal frame rate.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from smiletrack_ros.boxes import iou_matrix, xyah_to_xyxy, xyxy_to_xyah
from smiletrack_ros.image_check import check_image

from . import kalman
from .bank import AppearanceStore
from .calibration import PEOPLE_PER_FRAME, ImpostorSimilarity
from .config import Stage, TrackerConfig
from .costs import COSTS, CostInputs
from .inputs import FrameInput, InputError, read_frame
from .matching import assign, forbid_class_changes, true_pairs
from .tracks import TrackOutput, TrackState, TrackTable

if TYPE_CHECKING:
    from .cmc import CameraMotionEstimator

LOG = logging.getLogger(__name__)
_TIME_EPS = 1e-6

TRACKED, LOST, TENTATIVE = int(TrackState.TRACKED), int(TrackState.LOST), int(TrackState.TENTATIVE)
_STATES = {int(state): state for state in TrackState}


@dataclass
class _Matches:
    """Matches gathered over the stages: table rows, detection rows, similarity used;
    and the detection rows matched to confirmed tracks."""

    rows: list[np.ndarray]
    dets: list[np.ndarray]
    sims: list[np.ndarray]
    confirmed_dets: list[np.ndarray]

    def add(self, rows: np.ndarray, dets: np.ndarray, sims: np.ndarray, confirmed: bool) -> None:
        self.rows.append(rows)
        self.dets.append(dets)
        self.sims.append(sims)
        if confirmed:
            self.confirmed_dets.append(dets)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.rows:
            return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0)
        return np.concatenate(self.rows), np.concatenate(self.dets), np.concatenate(self.sims)


def adaptive_high_threshold(scores: np.ndarray) -> float:
    """The paper's split: the mean score of the higher half of the boxes
    (ceil(N/2) of them, so a single box is high). Boxes scoring at least this are
    high-score boxes."""
    if len(scores) == 0:
        return 1.0
    ordered = scores.copy()  # (ndarray.sort: np.sort's wrapper costs as much again)
    ordered.sort()
    higher = ordered[len(scores) // 2:]  # ceil(N/2) of them
    return float(higher.sum() / len(higher))


def _ema_momentum(config: TrackerConfig) -> float | None:
    """The EMA feature is kept only by the settings that match on it."""
    return config.ema_momentum if config.track_feature == "ema" else None


class _Pools:
    """The tracks and detections still unmatched while the cascade runs, by pool name
    (config.TRACK_POOLS, config.DETECTION_POOLS). Pools list table rows in row order,
    and detections band by band in score-band order (ascending within a band)."""

    def __init__(self, state: np.ndarray, high: np.ndarray, low: np.ndarray, can_start: np.ndarray) -> None:
        """``high``, ``low``, ``can_start``: (N,) masks of the detections in each band
        and of those that could start a track; the pools own (and change) them."""
        self._state = state
        self._free_tracks = np.empty(len(state), bool)
        self._free_tracks.fill(True)  # (np.ones is a Python wrapper: twice the cost)
        self._free_high, self._free_low, self._can_start = high, low, can_start
        self._per_state = np.bincount(state, minlength=len(_POOL_STATES)).tolist()  # tracks in each state

    def tracks(self, pool: str) -> np.ndarray:
        state, free = self._state, self._free_tracks
        if pool == "confirmed":
            if self._per_state[TENTATIVE] == 0:
                return free.nonzero()[0]
            return (free & (state != TENTATIVE)).nonzero()[0]
        if self._per_state[_POOL_STATES[pool]] == 0:  # often no lost or tentative track
            return _NO_ROWS
        return (free & (state == _POOL_STATES[pool])).nonzero()[0]

    def detections(self, pool: str) -> np.ndarray:
        if pool == "high":
            return self._free_high.nonzero()[0]
        if pool == "low":
            return self._free_low.nonzero()[0]
        return np.concatenate([self._free_high.nonzero()[0], (self._free_low & self._can_start).nonzero()[0]])

    def new_tracks(self) -> np.ndarray:
        """The unmatched detections that start tracks (= the "startable" pool's boxes scoring
        at least the new-track threshold), in the same order."""
        can_start = self._can_start
        return np.concatenate([(self._free_high & can_start).nonzero()[0], (self._free_low & can_start).nonzero()[0]])

    def take(self, rows: np.ndarray, dets: np.ndarray, pool: str) -> None:
        """Rows and detections matched by a stage on detection pool ``pool``."""
        self._free_tracks[rows] = False
        # A detection lies in one band: only that band's mask can change.
        if pool != "low":
            self._free_high[dets] = False
        if pool != "high":
            self._free_low[dets] = False


_POOL_STATES = {"tracked": TRACKED, "lost": LOST, "tentative": TENTATIVE}
_NO_ROWS = np.zeros(0, np.intp)
_NO_ROWS.flags.writeable = False


class ConcurrentUpdateError(RuntimeError):
    """``update()`` was called while another call on the same tracker was running."""


class SmileTracker:
    """Multi-object tracker; see the module docstring for the per-frame steps.

    ``update()`` is transactional: the track table saves its arrays when the call
    starts and copies a column only before writing into it (``TrackTable.begin``),
    so an exception (bad input, MemoryError) puts back the state from before the
    call. An instance is not thread-safe: a second ``update()`` entered while one
    runs raises ``ConcurrentUpdateError`` (use one tracker per stream, or serialise
    the calls).

    After each ``update()``, ``last_rejected`` holds how many input rows were
    dropped as unusable (non-finite or non-positive-size boxes, non-finite
    scores or class ids) and ``last_missing_appearance`` how many kept rows had
    no usable embedding."""

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = 30.0) -> None:
        if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float)) or \
                not np.isfinite(frame_rate) or frame_rate <= 0:
            raise InputError(f"frame_rate: must be a positive number of frames per second, got {frame_rate!r}")
        self.frame_rate = float(frame_rate)
        self._camera: CameraMotionEstimator | None = None
        self._busy = threading.Lock()
        self._warned: set[str] = set()
        self._config = config if config is not None else TrackerConfig()
        self.reset()
        self.config = self._config

    @property
    def config(self) -> TrackerConfig:
        return self._config

    @config.setter
    def config(self, config: TrackerConfig) -> None:
        """Swap settings between frames (e.g. ROS parameter changes); tracks are kept."""
        if not isinstance(config, TrackerConfig):
            raise TypeError(f"config must be a TrackerConfig, got {type(config).__name__}")
        if self._camera is not None and config.cmc_downscale != self._config.cmc_downscale:
            self._camera = None
        self._config = config
        if config.lost_track_seconds is None:
            self.lost_timeout_s = config.track_buffer / 30.0
            self.lost_timeout_frames = max(1, int(round(config.track_buffer * self.frame_rate / 30.0)))
        else:
            self.lost_timeout_s = config.lost_track_seconds
            self.lost_timeout_frames = max(1, int(round(config.lost_track_seconds * self.frame_rate)))
        # How many frames of the reference rate one frame's impostor pairs stand for.
        self._impostor_weight = 1.0 if config.impostor_reference_fps is None else \
            config.impostor_reference_fps / self.frame_rate
        # Kalman steps per second of elapsed time.
        self._motion_rate = self.frame_rate if config.motion_reference_fps is None else config.motion_reference_fps
        self._tracks.appearance.set_ema_momentum(_ema_momentum(config))
        self._tracks.appearance.resize(config.bank_size)

    def reset(self, restart_ids: bool = True) -> None:
        """Forget every track (a new sequence). IDs restart at 1 unless ``restart_ids`` is False."""
        self._tracks = TrackTable(AppearanceStore(self.config.bank_size, _ema_momentum(self.config)))
        self._impostors = ImpostorSimilarity()
        self._frame_id = 0
        self._last_timestamp: float | None = None
        if restart_ids or not hasattr(self, "_next_id"):
            self._next_id = 1
        if self._camera is not None:
            self._camera.reset()
        self.last_rejected = 0
        self.last_missing_appearance = 0

    @property
    def frame_count(self) -> int:
        return self._frame_id

    # ------------------------------------------------------------------ update
    def update(self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray | None = None,
               embeddings: np.ndarray | None = None, image: np.ndarray | None = None,
               timestamp: float | None = None) -> list[TrackOutput]:
        """Associate one frame -> the confirmed tracks matched in it.

        ``boxes`` (N, 4) x1, y1, x2, y2 pixels; ``scores`` (N,); ``class_ids`` (N,)
        (all 0 when None); ``embeddings`` (N, D), any D, fixed per tracker until
        ``reset()``; ``image`` HxWx3 BGR uint8 (camera-motion compensation only);
        ``timestamp`` in seconds, non-decreasing (prediction steps and the lost
        timeout then follow real elapsed time)."""
        if not self._busy.acquire(blocking=False):
            raise ConcurrentUpdateError("SmileTracker.update() called while another update() of the same tracker "
                                        "runs: a tracker instance is not thread-safe")
        saved = (self._impostors.counts, self._impostors.total, self._frame_id, self._last_timestamp,
                 self._next_id, self.last_rejected, self.last_missing_appearance)
        tracks = self._tracks
        try:
            tracks.begin()
            outputs = self._update(boxes, scores, class_ids, embeddings, image, timestamp)
            tracks.commit()  # the only write to arrays shared with the saved state
            return outputs
        except BaseException:
            tracks.rollback()
            (self._impostors.counts, self._impostors.total, self._frame_id, self._last_timestamp,
             self._next_id, self.last_rejected, self.last_missing_appearance) = saved
            raise
        finally:
            self._busy.release()

    def _update(self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray | None,
                embeddings: np.ndarray | None, image: np.ndarray | None,
                timestamp: float | None) -> list[TrackOutput]:
        cfg = self._config
        # 1. Input.
        frame = read_frame(boxes, scores, class_ids, embeddings if cfg.use_appearance else None,
                           timestamp, self._last_timestamp, self._tracks.appearance.dim)
        self._check_image(image)
        if cfg.use_appearance and embeddings is None and np.any(frame.scores >= cfg.min_score):
            # boxes below min_score are never embedded (the pipeline skips them): no warning for those alone
            self._warn_once("no-embeddings", "no embeddings given: association uses motion only")
        if frame.features is not None:
            self._tracks.appearance.adopt_dim(frame.features.shape[1])
        self.last_rejected = frame.rejected
        self.last_missing_appearance = \
            len(frame.feature_valid) - int(np.count_nonzero(frame.feature_valid)) if frame.features is not None else 0
        self._frame_id += 1
        dt = self._elapsed_frames(frame.timestamp)
        if frame.timestamp is not None:
            self._last_timestamp = frame.timestamp

        # 2.-3. Motion.
        self._predict(dt)
        if cfg.cmc and image is not None:
            self._compensate_camera(image, frame.boxes)

        # 4. Score bands.
        kept = frame.scores >= cfg.min_score
        high_threshold = self._high_threshold(frame.scores[kept])
        is_high = frame.scores >= high_threshold
        det_xyah = xyxy_to_xyah(frame.boxes)
        # Every stage reads its IoU from one (tracks x detections) matrix.
        iou = iou_matrix(xyah_to_xyxy(self._tracks.mean), frame.boxes)

        # 5.-7. The cascade (config.stages): each stage matches still-unmatched tracks
        # of its pool to still-unmatched detections of its pool.
        new_threshold = high_threshold if cfg.new_track_threshold is None else cfg.new_track_threshold
        high = kept & is_high
        pools = _Pools(self._tracks.state, high, kept ^ high, frame.scores >= new_threshold)  # low: kept, not high
        inputs = CostInputs(cfg, self._tracks, frame, det_xyah, self._frame_id, self.frame_rate, self._impostors)
        matches = _Matches([], [], [], [])
        for stage in cfg.stages:
            rows = pools.tracks(stage.tracks)
            if len(rows) == 0:  # (often: no lost or tentative tracks) then no detection pool to list
                continue
            dets = pools.detections(stage.detections)
            if len(dets) == 0:
                continue
            r, d, s = self._match(stage, rows, dets, inputs, iou)
            rows, dets = rows[r], dets[d]
            pools.take(rows, dets, stage.detections)
            matches.add(rows, dets, s, confirmed=stage.tracks != "tentative")
        born = pools.new_tracks()

        # 8. Apply matches.
        rows, dets, sims = matches.arrays()
        if cfg.reid_impostor_quantile is not None and frame.features is not None and matches.confirmed_dets:
            # Boxes matched to distinct confirmed tracks in one frame are different people.
            people = np.concatenate(matches.confirmed_dets)
            people = people[frame.feature_valid[people]]
            self._impostors.observe(frame.features.take(people[:PEOPLE_PER_FRAME], axis=0),  # all it samples
                                    self._impostor_weight)
        matched = self._apply_matches(rows, dets, sims, frame, det_xyah)
        # 9. States; lost and removed.
        self._retire(matched, frame.timestamp)
        # 10. Births.
        self._birth(born, frame, det_xyah)
        # 11. Duplicates.
        if cfg.remove_duplicates:
            self._remove_duplicates()
        # 12. Output.
        # (After step 9 a tracked track is one matched in this frame.)
        return self._outputs((self._tracks.state == TRACKED).nonzero()[0], matched=True)

    def live_tracks(self) -> list[TrackOutput]:
        """Every live track, tentative and lost included."""
        return self._outputs(np.arange(len(self._tracks)))

    # ------------------------------------------------------------ step helpers
    def _check_image(self, image: np.ndarray | None) -> None:
        if image is None:
            if self.config.cmc:
                self._warn_once("no-image", "camera-motion compensation is on but no image was given")
            return
        check_image(image, error=InputError, allow_gray=True)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            LOG.warning("SmileTracker: %s", message)

    def _elapsed_frames(self, timestamp: float | None) -> float:
        """Prediction step length in Kalman steps: from timestamps when known, else one nominal frame."""
        if timestamp is None or self._last_timestamp is None:
            return self._motion_rate / self.frame_rate
        return (timestamp - self._last_timestamp) * self._motion_rate

    def _predict(self, dt: float) -> None:
        t = self._tracks
        if len(t) == 0:
            return
        # As ByteTrack: a lost track keeps moving but stops growing or shrinking.
        # (New arrays, not writes in place: see ``TrackTable.begin``.)
        lost = t.state == LOST
        mean = t.mean
        if np.count_nonzero(lost):  # (cheaper than any())
            mean = mean.copy()
            mean[lost, 7] = 0.0
        t.mean, t.cov = kalman.predict(mean, t.cov, dt)
        t.age = t.age + 1
        t.since_update = t.since_update + 1

    def _compensate_camera(self, image: np.ndarray, det_boxes: np.ndarray) -> None:
        if self._camera is None:
            from .cmc import CameraMotionEstimator

            self._camera = CameraMotionEstimator(self.config.cmc_downscale)
        affine = self._camera.estimate(image, det_boxes)
        if len(self._tracks):
            self._tracks.mean, self._tracks.cov = kalman.warp(self._tracks.mean, self._tracks.cov, affine)

    def _high_threshold(self, scores: np.ndarray) -> float:
        if self._config.high_threshold is not None:
            return self._config.high_threshold
        return adaptive_high_threshold(scores)

    def _match(self, stage: Stage, rows: np.ndarray, dets: np.ndarray, inputs: CostInputs,
               all_iou: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Assign table ``rows`` to detection ``dets`` (neither empty) for one stage ->
        (row positions, det positions, appearance similarity used or nan)."""
        threshold = stage.max_cost(self._config)
        # (rows ascend: as many as the table has are all of it, and need no gather)
        iou = all_iou[:, dets] if len(rows) == len(all_iou) else all_iou.take(rows, axis=0)[:, dets]
        cost, appearance = COSTS[stage.cost](inputs, rows, dets, iou, threshold)
        if self._config.class_aware:
            cost = forbid_class_changes(cost, self._tracks.class_id[rows], inputs.frame.class_ids[dets])
        r, d = assign(cost, threshold)
        if appearance is None:
            return r, d, np.full(len(r), np.nan)
        similarity, has = appearance
        return r, d, np.where(has[r, d], similarity[r, d], np.nan)

    def _apply_matches(self, rows: np.ndarray, dets: np.ndarray, sims: np.ndarray, frame: FrameInput,
                       det_xyah: np.ndarray) -> np.ndarray:
        """-> which table rows were matched (their states are set by ``_retire``)."""
        t = self._tracks
        matched = np.zeros(len(t), bool)
        t.detection_index = np.empty(len(t), np.int64)  # a new array (see ``TrackTable.begin``)
        t.detection_index.fill(-1)  # (np.full costs twice as much)
        if len(rows) == 0:
            return matched
        mean, cov, since_update, score, class_id, similarity, last_frame, last_time = t.writable(
            "mean", "cov", "since_update", "score", "class_id", "similarity", "last_frame", "last_time")
        # (Row gathers by take: a third of fancy indexing's cost on these small arrays.)
        mean[rows], cov[rows] = kalman.update(mean.take(rows, axis=0), cov.take(rows, axis=0),
                                              det_xyah.take(dets, axis=0))
        matched[rows] = True
        t.hits = t.hits + matched
        last_frame[rows] = self._frame_id
        last_time[rows] = np.nan if frame.timestamp is None else frame.timestamp
        since_update[rows] = 0
        score[rows] = frame.scores[dets]
        class_id[rows] = frame.class_ids[dets]
        # float32 dot products of unit vectors can pass 1 (ufuncs: ndarray.clip's Python wrapper costs more)
        similarity[rows] = np.minimum(np.maximum(sims, -1.0), 1.0)
        t.detection_index[rows] = frame.index[dets]
        if frame.features is not None:
            recorded = frame.feature_valid[dets]
            if self._config.appearance_min_score is not None:  # a low score: partly hidden, the crop shows the occluder
                recorded &= frame.scores[dets] >= self._config.appearance_min_score
            t.appearance.update(rows[recorded], frame.features.take(dets[recorded], axis=0))
        return matched

    def _retire(self, matched: np.ndarray, timestamp: float | None) -> None:
        """``matched`` rows -> tracked, unmatched tracked -> lost; drop unconfirmed misses,
        timed-out lost tracks, and any track whose state stopped being finite."""
        t = self._tracks
        unmatched = ~matched
        state = t.state.copy()  # a new array (see ``TrackTable.begin``)
        state[state == TRACKED] = LOST
        state[matched] = TRACKED
        t.state = state
        if timestamp is not None:
            elapsed_s = timestamp - t.last_time
            timed_out = elapsed_s > self.lost_timeout_s + _TIME_EPS
            unstamped = np.isnan(elapsed_s)  # matched last on a frame without a timestamp: count frames
            if np.count_nonzero(unstamped):
                timed_out[unstamped] = (self._frame_id - t.last_frame > self.lost_timeout_frames)[unstamped]
        else:
            timed_out = self._frame_id - t.last_frame > self.lost_timeout_frames
        drop = (unmatched & (t.state == TENTATIVE)) | ((t.state == LOST) & timed_out)
        # Sums of finite numbers are finite unless they overflow (then the exact per-track test decides):
        # two reductions in the common case.
        if not math.isfinite(t.mean.sum() + t.cov.sum()):
            drop |= ~kalman.finite_states(t.mean, t.cov)
        if np.count_nonzero(drop):
            self._tracks.keep(np.flatnonzero(~drop))

    def _birth(self, dets: np.ndarray, frame: FrameInput, det_xyah: np.ndarray) -> None:
        n = len(dets)
        if n == 0:
            return
        mean, cov = kalman.initiate(det_xyah.take(dets, axis=0))
        first = self._frame_id == 1 and self.config.activate_first_frame
        ids = np.empty(n, object)
        ids[:] = range(self._next_id, self._next_id + n)
        self._next_id += n
        features = None if frame.features is None else frame.features.take(dets, axis=0)
        self._tracks.append(
            features, None if features is None else frame.feature_valid[dets],
            ids=ids, mean=mean, cov=cov, state=np.full(n, TRACKED if first else TENTATIVE, np.int8),
            class_id=frame.class_ids[dets], score=frame.scores[dets], age=np.ones(n, np.int64),
            hits=np.ones(n, np.int64), since_update=np.zeros(n, np.int64),
            start_frame=np.full(n, self._frame_id, np.int64), last_frame=np.full(n, self._frame_id, np.int64),
            last_time=np.full(n, np.nan if frame.timestamp is None else frame.timestamp),
            similarity=np.full(n, np.nan), detection_index=frame.index[dets])

    def _remove_duplicates(self) -> None:
        """A tracked and a lost track on the same object (IoU distance below the
        limit): keep the one followed for longer."""
        t = self._tracks
        active = np.flatnonzero(t.state != LOST)
        lost = np.flatnonzero(t.state == LOST)
        if len(active) == 0 or len(lost) == 0:
            return
        boxes = xyah_to_xyxy(t.mean)
        close = 1.0 - iou_matrix(boxes[active], boxes[lost]) < self.config.duplicate_iou_distance
        if self.config.class_aware:
            close &= t.class_id[active][:, None] == t.class_id[lost][None, :]
        a, b = true_pairs(close)
        if len(a) == 0:
            return
        span = t.last_frame - t.start_frame
        active_longer = span[active[a]] > span[lost[b]]
        drop = np.union1d(lost[b[active_longer]], active[a[~active_longer]])
        self._tracks.keep(np.setdiff1d(np.arange(len(t)), drop))

    def _outputs(self, rows: np.ndarray, matched: bool = False) -> list[TrackOutput]:
        """``matched``: every row is a tracked track matched in this frame (its state is
        known, not read)."""
        t = self._tracks
        mean = t.mean.take(rows, axis=0)
        boxes = xyah_to_xyxy(mean)
        boxes.flags.writeable = False
        vx, vy = (mean[:, 4:6] * self._motion_rate).T.tolist()  # zipped into tuples below (cheaper than map(tuple))
        states = [TrackState.TRACKED] * len(rows) if matched else list(map(_STATES.__getitem__, t.state[rows].tolist()))
        # The integer columns gathered in one step (a few numpy calls instead of two per column).
        class_id, age, hits, since_update, detection_index = np.concatenate(
            (t.class_id, t.age, t.hits, t.since_update, t.detection_index)).reshape(5, -1)[:, rows].tolist()
        # Columns in TrackOutput field order (lists, or iterables of the same length): one positional call per track.
        return list(map(TrackOutput, t.ids[rows].tolist(), boxes, t.score[rows].tolist(), class_id, states, age,
                        hits, since_update, zip(vx, vy, strict=True), t.similarity[rows].tolist(), detection_index))
