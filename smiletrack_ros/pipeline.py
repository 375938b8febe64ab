"""One frame through detector -> embedder -> tracker, shared by the ROS node and the offline tools.

The pipeline owns the time bookkeeping. A timestamp more than ``max_reorder_s``
earlier than the previous one (a bag looping, a replay restarting) resets the
tracker instead of feeding the Kalman filters a negative time step; a frame only
slightly late (delivered out of order) is refused with ``LateFrameError``, so one
late frame never wipes the tracks. Track ids keep counting up across resets, so
an id stays unique for the pipeline's lifetime.

A frame goes through three steps, ``start_frame`` (time check + detector),
``embed`` and ``track``; ``process`` runs them one after the other. The first two
keep no tracker state, so the node can run frame t+1's detector on one thread
while frame t is embedded and tracked on another (``ros/latest_worker.py``).
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from smiletrack_ros.detection.base import Detector
from smiletrack_ros.detections import Detections
from smiletrack_ros.image_check import check_image
from smiletrack_ros.tracking import SmileTracker, TrackerConfig, TrackOutput


class LateFrameError(ValueError):
    """A frame older than the last one processed, by less than a reset's jump."""


class Embedder(Protocol):
    """(image_bgr, boxes (N, 4)) -> (N, D) float32 L2-normalised appearance embeddings."""

    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class FrameResult:
    """``tracks``: confirmed tracks matched in this frame; ``live_tracks``: every live track
    (tentative and lost included); ``timings``: milliseconds per stage and ``total``;
    ``reset``: the tracker was reset before this frame because time went backwards."""

    detections: Detections
    tracks: list[TrackOutput]
    live_tracks: list[TrackOutput]
    timings: dict[str, float] = field(default_factory=dict)
    reset: bool = False


@dataclass(frozen=True)
class StagedFrame:
    """A frame between the stages: detected, then embedded;
    ``reset``: the tracker is reset before it (time went backwards or restarted)."""

    image: np.ndarray
    timestamp: float
    detections: Detections
    embeddings: np.ndarray | None
    timings: dict[str, float]
    reset: bool
    embedded: bool = False     # ``Pipeline.embed`` has run (embeddings may still be None: none wanted)


class Pipeline:
    """Detector (optional when detections come from outside), embedder (optional), tracker."""

    def __init__(self, detector: Detector | None, embedder: Embedder | None, tracker: SmileTracker,
                 max_reorder_s: float = 1.0):
        if not (math.isfinite(max_reorder_s) and max_reorder_s >= 0):
            raise ValueError(f"max_reorder_s must be a finite number >= 0, got {max_reorder_s}")
        self.detector = detector
        self.embedder = embedder
        self.tracker = tracker
        self.max_reorder_s = max_reorder_s
        self._last_timestamp: float | None = None

    def reset(self) -> None:
        self.tracker.reset(restart_ids=False)
        self._last_timestamp = None

    def reconfigure_tracker(self, config: TrackerConfig) -> None:
        """New thresholds for the live tracker between frames (its tracks are kept)."""
        self.tracker.config = config

    def replace_detector(self, detector: Detector) -> None:
        """A rebuilt detector (new settings) for the next frame."""
        self.detector = detector

    def process(self, image_bgr: np.ndarray, timestamp: float,
                detections: Detections | None = None) -> FrameResult:
        """``detections`` given: external detections, the detector is skipped. The three steps
        below, one after the other (``StagedFrame`` for running them on different threads)."""
        frame = self.start_frame(image_bgr, timestamp, detections)
        return self.track(self.embed(frame))

    # ---- the stages of one frame: start_frame (+ detect), embed, track ------------------------
    def start_frame(self, image_bgr: np.ndarray, timestamp: float, detections: Detections | None = None,
                    restart: bool = False) -> StagedFrame:
        """Checks the frame and its time, then detects (unless ``detections`` are given). Touches
        no tracker state, so frame t+1 may start while frame t is still embedded or tracked;
        frames must start in the order they are tracked. ``restart``: the caller knows time
        started afresh (a bag loop): the tracker is reset before this frame."""
        started = start_frames([self], [(image_bgr, timestamp, detections, restart)])[0]
        if isinstance(started, Exception):
            raise started
        return started

    def _check_time(self, image_bgr: np.ndarray, timestamp: float, restart: bool) -> bool:
        """The frame's checks; True when the tracker must be reset before it (time went back)."""
        if not math.isfinite(timestamp):
            raise ValueError(f"timestamp must be finite, got {timestamp}")
        check_image(image_bgr)
        if restart:
            self._last_timestamp = None
        back = 0.0 if self._last_timestamp is None else self._last_timestamp - timestamp
        if 0.0 < back <= self.max_reorder_s:
            raise LateFrameError(f"frame at {timestamp:.3f} s is {back:.3f} s older than the last one processed")
        self._last_timestamp = timestamp
        return restart or back > 0.0

    def embed(self, frame: StagedFrame) -> StagedFrame:
        """``frame`` with the embeddings of the boxes the tracker can use (its config now)."""
        return embed_frames([self], [frame])[0]

    def track(self, frame: StagedFrame) -> FrameResult:
        """The tracker's update for ``frame``: frames must come in the order they started."""
        if frame.reset:
            self.tracker.reset(restart_ids=False)
        timings = dict(frame.timings)
        t0 = time.perf_counter()
        detections = frame.detections
        tracks = self.tracker.update(detections.boxes, detections.scores, class_ids=detections.class_ids,
                                     embeddings=frame.embeddings, image=frame.image, timestamp=frame.timestamp)
        live = self.tracker.live_tracks()
        timings["track"] = _ms_since(t0)
        timings["total"] = sum(timings.get(k, 0.0) for k in ("detect", "embed", "track"))
        return FrameResult(detections, tracks, live, timings, frame.reset)

    def _usable(self, detections: Detections) -> np.ndarray | None:
        """The boxes worth embedding: none when the tracker matches without appearance, only those
        scoring >= ``min_score`` otherwise (it drops the rest unseen; their rows are nan, which it
        reads as "no appearance"). Real detectors give a quarter to a third of their boxes below
        ``min_score``; each would cost a crop and a network pass. None: nothing to embed."""
        config = self.tracker.config
        if self.embedder is None or not config.use_appearance:
            return None
        usable = (detections.scores >= config.min_score).nonzero()[0]
        return usable if len(usable) else None


def _scatter(rows: np.ndarray, usable: np.ndarray, count: int) -> np.ndarray:
    if len(usable) == count:
        return rows
    embeddings = np.full((count, rows.shape[1]), np.nan, np.float32)
    embeddings[usable] = rows
    return embeddings


Pair = tuple[np.ndarray, np.ndarray]   # an image and the boxes to embed in it


def embed_frames(pipelines: Sequence[Pipeline], frames: Sequence[StagedFrame], pool: Executor | None = None,
                 parts: int = 1) -> list[StagedFrame]:
    """``Pipeline.embed`` for one frame per pipeline, with one embedder call for the crops of every
    frame whose pipeline shares an embedder: its ``embed_many`` where it has one (the crops of all
    cameras in one batch). ``pool`` and ``parts`` > 1: those crops cut into ``parts`` runs embedded
    at once on the pool's threads (lower latency where one frame's crops are the slowest step; the
    same cut whatever runs it, so every run of a pipeline gives the same embeddings). Touches no
    tracker state."""
    out = [dataclasses.replace(f, embedded=True) for f in frames]
    wanted = [p._usable(f.detections) for p, f in zip(pipelines, frames, strict=True)]
    groups: dict[int, list[int]] = {}
    for i, (pipeline, usable) in enumerate(zip(pipelines, wanted, strict=True)):
        if usable is not None:
            groups.setdefault(id(pipeline.embedder), []).append(i)
    for indices in groups.values():
        embedder = pipelines[indices[0]].embedder
        assert embedder is not None
        pairs = [(frames[i].image, frames[i].detections.boxes[wanted[i]]) for i in indices]
        start = time.perf_counter()
        rows = _embed_parts(embedder, pairs, pool, parts) if pool is not None and parts > 1 else \
            _embed_pairs(embedder, pairs)
        ms = _ms_since(start)
        for i, found in zip(indices, rows, strict=True):
            usable = wanted[i]
            assert usable is not None
            out[i] = dataclasses.replace(out[i], embeddings=_scatter(found, usable, len(frames[i].detections)),
                                         timings=frames[i].timings | {"embed": ms})
    return out


def _embed_pairs(embedder: Embedder, pairs: Sequence[Pair]) -> list[np.ndarray]:
    many = getattr(embedder, "embed_many", None)
    return many(pairs) if many is not None and len(pairs) > 1 else [embedder(*pair) for pair in pairs]


def _embed_parts(embedder: Embedder, pairs: Sequence[Pair], pool: Executor, parts: int) -> list[np.ndarray]:
    """The boxes of all pairs, in order, cut into ``parts`` contiguous runs of near-equal size, each
    embedded on the pool; the rows put back per pair."""
    owner = np.repeat(np.arange(len(pairs)), [len(boxes) for _, boxes in pairs])
    runs = [run for run in np.array_split(np.arange(len(owner)), parts) if len(run)]
    first = np.concatenate([[0], np.cumsum([len(boxes) for _, boxes in pairs])])

    def embed_run(run: np.ndarray) -> list[np.ndarray]:
        sub = []
        for k in np.unique(owner[run]):
            rows = run[owner[run] == k] - first[k]
            sub.append((pairs[k][0], pairs[k][1][rows]))
        return _embed_pairs(embedder, sub)

    found = [rows for part in pool.map(embed_run, runs) for rows in part]   # runs in order, pairs in order
    owners = [k for run in runs for k in np.unique(owner[run])]
    return [np.concatenate([rows for k, rows in zip(owners, found, strict=True) if k == i]) for i in range(len(pairs))]


FrameInput = tuple[np.ndarray, float, "Detections | None", bool]   # image, timestamp, detections, restart


def start_frames(pipelines: Sequence[Pipeline], frames: Sequence[FrameInput]) -> list[StagedFrame | Exception]:
    """``Pipeline.start_frame`` for one frame per pipeline (a camera each; several may share one
    detector), with one detector call for every image of a shared detector that needs one: its
    ``detect_batch`` where the backend has it (one forward pass where the model takes a batch).
    A frame refused by its checks comes back as its exception (``LateFrameError``, ``ValueError``),
    so that the others go on; a failing detector call raises."""
    out: list[StagedFrame | Exception] = []
    for pipeline, (image, timestamp, given, restart) in zip(pipelines, frames, strict=True):
        try:
            reset = pipeline._check_time(image, timestamp, restart)
        except ValueError as exc:
            out.append(exc)
            continue
        out.append(StagedFrame(image, timestamp, given if given is not None else Detections.empty(), None, {},
                               reset))
    by_detector: dict[int, list[int]] = {}
    for i, (pipeline, started, frame) in enumerate(zip(pipelines, out, frames, strict=True)):
        if not isinstance(started, Exception) and frame[2] is None:
            if pipeline.detector is None:
                out[i] = ValueError("no detector configured: pass detections to process()")
                continue
            by_detector.setdefault(id(pipeline.detector), []).append(i)
    for indices in by_detector.values():
        detector = pipelines[indices[0]].detector
        assert detector is not None
        images = [frames[i][0] for i in indices]
        start = time.perf_counter()
        batch = getattr(detector, "detect_batch", None)
        found = batch(images) if batch is not None and len(images) > 1 else [detector(image) for image in images]
        ms = _ms_since(start)
        for i, detections in zip(indices, found, strict=True):
            staged = out[i]
            assert isinstance(staged, StagedFrame)
            out[i] = dataclasses.replace(staged, detections=detections, timings={"detect": ms})
    return out


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1e3
