"""sensor_msgs Image / CompressedImage fields <-> HxWx3 uint8 BGR arrays, without ROS, within a budget.

A message is checked before anything is allocated from it, so that a malformed or
oversized one costs one ``ImageError`` (counted and logged by the node) instead of a
crash or an allocation sized by the sender. A compressed image is a promise of
pixels: a 629-byte JPEG can announce 30000 x 30000 (2.7 GB decoded). So the format is
read from the data's magic bytes (whatever the message's ``format`` says), only the
allowed codecs go on, and their dimensions are read from the header (JPEG SOF, PNG
IHDR) and held to the pixel budget (``ImageBudget``) before OpenCV decodes anything.
Raw images are held to the same budget before they are converted.

The functions read the message's fields from any object that has them (rclpy or
rosbags messages, a namespace): the node, the bag tools and the tests share them; the
node's ``ros.images.ImageConverter`` adds cv_bridge for encodings numpy does not read.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from smiletrack_ros.errors import SettingError

# 4096 x 2160 (DCI 4K): every common camera up to 4K fits, a decoded frame stays under 27 MB
DEFAULT_MAX_PIXELS = 4096 * 2160
# codecs whose header this module reads; only these can be allowed
HEADER_READERS = ("jpeg", "png")
DEFAULT_FORMATS = HEADER_READERS

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic)
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})   # TEM, RST0..7: no length field
_U16 = struct.Struct(">H")
# other codecs OpenCV would decode, named in the refusal (never decoded here)
_OTHER_MAGIC = ((b"BM", "bmp"), (b"GIF8", "gif"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"),
                (b"\x00\x00\x00\x0cjP  ", "jp2"), (b"\xff\x4f\xff\x51", "j2k"), (b"#?RADIANCE", "hdr"),
                (b"#?RGBE", "hdr"), (b"PF\n", "pfm"), (b"Pf\n", "pfm"), (b"\x59\xa6\x6a\x95", "sun raster"),
                (b"\x76\x2f\x31\x01", "exr"))


class ImageError(ValueError):
    """A message that cannot be turned into a BGR image; ``reason`` is a short counter key."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def sniff_format(data: bytes | memoryview) -> str:
    """The codec the data's magic bytes name (``jpeg``, ``png``, another name, or ``unknown``)."""
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8"):   # SOI; what follows is checked by the header reader
        return "jpeg"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return "avif/heif"
    if len(head) > 2 and head[:1] == b"P" and head[1:2] in b"1234567" and head[2:3].isspace():
        return "pnm"
    return next((name for magic, name in _OTHER_MAGIC if head.startswith(magic)), "unknown")


def jpeg_dimensions(data: bytes | memoryview) -> tuple[int, int]:
    """(width, height) from the first start-of-frame segment, walking the marker segments."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ImageError("corrupt_compressed", f"JPEG marker expected at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:              # fill byte before a marker
            i += 1
            continue
        i += 2
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):      # end of image / start of scan before any frame header
            break
        (length,) = _U16.unpack_from(data, i)
        if length < 2:
            raise ImageError("corrupt_compressed", f"JPEG segment at byte {i} has length {length}")
        if marker in _JPEG_SOF:
            if length < 8 or i + 7 > n:
                break
            height, width = _U16.unpack_from(data, i + 3)[0], _U16.unpack_from(data, i + 5)[0]
            if height == 0 or width == 0:   # height 0 defers to a DNL marker, which decoders refuse
                raise ImageError("corrupt_compressed", f"JPEG frame header says {width}x{height}")
            return width, height
        i += length
    raise ImageError("corrupt_compressed", "JPEG has no frame header (SOF) before its image data")


def png_dimensions(data: bytes | memoryview) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which the PNG standard puts first."""
    if len(data) < 24 or bytes(data[12:16]) != b"IHDR":
        raise ImageError("corrupt_compressed", "PNG does not start with its IHDR chunk")
    width, height = struct.unpack_from(">II", data, 16)
    if width == 0 or height == 0 or width >= 2**31 or height >= 2**31:
        raise ImageError("corrupt_compressed", f"PNG header says {width}x{height}")
    return width, height


_DIMENSIONS = {"jpeg": jpeg_dimensions, "png": png_dimensions}


class ImageBudgetError(SettingError):
    """An ``ImageBudget`` setting is invalid; ``field`` is ``max_pixels`` or ``formats``."""


@dataclass(frozen=True)
class ImageBudget:
    """``max_pixels``: the largest width x height converted or decoded; ``formats``: the
    compressed codecs decoded (a subset of ``HEADER_READERS``)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    formats: tuple[str, ...] = DEFAULT_FORMATS

    def __post_init__(self) -> None:
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ImageBudgetError("max_pixels", f"must be an int >= 1, got {self.max_pixels!r}")
        object.__setattr__(self, "formats", tuple(self.formats))
        unknown = [f for f in self.formats if f not in HEADER_READERS]
        if not self.formats or unknown:
            raise ImageBudgetError("formats", f"must be a non-empty subset of {list(HEADER_READERS)} (codecs whose "
                                              f"header is read before decoding), got {list(self.formats)}")

    def check_pixels(self, width: int, height: int, what: str = "image") -> None:
        if width * height > self.max_pixels:
            raise ImageError("too_many_pixels", f"{what} of {width}x{height} = {width * height} pixels is over "
                                                f"the budget of {self.max_pixels} pixels (input_limits.max_pixels)")

    def check_compressed(self, data: bytes | memoryview) -> tuple[str, int, int]:
        """(format, width, height) of data allowed to be decoded; anything else raises ImageError."""
        found = sniff_format(data)
        if found not in self.formats:
            raise ImageError("format_not_allowed", f"compressed data is {found}; decoded formats are "
                                                   f"{list(self.formats)} (input_limits.formats)")
        width, height = _DIMENSIONS[found](data)
        self.check_pixels(width, height, f"{found} image")
        return found, width, height


DEFAULT_BUDGET = ImageBudget()


# encodings the numpy path reads -> channels
_NUMPY_ENCODINGS: dict[str, int] = {"bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1, "8uc1": 1,
                                    "8uc3": 3, "8uc4": 4}


def check_raw_layout(msg: Any, budget: ImageBudget = DEFAULT_BUDGET) -> None:
    """Rejects zero-sized images, images over the pixel budget and data whose length
    disagrees with step x height."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError("zero_size", f"image has zero size ({width}x{height})")
    budget.check_pixels(width, height)
    size = len(msg.data)
    if step <= 0 or size != step * height:
        raise ImageError("size_mismatch", f"image data is {size} bytes, expected step {step} x height {height}")
    channels = _NUMPY_ENCODINGS.get(str(msg.encoding).lower())
    if channels is not None and step < width * channels:
        raise ImageError("size_mismatch", f"step {step} is shorter than width {width} x {channels} channels "
                                          f"for {msg.encoding!r}")


def raw_to_bgr_numpy(msg: Any, budget: ImageBudget = DEFAULT_BUDGET) -> np.ndarray:
    """The cv_bridge-free path for 8-bit encodings; honours row padding (step > width x channels)."""
    check_raw_layout(msg, budget)
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


def compressed_to_bgr(msg: Any, budget: ImageBudget = DEFAULT_BUDGET) -> np.ndarray:
    """Decodes a CompressedImage with OpenCV once ``budget`` allows its codec (read from the
    data, not from ``msg.format``) and header dimensions; anything else raises ImageError."""
    import cv2

    data = _as_uint8(msg.data)
    if data.size == 0:
        raise ImageError("zero_size", "compressed image has no data")
    found, width, height = budget.check_compressed(data.data)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.shape[:2] != (height, width):
        raise ImageError("corrupt_compressed", f"cannot decode the {width}x{height} {found} image "
                                               f"(format field {msg.format!r})")
    return image


def bgr_to_raw_fields(image_bgr: np.ndarray) -> dict[str, Any]:
    """Fields of a bgr8 sensor_msgs/Image for an HxWx3 uint8 array (debug image, tools)."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {image_bgr.shape} {image_bgr.dtype}")
    height, width = image_bgr.shape[:2]
    return {"height": height, "width": width, "encoding": "bgr8", "is_bigendian": 0, "step": width * 3,
            "data": np.ascontiguousarray(image_bgr).tobytes()}
