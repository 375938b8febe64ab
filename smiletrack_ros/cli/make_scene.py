"""Render a synthetic pedestrian scene as a MOTChallenge sequence folder.

    python -m smiletrack_ros.cli.make_scene OUT_DIR [--people 8] [--frames 200] [--seed 0] \
        [--camera-pan 40] [--width 640 --height 480 --fps 25]

Writes OUT_DIR/img1/*.jpg, gt/gt.txt (with visibility), det/det.txt (simulated
detector) and seqinfo.ini.
"""
from __future__ import annotations

import argparse
import sys
import time

from smiletrack_ros.scene import SceneConfigError, generate_scene, write_mot_sequence
from smiletrack_ros.scene.cli_args import add_scene_arguments, scene_config_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_scene", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="sequence folder to write (its name is the sequence name)")
    parser.add_argument("--name", help="sequence name in seqinfo.ini (default: the folder name)")
    parser.add_argument("--jpeg-quality", type=int, default=95)
    add_scene_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = scene_config_from_args(args)
    except SceneConfigError as err:
        parser.error(str(err))
    start = time.perf_counter()
    out = write_mot_sequence(generate_scene(config), args.out_dir, name=args.name, jpeg_quality=args.jpeg_quality)
    elapsed = time.perf_counter() - start
    print(f"wrote {config.num_frames} frames to {out} in {elapsed:.1f} s "
          f"({1000 * elapsed / config.num_frames:.1f} ms/frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
