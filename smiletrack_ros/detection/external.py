"""Detections that come from outside: a MOT det file offline, or per-frame messages in the node."""
from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np

from smiletrack_ros.detections import Detections
from smiletrack_ros.image_check import check_image

from .config import DetectorConfig, ExternalConfig


class MissingDetectionsError(LookupError):
    """No stored detections match the requested frame or stamp."""


def kept_detections(dets: Detections, config: DetectorConfig) -> np.ndarray:
    """Indices of the detections that pass the class filter, score threshold and
    cap the model backends apply, best score first."""
    keep = dets.scores > config.score_threshold
    if config.classes is not None:
        keep &= np.isin(dets.class_ids, np.asarray(config.classes, np.int64))
    idx = np.flatnonzero(keep)
    return idx[np.argsort(-dets.scores[idx], kind="stable")][: config.max_detections]


def filter_detections(dets: Detections, config: DetectorConfig) -> Detections:
    return dets.subset(kept_detections(dets, config))


class DetectionStore:
    """Holds detections keyed by frame number (int) or stamp (float seconds).

    A stamp look-up takes the nearest stored stamp within ``stamp_tolerance``;
    ``missing='empty'`` answers an unknown key with no detections,
    ``'error'`` raises :class:`MissingDetectionsError`.
    """

    def __init__(self, config: ExternalConfig):
        self.config = config
        self._frames: dict[int, Detections] = {}
        self._stamps: list[float] = []
        self._by_stamp: list[Detections] = []

    def __len__(self) -> int:
        return len(self._frames) + len(self._stamps)

    def put(self, key: int | float, detections: Detections) -> None:
        dets = filter_detections(detections, self.config)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            self._frames[int(key)] = dets
            return
        if not isinstance(key, (float, np.floating)) or not np.isfinite(key):
            raise ValueError(f"detections need an int frame or a finite float stamp as key, got {key!r}")
        i = bisect.bisect_left(self._stamps, float(key))
        if i < len(self._stamps) and self._stamps[i] == float(key):
            self._by_stamp[i] = dets
        else:
            self._stamps.insert(i, float(key))
            self._by_stamp.insert(i, dets)

    def get(self, key: int | float) -> Detections:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            found = self._frames.get(int(key))
        else:
            found = self._nearest_stamp(float(key))
        if found is not None:
            return found
        if self.config.missing == "error":
            raise MissingDetectionsError(f"no external detections for {key!r} "
                                         f"({len(self._frames)} frames, {len(self._stamps)} stamps stored)")
        return Detections.empty()

    def _nearest_stamp(self, stamp: float) -> Detections | None:
        i = bisect.bisect_left(self._stamps, stamp)
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(self._stamps):
                gap = abs(self._stamps[j] - stamp)
                if gap <= self.config.stamp_tolerance and (best is None or gap < best[0]):
                    best = (gap, j)
        return None if best is None else self._by_stamp[best[1]]

    def discard_before(self, stamp: float) -> None:
        """Drop stamped entries older than ``stamp`` (the node calls this to bound memory)."""
        i = bisect.bisect_left(self._stamps, stamp)
        del self._stamps[:i], self._by_stamp[:i]


class ExternalDetector:
    """The ``external`` backend: :meth:`select` picks the frame or stamp, then calling it
    (with the image, for the :class:`Detector` interface) returns that key's detections."""

    def __init__(self, config: ExternalConfig, store: DetectionStore | None = None):
        self.config = config
        self.store = store if store is not None else DetectionStore(config)
        self._key: int | float | None = None

    @classmethod
    def from_mot_file(cls, config: ExternalConfig, path: str | Path, **read_options) -> ExternalDetector:
        from smiletrack_ros.mot.io import read_detections

        detector = cls(config)
        for frame, dets in read_detections(path, **read_options).items():
            detector.store.put(frame, dets)
        return detector

    def select(self, key: int | float) -> ExternalDetector:
        self._key = key
        return self

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        check_image(image_bgr)
        if self._key is None:
            raise MissingDetectionsError("external detector: call select(frame or stamp) before detecting")
        return self.store.get(self._key)
