#!/usr/bin/env bash
# The speed suite on a CUDA machine in one go (fp32 and fp16): tracker sweep,
# embedder crops/s vs batch, detector ms/frame (PRB-FPN E6E at 640 and 1280,
# YOLOX-Nano when --shared has the models). Prints the tables and writes
# out/bench/speed_cuda/report.md. About 3-5 minutes.
#
#   bench/gpu_speed.sh [extra bench/run options, e.g. --shared /path/to/shared]
#
# Needs a python3 with torch + torchvision already installed (PYTHON=... to pick
# one). The project's venv is not used: a venv with --system-site-packages under
# out/gpu_venv gets only the light packages that python lacks, and the package
# is imported from this source tree.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}   # DEVICE=cpu runs the same path without a GPU (fp16 is then skipped)
VENV="$ROOT/out/gpu_venv"

"$PY" -c "import torch, torchvision, sys; dev = '$DEVICE'; \
assert dev == 'cpu' or torch.cuda.is_available(), 'CUDA is not available to this torch'; \
print(f'python {sys.version.split()[0]}, torch {torch.__version__}, torchvision {torchvision.__version__}, ' \
      f'{torch.cuda.get_device_name(0) if dev != \"cpu\" else \"cpu\"}')"
[ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV"

# module -> the PyPI package that provides it
declare -A PROVIDES=([numpy]=numpy [scipy]=scipy [safetensors]=safetensors [onnxruntime]=onnxruntime
                     [cv2]=opencv-python-headless [yaml]=pyyaml [tqdm]=tqdm [matplotlib]=matplotlib)
MISSING=()
for module in "${!PROVIDES[@]}"; do
  "$VENV/bin/python" -c "import $module" 2>/dev/null || MISSING+=("${PROVIDES[$module]}")
done
if [ ${#MISSING[@]} -gt 0 ]; then
  echo "installing into $VENV: ${MISSING[*]}"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${MISSING[@]}"
fi

SMILETRACK_PYTHON="$VENV/bin/python" exec "$ROOT/bench/run" --only speed --device "$DEVICE" --precision fp32,fp16 \
  --no-peers --speed-parts tracker,embedder,detector --no-progress "$@"
