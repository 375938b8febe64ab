"""The node's image conversion: sensor_msgs Image / CompressedImage -> HxWx3 uint8 BGR.

cv_bridge is used when it is importable (it knows more encodings); otherwise the
numpy path of ``smiletrack_ros.image_codec`` covers the common 8-bit encodings.
Both check the message against the node's ``ImageBudget`` before anything is
allocated from it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from smiletrack_ros.image_codec import (
    DEFAULT_BUDGET,
    ImageBudget,
    ImageError,
    check_raw_layout,
    compressed_to_bgr,
    raw_to_bgr_numpy,
)


def _load_cv_bridge() -> Callable[[Any], np.ndarray] | None:
    try:
        from cv_bridge import CvBridge  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - ROS 1's PyPI cv-bridge raises odd errors on NumPy 2
        return None
    bridge = CvBridge()
    return lambda msg: bridge.imgmsg_to_cv2(msg, desired_encoding="bgr8")


class ImageConverter:
    """Converts image messages to BGR within ``budget``; ``use_cv_bridge=None`` means "when importable"."""

    def __init__(self, use_cv_bridge: bool | None = None, budget: ImageBudget = DEFAULT_BUDGET):
        self.budget = budget
        self._bridge = _load_cv_bridge() if use_cv_bridge in (None, True) else None
        if use_cv_bridge and self._bridge is None:
            raise ImportError("use_cv_bridge=True but cv_bridge is not importable")

    @property
    def backend(self) -> str:
        return "cv_bridge" if self._bridge is not None else "numpy"

    def raw_to_bgr(self, msg: Any) -> np.ndarray:
        check_raw_layout(msg, self.budget)
        if self._bridge is not None:
            try:
                return np.ascontiguousarray(self._bridge(msg))
            except Exception as exc:  # noqa: BLE001 - cv_bridge raises its own error types
                raise ImageError("unsupported_encoding", f"cv_bridge cannot convert {msg.encoding!r}: {exc}") from exc
        return raw_to_bgr_numpy(msg, self.budget)

    def compressed_to_bgr(self, msg: Any) -> np.ndarray:
        return compressed_to_bgr(msg, self.budget)
