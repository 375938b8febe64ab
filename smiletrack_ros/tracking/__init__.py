"""SMILEtrack association core: pure numpy/scipy (OpenCV only for optional
camera-motion compensation, imported lazily). No torch, no ROS."""
from .config import PRESETS, ConfigError, Stage, TrackerConfig
from .inputs import InputError
from .tracker import ConcurrentUpdateError, SmileTracker
from .tracks import TrackOutput, TrackState

__all__ = ["PRESETS", "ConcurrentUpdateError", "ConfigError", "InputError", "SmileTracker", "Stage", "TrackOutput",
           "TrackState", "TrackerConfig"]
