"""Command-line options for a SceneConfig, shared by make_scene and bag_tools from-scene."""
from __future__ import annotations

import argparse

from smiletrack_ros.scene.config import SceneConfig


def add_scene_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SceneConfig()
    group = parser.add_argument_group("scene")
    group.add_argument("--width", type=int, default=defaults.width)
    group.add_argument("--height", type=int, default=defaults.height)
    group.add_argument("--people", type=int, default=defaults.num_people,
                       help="people in the scene at any time (crowd density, 1..300)")
    group.add_argument("--frames", type=int, default=defaults.num_frames)
    group.add_argument("--fps", type=float, default=defaults.fps)
    group.add_argument("--camera-pan", type=float, default=defaults.camera_pan,
                       help="horizontal camera speed, pixels per second")
    group.add_argument("--seed", type=int, default=defaults.seed)
    group.add_argument("--person-height", type=float, nargs=2, default=defaults.person_height,
                       metavar=("FAR", "NEAR"), help="person height as a fraction of the image height")
    group.add_argument("--crowd-occupancy", type=float,
                       help="shrink people for dense crowds so that they would cover this fraction of the ground "
                            "(e.g. 0.5; see SceneConfig.crowd)")
    group.add_argument("--false-positives", type=float, default=defaults.det_false_positives,
                       help="mean simulated false detections per frame")


def scene_config_from_args(args: argparse.Namespace) -> SceneConfig:
    fields = dict(width=args.width, height=args.height, num_frames=args.frames, fps=args.fps,
                  camera_pan=args.camera_pan, seed=args.seed, person_height=tuple(args.person_height),
                  det_false_positives=args.false_positives)
    if args.crowd_occupancy is not None:
        return SceneConfig.crowd(args.people, occupancy=args.crowd_occupancy, **fields)
    return SceneConfig(num_people=args.people, **fields)
