"""sensor_msgs Image / CompressedImage <-> HxWx3 uint8 BGR arrays.

Validation happens before any decoding so that a malformed message costs one
``ImageError`` (counted and logged by the node) instead of a crash. cv_bridge is
used when it is importable (it knows more encodings); the numpy path covers the
common 8-bit encodings without it. Neither path imports rclpy, so both work on
any object with the message's fields.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# encodings the numpy path reads -> channels
_NUMPY_ENCODINGS: dict[str, int] = {"bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1, "8uc1": 1,
                                    "8uc3": 3, "8uc4": 4}


class ImageError(ValueError):
    """A message that cannot be turned into a BGR image; ``reason`` is a short counter key."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _load_cv_bridge() -> Callable[[Any], np.ndarray] | None:
    try:
        from cv_bridge import CvBridge  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - ROS 1's PyPI cv-bridge raises odd errors on NumPy 2
        return None
    bridge = CvBridge()
    return lambda msg: bridge.imgmsg_to_cv2(msg, desired_encoding="bgr8")


class ImageConverter:
    """Converts image messages to BGR; ``use_cv_bridge=None`` means "when importable"."""

    def __init__(self, use_cv_bridge: bool | None = None):
        self._bridge = _load_cv_bridge() if use_cv_bridge in (None, True) else None
        if use_cv_bridge and self._bridge is None:
            raise ImportError("use_cv_bridge=True but cv_bridge is not importable")

    @property
    def backend(self) -> str:
        return "cv_bridge" if self._bridge is not None else "numpy"

    def raw_to_bgr(self, msg: Any) -> np.ndarray:
        check_raw_layout(msg)
        if self._bridge is not None:
            try:
                return np.ascontiguousarray(self._bridge(msg))
            except Exception as exc:  # noqa: BLE001 - cv_bridge raises its own error types
                raise ImageError("unsupported_encoding", f"cv_bridge cannot convert {msg.encoding!r}: {exc}") from exc
        return raw_to_bgr_numpy(msg)

    @staticmethod
    def compressed_to_bgr(msg: Any) -> np.ndarray:
        return compressed_to_bgr(msg)


def check_raw_layout(msg: Any) -> None:
    """Rejects zero-sized images and data whose length disagrees with step x height."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError("zero_size", f"image has zero size ({width}x{height})")
    size = len(msg.data)
    if step <= 0 or size != step * height:
        raise ImageError("size_mismatch", f"image data is {size} bytes, expected step {step} x height {height}")
    channels = _NUMPY_ENCODINGS.get(str(msg.encoding).lower())
    if channels is not None and step < width * channels:
        raise ImageError("size_mismatch", f"step {step} is shorter than width {width} x {channels} channels "
                                          f"for {msg.encoding!r}")


def raw_to_bgr_numpy(msg: Any) -> np.ndarray:
    """The cv_bridge-free path for 8-bit encodings; honours row padding (step > width x channels)."""
    check_raw_layout(msg)
    encoding = str(msg.encoding).lower()
    channels = _NUMPY_ENCODINGS.get(encoding)
    if channels is None:
        raise ImageError("unsupported_encoding",
                         f"unsupported encoding {msg.encoding!r} (supported without cv_bridge: "
                         f"{', '.join(sorted(_NUMPY_ENCODINGS))})")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    buf = _as_uint8(msg.data)
    rows = buf.reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if encoding in ("bgr8", "8uc3"):
        return np.ascontiguousarray(rows)
    if encoding == "rgb8":
        return np.ascontiguousarray(rows[:, :, ::-1])
    if encoding in ("bgra8", "8uc4"):
        return np.ascontiguousarray(rows[:, :, :3])
    if encoding == "rgba8":
        return np.ascontiguousarray(rows[:, :, 2::-1])
    return np.ascontiguousarray(np.repeat(rows, 3, axis=2))  # mono8


def _as_uint8(data: Any) -> np.ndarray:
    """A zero-copy uint8 view of bytes / array.array('B') / ndarray; lists are copied."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def compressed_to_bgr(msg: Any) -> np.ndarray:
    """Decodes a CompressedImage (jpeg/png/...) with OpenCV; corrupt data raises ImageError."""
    import cv2

    data = _as_uint8(msg.data)
    if data.size == 0:
        raise ImageError("zero_size", "compressed image has no data")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageError("corrupt_compressed", f"cannot decode compressed image (format {msg.format!r})")
    return image


def bgr_to_raw_fields(image_bgr: np.ndarray) -> dict[str, Any]:
    """Fields of a bgr8 sensor_msgs/Image for an HxWx3 uint8 array (debug image, tools)."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {image_bgr.shape} {image_bgr.dtype}")
    height, width = image_bgr.shape[:2]
    return {"height": height, "width": width, "encoding": "bgr8", "is_bigendian": 0, "step": width * 3,
            "data": np.ascontiguousarray(image_bgr).tobytes()}
