"""A smiletrack_ros/Track's ``ground_*`` fields from a ``GroundEstimate``: as message keywords and as CDR
(for ``ros.cdr``). No rclpy, so the CDR encoder stays free of message classes."""
from __future__ import annotations

import math
import struct
from typing import Any

from smiletrack_ros.ground import GroundEstimate, GroundStatus, Refusal

_GROUND_TAIL = struct.Struct("<BB")
_GROUND_VALUES = struct.Struct("<20d")
_F32 = struct.Struct("<f")
_NAN_STATE = (math.nan,) * 20


def track_ground_fields(e: GroundEstimate | None) -> dict[str, Any]:
    """The ``ground_*`` fields of a smiletrack_ros/Track for one estimate (None: no ground output)."""
    if e is None:   # ground output off: no camera model
        return {"ground_status": 0, "ground_refusal": int(Refusal.NO_CAMERA_MODEL), "ground_height": math.nan}
    if e.status == GroundStatus.NONE:
        return {"ground_status": int(GroundStatus.NONE), "ground_refusal": int(e.refusal), "ground_height": math.nan,
                "ground_x": math.nan, "ground_y": math.nan, "ground_velocity_x": math.nan,
                "ground_velocity_y": math.nan, "ground_covariance": [math.nan] * 16}
    return {"ground_status": int(e.status), "ground_refusal": int(e.refusal), "ground_x": float(e.position[0]),
            "ground_y": float(e.position[1]), "ground_velocity_x": float(e.velocity[0]),
            "ground_velocity_y": float(e.velocity[1]), "ground_covariance": e.covariance.reshape(-1).tolist(),
            "ground_height": float(e.height)}


def write_ground_fields(writer: Any, e: GroundEstimate | None) -> None:
    """Appends a Track's ``ground_*`` fields to a ``ros.cdr.CdrWriter`` (same values as
    ``track_ground_fields``)."""
    if e is None or e.status == GroundStatus.NONE:
        refusal = Refusal.NO_CAMERA_MODEL if e is None else e.refusal
        writer.packed(_GROUND_TAIL, 1, int(GroundStatus.NONE), int(refusal))
        writer.packed(_GROUND_VALUES, 8, *((0.0,) * 20 if e is None else _NAN_STATE))
        writer.packed(_F32, 4, math.nan)
        return
    writer.packed(_GROUND_TAIL, 1, int(e.status), int(e.refusal))
    writer.packed(_GROUND_VALUES, 8, float(e.position[0]), float(e.position[1]), float(e.velocity[0]),
                  float(e.velocity[1]), *e.covariance.reshape(-1).tolist())
    writer.packed(_F32, 4, float(e.height))
