"""The scene generator's settings, validated once when built."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smiletrack_ros.scene.camera import SceneCamera

MAX_PEOPLE = 300
MIN_PERSON_PIXELS = 8
BODY_AREA = 0.183  # body pixels per squared person height, measured on the rendered figures


class SceneConfigError(ValueError):
    """A ``SceneConfig`` field is out of range; the message names the field."""


def _range_pair(name: str, value: object, lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise SceneConfigError(f"{name} must be a pair of numbers, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise SceneConfigError(f"{name} must be a pair of finite numbers, got {value!r}")
    if not lo <= a <= b <= hi:
        raise SceneConfigError(f"{name} must satisfy {lo} <= first <= second <= {hi}, got {value!r}")
    return a, b


@dataclass(frozen=True)
class SceneConfig:
    """A synthetic pedestrian scene and its simulated detector.

    Geometry is relative to the image so one config works at any size. People
    stand on a ground band (``ground_band``: feet y, as fractions of the image
    height, far to near) and scale linearly with their foot y between the two
    ``person_height`` fractions, so that nearer people are larger and drawn on
    top. ``num_people`` is the crowd density: people leaving the view are
    replaced by new identities entering from a side.

    Detector model (``detector_model``: a detector trained on full-body, MOT-style
    boxes): a person is found with probability ``det_recall`` when fully
    visible, falling along a logistic curve that halves at
    ``det_half_visibility``; its box is the whole body, edges jittered by
    ``det_box_noise`` of the box size, and a hidden edge (inferred from the visible
    part) by ``det_amodal_noise`` of how far it lies beyond what is seen; scores
    fall from ``det_score_high`` (fully visible) towards ``det_score_low`` as
    visibility drops; ``det_false_positives`` is the mean number of spurious boxes
    per frame (mostly low scores).
    """

    width: int = 640
    height: int = 480
    num_people: int = 8
    num_frames: int = 200
    fps: float = 25.0
    camera_pan: float = 0.0                       # camera x speed, pixels per second
    seed: int = 0
    ground_band: tuple[float, float] = (0.45, 1.02)
    person_height: tuple[float, float] = (0.2, 0.55)
    walk_speed: tuple[float, float] = (0.5, 1.1)  # body heights per second
    image_noise: float = 2.0                      # sensor noise std, grey levels
    det_recall: float = 0.97
    det_half_visibility: float = 0.35
    det_box_noise: float = 0.04                   # corner jitter std, fraction of box size
    det_amodal_noise: float = 0.2                 # hidden-edge jitter std, fraction of the hidden extent
    det_false_positives: float = 0.5
    det_score_high: float = 0.92
    det_score_low: float = 0.2
    det_score_noise: float = 0.06
    camera: SceneCamera | None = None             # metric floor and perspective (scene.camera); None: pixel scene
    # Static occluders in front of everyone (pillars): (left, right) x, fractions of the width.
    occluders: tuple[tuple[float, float], ...] = ()

    @classmethod
    def crowd(cls, num_people: int, occupancy: float = 0.5, **overrides) -> SceneConfig:
        """A config whose people are scaled down, when needed, so that their bodies would cover
        about ``occupancy`` of the ground band's image area if none overlapped.

        Piling 300 people of the default size into one frame hides nearly all of
        them; a real dense crowd is filmed from farther away (MOT20), which is
        what shrinking them does. Sizes are only ever reduced, and never below
        the smallest allowed person (``MIN_PERSON_PIXELS`` tall at the far edge).
        """
        if not 0.0 < occupancy <= 5.0:
            raise SceneConfigError(f"occupancy must be in (0, 5], got {occupancy}")
        base = cls(num_people=num_people, **overrides)
        far, near = base.person_height
        mean_square = (far * far + far * near + near * near) / 3.0  # heights uniform between far and near
        band = base.ground_band[1] - base.ground_band[0]
        covered = num_people * BODY_AREA * mean_square * base.height / (base.width * band)
        scale = min(1.0, max(math.sqrt(occupancy / covered), MIN_PERSON_PIXELS / (far * base.height)))
        return cls(num_people=num_people, **{**overrides, "person_height": (far * scale, near * scale)})

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                    raise SceneConfigError(f"{f.name} must be an int, got {value!r}")
                object.__setattr__(self, f.name, int(value))
            elif f.type == "float":
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                    raise SceneConfigError(f"{f.name} must be a finite number, got {value!r}")
                object.__setattr__(self, f.name, float(value))
        if not 32 <= self.width <= 8192:
            raise SceneConfigError(f"width must be in [32, 8192], got {self.width}")
        if not 32 <= self.height <= 8192:
            raise SceneConfigError(f"height must be in [32, 8192], got {self.height}")
        if not 1 <= self.num_people <= MAX_PEOPLE:
            raise SceneConfigError(f"num_people must be in [1, {MAX_PEOPLE}], got {self.num_people}")
        if self.num_frames < 1:
            raise SceneConfigError(f"num_frames must be >= 1, got {self.num_frames}")
        if not 0.0 < self.fps <= 1000.0:
            raise SceneConfigError(f"fps must be in (0, 1000], got {self.fps}")
        if self.seed < 0:
            raise SceneConfigError(f"seed must be >= 0, got {self.seed}")
        if abs(self.camera_pan) > 10.0 * self.width:
            raise SceneConfigError(f"camera_pan must be at most 10 image widths per second, got {self.camera_pan}")
        object.__setattr__(self, "ground_band", _range_pair("ground_band", self.ground_band, 0.05, 1.2))
        if self.ground_band[1] - self.ground_band[0] < 0.05:
            raise SceneConfigError(f"ground_band must span at least 0.05 of the height, got {self.ground_band!r}")
        object.__setattr__(self, "person_height", _range_pair("person_height", self.person_height, 0.02, 1.0))
        if self.person_height[0] * self.height < MIN_PERSON_PIXELS * (1 - 1e-9):
            raise SceneConfigError(f"person_height[0] x height must be >= {MIN_PERSON_PIXELS} pixels, got "
                                   f"{self.person_height[0] * self.height:.1f}")
        object.__setattr__(self, "walk_speed", _range_pair("walk_speed", self.walk_speed, 0.0, 5.0))
        for name in ("det_recall", "det_score_high", "det_score_low"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SceneConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.det_score_low > self.det_score_high:
            raise SceneConfigError(f"det_score_low ({self.det_score_low}) must not exceed det_score_high "
                                   f"({self.det_score_high})")
        if not 0.0 < self.det_half_visibility < 1.0:
            raise SceneConfigError(f"det_half_visibility must be in (0, 1), got {self.det_half_visibility}")
        for name in ("image_noise", "det_box_noise", "det_amodal_noise", "det_false_positives", "det_score_noise"):
            if getattr(self, name) < 0.0:
                raise SceneConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.det_box_noise > 0.5:
            raise SceneConfigError(f"det_box_noise must be <= 0.5, got {self.det_box_noise}")
        if self.det_amodal_noise > 1.0:
            raise SceneConfigError(f"det_amodal_noise must be <= 1, got {self.det_amodal_noise}")
        object.__setattr__(self, "occluders", tuple(_range_pair("occluders", o, 0.0, 1.0) for o in self.occluders))
        if self.det_false_positives > 100.0:
            raise SceneConfigError(f"det_false_positives must be <= 100 per frame, got {self.det_false_positives}")
        self._check_camera()

    def _check_camera(self) -> None:
        from smiletrack_ros.scene.camera import SceneCamera

        if self.camera is not None and not isinstance(self.camera, SceneCamera):
            raise SceneConfigError(f"camera must be a SceneCamera or None, got {self.camera!r}")
        if self.camera is not None and self.camera_pan != 0.0:
            raise SceneConfigError("camera_pan must be 0 with a metric camera (the camera stands still)")
