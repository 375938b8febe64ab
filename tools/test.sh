#!/usr/bin/env bash
# The test command: build or reuse the environment, lint (ruff) and type-check (mypy)
# the source tree, then run the test suite on the installed package. Extra arguments
# go to pytest (e.g. tools/test.sh -k tracker).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/tools/setup_env.sh"
cd "$ROOT"
export AMENT_PREFIX_PATH="$ROOT/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
"$ROOT/.venv/bin/ruff" check "$ROOT"           # rules in ruff.toml
"$ROOT/.venv/bin/mypy" --config-file "$ROOT/mypy.ini"  # files in mypy.ini
# `pytest` (not `python -m pytest`) keeps the checkout off sys.path: the installed copy is tested.
# The ROS 2 launch / CLI tools, when setup_env.sh built them: on PATH for the launch tests. Their
# launch_testing pytest plugins do not load under pytest >= 9, so they are kept out of this run.
if [[ -f $ROOT/.venv-ros2-tools/setup.sh ]]; then
    # shellcheck disable=SC1091
    source "$ROOT/.venv-ros2-tools/setup.sh"
    export PYTEST_ADDOPTS="-p no:launch_testing -p no:launch_ros${PYTEST_ADDOPTS:+ $PYTEST_ADDOPTS}"
fi
exec "$ROOT/.venv/bin/pytest" "$@"
