"""A smiletrack_ros/Track's ``ground_*`` fields from a ``GroundEstimate``, as the encoder's
``cdr.GroundFields`` (no rclpy)."""
from __future__ import annotations

import math

from smiletrack_ros.cdr import NO_GROUND, GroundFields
from smiletrack_ros.ground import GroundEstimate, GroundStatus

_NAN_STATE = (math.nan,) * 20


def ground_fields(e: GroundEstimate | None) -> GroundFields:
    """The ``ground_*`` values of one track (None: no ground output, for want of a camera model)."""
    if e is None:
        return NO_GROUND
    if e.status == GroundStatus.NONE:
        return GroundFields(int(GroundStatus.NONE), int(e.refusal), _NAN_STATE, math.nan)
    state = (float(e.position[0]), float(e.position[1]), float(e.velocity[0]), float(e.velocity[1]),
             *(float(v) for v in e.covariance.reshape(-1)))
    return GroundFields(int(e.status), int(e.refusal), state, float(e.height))

