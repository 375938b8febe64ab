#!/usr/bin/env bash
# The main job: build the environment if needed, then track a synthetic scene (or, with
# --video V --detector-weights W, a real video) through the real ROS 2 node, record the
# tracks, write out/demo/tracks.mp4 and print HOTA / IDF1 against the ground truth.
#   tools/demo.sh                      # scene with simulated detections
#   tools/demo.sh --video ../shared/data/MOT15/TUD-Campus/TUD-Campus.mp4 \
#                 --detector-weights ../shared/models/yolox_nano.onnx
# Options: python -m smiletrack_ros.cli.demo --help
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/tools/setup_env.sh"
export AMENT_PREFIX_PATH="$ROOT/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# -P: import the installed package (with its generated messages), not the source tree.
exec "$ROOT/.venv/bin/python" -P -m smiletrack_ros.cli.demo --out "$ROOT/out/demo" "$@"
