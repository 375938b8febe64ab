"""Synthetic pedestrian scenes for the demo, tests and benchmarks.

``generate_scene(SceneConfig(...))`` gives a ``Scene`` whose ``frames()`` yields
``SceneFrame(index, image, truth, detections)`` lazily; ``write_mot_sequence``
writes it as a MOTChallenge folder that ``smiletrack_ros.mot.io`` reads.
"""
from smiletrack_ros.scene.config import MAX_PEOPLE, SceneConfig, SceneConfigError
from smiletrack_ros.scene.mot_export import write_mot_sequence
from smiletrack_ros.scene.scene import FrameTruth, Scene, SceneFrame, generate_scene

__all__ = ["MAX_PEOPLE", "FrameTruth", "Scene", "SceneConfig", "SceneConfigError", "SceneFrame",
           "generate_scene", "write_mot_sequence"]
