"""Synthetic pedestrian scenes for the demo, tests and benchmarks.

``generate_scene(SceneConfig(...))`` gives a ``Scene`` whose ``frames()`` yields
``SceneFrame(index, image, truth, detections)`` lazily; ``write_mot_sequence``
writes it as a MOTChallenge folder that ``smiletrack_ros.mot.io`` reads;
``collect_ground_truth`` gives the same ground truth in memory.
``SceneConfig.crowd(n)`` shrinks people for dense crowds (up to 300).
"""
from smiletrack_ros.scene.config import MAX_PEOPLE, SceneConfig, SceneConfigError
from smiletrack_ros.scene.mot_export import collect_ground_truth, write_mot_sequence
from smiletrack_ros.scene.scene import FrameTruth, Scene, SceneFrame, generate_scene

__all__ = ["MAX_PEOPLE", "FrameTruth", "Scene", "SceneConfig", "SceneConfigError", "SceneFrame",
           "collect_ground_truth", "generate_scene", "write_mot_sequence"]
