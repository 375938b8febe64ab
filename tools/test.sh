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
exec "$ROOT/.venv/bin/pytest" "$@"
