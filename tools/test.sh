#!/usr/bin/env bash
# The test command: build or reuse the environment, then run the test suite on the
# installed package. Extra arguments go to pytest (e.g. tools/test.sh -k tracker).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/tools/setup_env.sh"
cd "$ROOT"
export AMENT_PREFIX_PATH="$ROOT/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
exec "$ROOT/.venv/bin/pytest" "$@"
