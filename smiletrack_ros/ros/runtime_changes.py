"""Runtime detector changes, prepared before the parameter request is answered.

Whatever can fail (building a new detector) happens while the caller waits, so a change
is either refused with the reason or certain to take effect; the worker then swaps it in
between frames. Threshold changes (``THRESHOLD_FIELDS``) rebuild nothing: the detector
reads them afresh on the next image.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smiletrack_ros.detection.config import DetectorConfig


def prepare_detector_change(detector: Any, current: DetectorConfig, new: DetectorConfig) -> Callable[[], Any]:
    """A function for the worker that applies ``new`` and returns the detector to use from then
    on. Raises whatever building the new detector raises (the change is then refused)."""
    if detector is None:                # external detections: the config alone filters them
        return lambda: None
    if current.thresholds_only_differ(new) and hasattr(detector, "update_thresholds"):
        def update() -> Any:
            detector.update_thresholds(new)
            return detector
        return update
    from smiletrack_ros.detection import build_detector

    built = build_detector(new)
    return lambda: built
