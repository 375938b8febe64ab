"""Each track's motion on the floor: a constant-velocity Kalman filter in metres and m/s.

It is fed the projected foot point of the detection the 2D tracker matched to
the track, with that point's covariance. (Not the 2D tracker's filtered box: that
is already an average over past frames, and filtering it again would count the
same evidence twice and make the covariance overconfident.)

A box's centre column does not err afresh each frame: the swing of the limbs and
the body's posture move it for a good part of a stride. A filter that took that
error as white would read its slow wander as motion and trust its average too
much. So part of the column error (``sway_share`` of its variance) is a state of
the filter, the sway: a first-order Gauss-Markov process with a correlation
time of ``sway_time`` seconds (a shaping filter), so its model follows elapsed
time and holds at any frame rate.

The 2D tracker sometimes hands a track to another person (an identity switch).
A filter fed both people would blend their velocities, so a doubtful
measurement (outside the 95% innovation ellipse, or after a gap) starts a
second hypothesis: the same track restarted at that measurement. Both are fed
the following measurements and the log-likelihood ratio of their predictions
decides which one the track keeps; the leader so far is the one reported. A
measurement that cannot be the tracked person (outside the 99.99% gate, or
beyond walking reach) makes the restart the leader at once; the old filter
stays as the rival, so a single bad box costs nothing once the next one agrees
with it again.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property

import numpy as np

from smiletrack_ros.ground.projection import (
    GroundConfigError,
    GroundMeasurements,
    GroundProjector,
    Refusal,
    positive_number,
)
from smiletrack_ros.tracking import TrackOutput

_HEIGHT_SAMPLES = 5   # heights seen before a track's own height is trusted
_DECISIVE = math.log(100.0)   # log-likelihood ratio at which a restart hypothesis is settled (100 : 1)
_MIN_HEIGHT_SPREAD = 0.02


class GroundStatus(IntEnum):
    NONE = 0       # no ground estimate (see the refusal)
    MEASURED = 1   # updated with this frame's foot point
    PREDICTED = 2  # carried forward from earlier measurements (see the refusal for why not this frame)


@dataclass(frozen=True)
class MotionConfig:
    """``acceleration_psd``: white-acceleration noise (m^2/s^3) of walking people, in every direction
    (speeding up, slowing down); ``turn_psd``: white noise of their heading rate (rad^2/s): turning
    accelerates across the walking direction in proportion to the speed; ``initial_speed_sigma``:
    velocity std (m/s, per axis) of a new track; ``gate``: squared Mahalanobis distance beyond which
    a measurement cannot be the tracked person (chi-square, 2 dof); ``doubt_gate``: squared distance
    beyond which it may be someone else (a restart hypothesis is raised); ``reidentify_gap``:
    seconds without a measurement after which the next one raises a restart hypothesis too (the
    track may have been re-identified on someone else); ``switch_prior``: prior probability that a
    doubtful measurement is another person's; ``neighbour_sigma``: spread (m, per axis) of where
    that other person is, around the track's prediction; ``decision_time``: seconds after which a
    restart hypothesis is decided even when the evidence is weak (the likelier one is kept);
    ``max_prediction``: seconds a track keeps a predicted ground state without measurements;
    ``max_speed``: m/s no walking person exceeds (a measurement farther than that from the last one
    is someone else); ``height_tolerance``: relative difference from the track's mean standing
    height beyond which a box is not this whole person (feet hidden, or someone else);
    ``sway_share``: share (0-1) of the foot point's column variance that is correlated over frames
    (0: all of it white); ``sway_time``: that part's correlation time, s."""

    acceleration_psd: float = 0.005
    initial_speed_sigma: float = 1.0
    gate: float = 18.4
    doubt_gate: float = 5.99
    reidentify_gap: float = 0.25
    switch_prior: float = 0.05
    neighbour_sigma: float = 1.0
    decision_time: float = 1.0
    max_prediction: float = 2.0
    max_speed: float = 3.0
    height_tolerance: float = 0.15
    turn_psd: float = 0.02
    sway_share: float = 0.25
    sway_time: float = 1.0

    def __post_init__(self) -> None:
        for name in ("acceleration_psd", "initial_speed_sigma", "gate", "doubt_gate", "reidentify_gap",
                     "switch_prior", "neighbour_sigma", "decision_time", "max_prediction", "max_speed",
                     "height_tolerance", "sway_time"):
            object.__setattr__(self, name, positive_number(name, getattr(self, name)))
        for name in ("sway_share", "turn_psd"):
            object.__setattr__(self, name, positive_number(name, getattr(self, name), allow_zero=True))
        if self.sway_share > 1.0:
            raise GroundConfigError("sway_share", f"must be a share in [0, 1], got {self.sway_share}")
        if self.doubt_gate > self.gate:
            raise GroundConfigError("doubt_gate", f"must be at most gate ({self.gate}), got {self.doubt_gate}")
        if self.switch_prior >= 1.0:
            raise GroundConfigError("switch_prior", f"must be a probability below 1, got {self.switch_prior}")


@dataclass(frozen=True, eq=False)
class GroundEstimate:
    """One track on the floor: ``position`` (2,) m and ``velocity`` (2,) m/s in the target frame,
    ``covariance`` (4, 4) over (x, y, vx, vy); ``height`` the mean plausible standing height (m, nan
    when none was seen); ``refusal`` why this frame gave no measurement (``Refusal.NONE`` if it did);
    ``started`` the time of the filter's first measurement (nan without an estimate)."""

    track_id: int
    status: GroundStatus
    refusal: Refusal
    position: np.ndarray
    velocity: np.ndarray
    covariance: np.ndarray
    height: float
    started: float

    @classmethod
    def none(cls, track_id: int, refusal: Refusal) -> GroundEstimate:
        nan2 = np.full(2, np.nan)
        return cls(track_id, GroundStatus.NONE, refusal, nan2, nan2.copy(), np.full((4, 4), np.nan), math.nan, math.nan)


@dataclass(frozen=True, eq=False)
class FootPoint:
    """One projected foot point: ``z`` (2,) m, its covariance ``R`` (2, 2) m^2 (all of its error),
    and ``sway`` (2,) m, the floor displacement of a one-sigma sway (the correlated part of the
    column error, ``sqrt(sway_share)`` times the column sigma; zeros: the error is all white)."""

    z: np.ndarray
    R: np.ndarray
    sway: np.ndarray

    @cached_property
    def H(self) -> np.ndarray:
        """Measurement matrix over (x, y, vx, vy, sway): the feet are where the person is, moved by the sway."""
        return np.column_stack([np.eye(2), np.zeros((2, 2)), self.sway])

    @cached_property
    def white(self) -> np.ndarray:
        """Covariance of the error that is new in every frame."""
        return self.R - np.outer(self.sway, self.sway)


class ConstantVelocityFilter:
    """State (x, y, vx, vy, sway) with covariance: a person walking at constant velocity (white
    acceleration of ``psd`` m^2/s^3) and the sway of their foot point in its own sigmas (unit
    variance, correlation time ``sway_time`` s); ``predict`` to a time, ``update`` with a foot point."""

    __slots__ = ("x", "P", "time", "psd", "sway_time", "turn_psd")

    def __init__(self, point: FootPoint, time: float, psd: float, speed_sigma: float, sway_time: float,
                 turn_psd: float = 0.0):
        self.x = np.concatenate([point.z, np.zeros(3)])
        self.P = np.zeros((5, 5))
        # z = p + sway * s + w with s ~ N(0, 1): p = z - sway * s - w, so Cov(p) = R and Cov(p, s) = -sway
        self.P[:2, :2] = point.R
        self.P[:2, 4] = self.P[4, :2] = -point.sway
        self.P[2:4, 2:4] = np.eye(2) * speed_sigma**2
        self.P[4, 4] = 1.0
        self.time = time
        self.psd = psd
        self.sway_time = sway_time
        self.turn_psd = turn_psd

    def predicted(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        dt = max(time - self.time, 0.0)
        keep = math.exp(-dt / self.sway_time)
        F = np.eye(5)
        F[0, 2] = F[1, 3] = dt
        F[4, 4] = keep
        Q = np.zeros((5, 5))
        # white acceleration: psd in every direction, plus turning (a white heading rate of turn_psd
        # rad^2/s) across the walking direction: a = w x v, so Cov(a) = turn_psd * J E[v v^T] J^T
        J = np.array([[0.0, -1.0], [1.0, 0.0]])
        v = self.x[2:4]
        A = self.psd * np.eye(2) + self.turn_psd * J @ (np.outer(v, v) + self.P[2:4, 2:4]) @ J.T
        Q[:4, :4] = np.kron(np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]), A)
        Q[4, 4] = 1.0 - keep * keep
        return F @ self.x, F @ self.P @ F.T + Q

    def predict(self, time: float) -> None:
        self.x, self.P = self.predicted(time)
        self.time = max(time, self.time)

    def innovation(self, point: FootPoint) -> tuple[np.ndarray, np.ndarray, float]:
        """(residual, its covariance S, squared Mahalanobis distance) of a foot point."""
        H = point.H
        y = point.z - H @ self.x
        S = H @ self.P @ H.T + point.white
        return y, S, float(y @ np.linalg.solve(S, y))

    def update(self, point: FootPoint) -> None:
        y, S, _ = self.innovation(point)
        H = point.H
        K = np.linalg.solve(S, H @ self.P).T          # P H^T S^-1 (S symmetric)
        self.x = self.x + K @ y
        I_KH = np.eye(5) - K @ H
        self.P = I_KH @ self.P @ I_KH.T + K @ point.white @ K.T   # Joseph form: stays symmetric positive definite


@dataclass(slots=True)
class _TrackMotion:
    filter: ConstantVelocityFilter
    started: float
    last_measured: float
    last_position: np.ndarray     # filtered position and covariance after the last measurement
    last_covariance: np.ndarray
    height_sum: float = 0.0
    height_squares: float = 0.0
    height_count: int = 0
    # A restart hypothesis (another person may have taken the track) and the log-likelihood
    # ratio rival : this filter of the measurements since it was raised.
    rival: _TrackMotion | None = None
    llr: float = 0.0
    compared: int = 0

    @property
    def leader(self) -> _TrackMotion:
        return self.rival if self.rival is not None and self.llr > 0.0 else self

    def take(self, point: FootPoint, timestamp: float, height: float) -> None:
        """Update with a measurement and remember it (its time, the filtered position, the height)."""
        self.filter.update(point)
        self.last_measured = timestamp
        self.last_position = self.filter.x[:2].copy()
        self.last_covariance = self.filter.P[:2, :2].copy()
        self.remember_height(height)

    def remember_height(self, height: float) -> None:
        if math.isfinite(height):
            self.height_sum += height
            self.height_squares += height * height
            self.height_count += 1

    @property
    def height(self) -> float:
        return self.height_sum / self.height_count if self.height_count else math.nan

    @property
    def height_sigma(self) -> float:
        """Uncertainty of the head's height in one frame: the spread of this track's heights
        (gait and box jitter), at least 2% of the height."""
        mean = self.height
        spread = max(self.height_squares / self.height_count - mean * mean, 0.0) if self.height_count else 0.0
        return math.sqrt(spread + (_MIN_HEIGHT_SPREAD * mean) ** 2)


class GroundTracker:
    """Ground filters for the live tracks of a 2D tracker, keyed by track id.

    ``update(timestamp, tracks, detection_boxes, projector, detection_scores)`` once a frame, after
    the 2D tracker's update: ``tracks`` its ``TrackOutput``s (``detection_index`` into
    ``detection_boxes`` and ``detection_scores``).
    Filters of ids no longer in ``tracks`` are dropped; time going backwards resets everything.
    """

    def __init__(self, config: MotionConfig | None = None):
        self.config = config if config is not None else MotionConfig()
        self._tracks: dict[int, _TrackMotion] = {}
        self._last_time: float | None = None

    def reset(self) -> None:
        self._tracks.clear()
        self._last_time = None

    def __len__(self) -> int:
        return len(self._tracks)

    def update(self, timestamp: float, tracks: Sequence[TrackOutput], detection_boxes: np.ndarray,
               projector: GroundProjector | None, detection_scores: np.ndarray | None = None
               ) -> dict[int, GroundEstimate]:
        if not math.isfinite(timestamp):
            raise ValueError(f"timestamp must be finite, got {timestamp}")
        if self._last_time is not None and timestamp < self._last_time:
            self.reset()
        self._last_time = timestamp
        live = {int(t.track_id) for t in tracks}
        for gone in [k for k in self._tracks if k not in live]:
            del self._tracks[gone]
        if projector is None:
            self._tracks.clear()
            return {int(t.track_id): GroundEstimate.none(int(t.track_id), Refusal.NO_CAMERA_MODEL) for t in tracks}

        boxes = np.asarray(detection_boxes, np.float64).reshape(-1, 4)
        matched = [t for t in tracks if 0 <= t.detection_index < len(boxes)]
        rows = [t.detection_index for t in matched]
        scores = None if detection_scores is None else np.asarray(detection_scores, np.float64).reshape(-1)[rows]
        measurements = projector.project(boxes[rows], scores)
        by_head = self._measure_heads(projector, matched, boxes[rows], measurements)
        row = {int(t.track_id): k for k, t in enumerate(matched)}
        return {int(t.track_id): self._step(int(t.track_id), timestamp, measurements, row.get(int(t.track_id)), by_head)
                for t in tracks}

    def _step(self, track_id: int, timestamp: float, m: GroundMeasurements, k: int | None,
              by_head: set[int]) -> GroundEstimate:
        motion = self._tracks.get(track_id)
        refusal = Refusal.UNMATCHED if k is None else Refusal(int(m.refusals[k]))
        if refusal == Refusal.NONE:
            point = FootPoint(m.positions[k], m.covariances[k], math.sqrt(self.config.sway_share) * m.column_sigmas[k])
            height = float(m.heights[k])
            if motion is None:
                motion = self._tracks[track_id] = self._new_motion(point, timestamp, height)
            else:
                motion, refusal = self._measure(track_id, motion, point, height, timestamp, k in by_head)
            status = GroundStatus.MEASURED if refusal == Refusal.NONE else GroundStatus.PREDICTED
            return self._estimate(track_id, motion.leader, status, refusal)
        if motion is None:
            return GroundEstimate.none(track_id, refusal)
        if timestamp - motion.leader.last_measured > self.config.max_prediction:
            del self._tracks[track_id]
            return GroundEstimate.none(track_id, refusal)
        for hypothesis in (motion, motion.rival):
            if hypothesis is not None:
                hypothesis.filter.predict(timestamp)
        return self._estimate(track_id, motion.leader, GroundStatus.PREDICTED, refusal)

    def _measure(self, track_id: int, motion: _TrackMotion, point: FootPoint, height: float,
                 timestamp: float, by_head: bool) -> tuple[_TrackMotion, Refusal]:
        """One measurement for a track that has a filter: returns the track's motion afterwards and
        why its leader did not take the measurement (NONE: it did). A restart questions where the
        person is and how they move, not their standing height, unless the point's own height
        disagrees with it: otherwise it inherits the heights seen (a point placed by the head,
        ``by_head``, holds only under them), so that a restart near the image bottom can still
        place the person by the head."""
        cfg = self.config
        other_height = math.isfinite(height) and motion.height_count > 0 \
            and abs(height - motion.height) > cfg.height_tolerance * motion.height
        heights_of = None if other_height and not by_head else motion
        motion.filter.predict(timestamp)
        y, S, distance = motion.filter.innovation(point)
        verdict = self._disagreement(motion, point, height, timestamp, distance)
        rival = motion.rival
        if rival is None:
            if verdict == Refusal.NONE and distance <= cfg.doubt_gate \
                    and timestamp - motion.last_measured <= cfg.reidentify_gap:
                motion.take(point, timestamp, height)
                return motion, Refusal.NONE
            # Doubt: the measurement may be another person's. Raise the restart hypothesis; it leads
            # at once when this person cannot be the one measured.
            motion.rival, motion.compared = self._new_motion(point, timestamp, height, heights_of), 0
            motion.llr = _DECISIVE if verdict == Refusal.OUTLIER else self._switch_evidence(y, S)
            if verdict == Refusal.NONE:
                motion.take(point, timestamp, height)
            return motion, verdict if motion.leader is motion else Refusal.NONE
        rival.filter.predict(timestamp)
        rival_y, rival_S, rival_distance = rival.filter.innovation(point)
        rival_verdict = self._disagreement(rival, point, height, timestamp, rival_distance)
        if verdict == Refusal.OUTLIER and rival_verdict == Refusal.OUTLIER:   # neither: a third person
            motion.rival = self._new_motion(point, timestamp, height, heights_of)
            motion.llr, motion.compared = _DECISIVE, 0
            return motion, Refusal.NONE
        motion.llr += _log_likelihood(rival_y, rival_S) - _log_likelihood(y, S)
        motion.compared += 1
        for hypothesis, agrees in ((motion, verdict), (rival, rival_verdict)):
            if agrees == Refusal.NONE:
                hypothesis.take(point, timestamp, height)
        motion = self._resolve(track_id, motion, timestamp)
        leader = motion.leader
        return motion, Refusal.NONE if leader.last_measured == timestamp else \
            (verdict if leader is motion else rival_verdict)

    def _resolve(self, track_id: int, motion: _TrackMotion, timestamp: float) -> _TrackMotion:
        """Ends a rivalry once the restart is decisively likelier, or when its time is up (the
        likelier one stays). The old filter is not kept on early evidence: a fresh filter, whose
        velocity is unknown, predicts worse at first even when it is right."""
        rival = motion.rival
        assert rival is not None
        if (motion.compared < 1 or motion.llr < _DECISIVE) and timestamp - rival.started < self.config.decision_time:
            return motion
        motion.rival = None
        if motion.llr <= 0.0:
            return motion
        self._tracks[track_id] = rival
        return rival

    def _switch_evidence(self, y: np.ndarray, S: np.ndarray) -> float:
        """Log odds that a doubtful measurement is another person's: the prior, times the
        likelihood of the residual under "someone within ``neighbour_sigma`` of the prediction"
        over its likelihood under "this person"."""
        cfg = self.config
        neighbour = S + np.eye(2) * cfg.neighbour_sigma**2
        return math.log(cfg.switch_prior / (1.0 - cfg.switch_prior)) + _log_likelihood(y, neighbour) \
            - _log_likelihood(y, S)

    def _measure_heads(self, projector: GroundProjector, matched: Sequence[TrackOutput], boxes: np.ndarray,
                       m: GroundMeasurements) -> set[int]:
        """Tracks whose feet are cut off by the image bottom, but whose standing height is known,
        are placed by their head instead (``GroundProjector.head_points``); ``m`` is updated, and
        the rows so placed are returned."""
        known = {k: self._tracks.get(int(t.track_id)) for k, t in enumerate(matched)
                 if m.refusals[k] == Refusal.TRUNCATED}
        rows = [k for k, motion in known.items() if motion is not None and motion.height_count >= _HEIGHT_SAMPLES]
        if not rows:
            return set()
        motions = [known[k] for k in rows]
        positions, covariances, columns, refusals = projector.head_points(
            boxes[rows], np.array([mo.height for mo in motions]), np.array([mo.height_sigma for mo in motions]))
        for j, k in enumerate(rows):
            if refusals[j] == Refusal.NONE:
                m.positions[k], m.covariances[k], m.column_sigmas[k] = positions[j], covariances[j], columns[j]
                m.refusals[k], m.heights[k] = 0, np.nan
        return {k for j, k in enumerate(rows) if refusals[j] == Refusal.NONE}

    def _disagreement(self, motion: _TrackMotion, point: FootPoint, height: float,
                      timestamp: float, distance: float) -> Refusal:
        """Why a measurement cannot be this filter's person (NONE when it can): its squared
        innovation ``distance`` beyond the gate, farther from the last position than walking at
        ``max_speed`` reaches (OUTLIER), or a standing height off the track's own by more than
        ``height_tolerance`` (IMPLAUSIBLE_HEIGHT: this box may not reach the feet)."""
        cfg = self.config
        slack = math.sqrt(cfg.gate * float(np.linalg.eigvalsh(point.R + motion.last_covariance)[-1]))   # gate's sigmas
        reach = cfg.max_speed * (timestamp - motion.last_measured) + slack
        if distance > cfg.gate or float(np.hypot(*(point.z - motion.last_position))) > reach:
            return Refusal.OUTLIER
        known = motion.height_count >= _HEIGHT_SAMPLES
        if known and abs(height - motion.height) > cfg.height_tolerance * motion.height:
            return Refusal.IMPLAUSIBLE_HEIGHT
        return Refusal.NONE

    def _new_motion(self, point: FootPoint, timestamp: float, height: float,
                    heights_of: _TrackMotion | None = None) -> _TrackMotion:
        """A filter started at ``point``, knowing the standing heights of ``heights_of`` if given."""
        cfg = self.config
        motion = _TrackMotion(ConstantVelocityFilter(point, timestamp, cfg.acceleration_psd, cfg.initial_speed_sigma,
                                                     cfg.sway_time, cfg.turn_psd),
                              started=timestamp, last_measured=timestamp, last_position=point.z.copy(),
                              last_covariance=point.R.copy())
        if heights_of is not None:
            motion.height_sum, motion.height_squares = heights_of.height_sum, heights_of.height_squares
            motion.height_count = heights_of.height_count
        motion.remember_height(height)
        return motion

    @staticmethod
    def _estimate(track_id: int, motion: _TrackMotion, status: GroundStatus, refusal: Refusal) -> GroundEstimate:
        f = motion.filter
        return GroundEstimate(track_id, status, refusal, f.x[:2].copy(), f.x[2:4].copy(), f.P[:4, :4].copy(),
                              motion.height, motion.started)


def _log_likelihood(y: np.ndarray, S: np.ndarray) -> float:
    """log N(y; 0, S) of a 2D residual."""
    return -0.5 * (float(y @ np.linalg.solve(S, y)) + math.log(float(np.linalg.det(S))) + 2.0 * math.log(2.0 * math.pi))
