"""The node's bounds on what a sender can make it hold or believe (the ``input_limits.*``
parameters): image pixels and codecs, detections per array, stamps ahead of the clock.

``detection_count`` reads a serialised Detection2DArray's length without deserialising
it: rclpy turns 100k detections into Python objects in seconds, with the GIL held, in
the executor thread, so the diagnostics timer and every other callback would stop.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smiletrack_ros.errors import SettingError
from smiletrack_ros.image_codec import ImageBudget
from smiletrack_ros.ros.settings import ParameterError
from smiletrack_ros.ros.stamp_guard import StampGuard

_U32 = struct.Struct("<I")
_U32_BE = struct.Struct(">I")


@dataclass(frozen=True)
class InputLimits:
    image: ImageBudget
    max_detections: int
    max_clock_lead: float

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> InputLimits:
        try:
            image = ImageBudget(values["input_limits.max_pixels"], tuple(values["input_limits.formats"]))
        except SettingError as exc:
            raise ParameterError(f"input_limits.{exc.field}", exc.reason) from None
        max_detections = values["input_limits.max_detections"]
        if max_detections < 1:
            raise ParameterError("input_limits.max_detections", f"must be >= 1, got {max_detections}")
        lead = float(values["input_limits.max_clock_lead"])
        if not (math.isfinite(lead) and lead >= 0):
            raise ParameterError("input_limits.max_clock_lead", f"must be a finite number >= 0 (0: unchecked), "
                                                                f"got {lead}")
        return cls(image, int(max_detections), lead)

    def stamp_guard(self, reorder_s: float) -> StampGuard:
        return StampGuard(max_clock_lead_s=self.max_clock_lead, reorder_s=reorder_s)


def detection_count(data: bytes) -> int:
    """The number of detections in a CDR-serialised vision_msgs/Detection2DArray: after the
    encapsulation header come the header's stamp (8 bytes) and frame_id (uint32 length,
    bytes), then the sequence length, 4-aligned. ValueError when the bytes are too short."""
    if len(data) < 16:
        raise ValueError(f"a Detection2DArray needs at least 16 bytes, got {len(data)}")
    u32 = _U32_BE if data[1] % 2 == 0 else _U32      # encapsulation id: even = big-endian
    (name_length,) = u32.unpack_from(data, 12)
    offset = 16 + name_length
    offset += -(offset - 4) % 4
    if offset + 4 > len(data):
        raise ValueError(f"a Detection2DArray of {len(data)} bytes cannot hold a frame_id of {name_length} bytes")
    return u32.unpack_from(data, offset)[0]
