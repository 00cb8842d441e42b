#!/usr/bin/env bash
# One command from a fresh clone to results:
#   bash tools/quickstart.sh          set up .venv if missing, build fastseg, run the benchmark quick run
#   bash tools/quickstart.sh test     set up .venv if missing, build fastseg, run the tests
# Extra arguments after the first go to the benchmark CLI or to pytest.
#
# The venv gets torch 2.14.1 + torchvision 0.29.1 (CUDA 13.0 builds; on our machines pip takes
# them from local disk). Set FASTSEG_TORCH="torch==2.13.0" (CPU-only wheel, no torchvision) or
# point FASTSEG_VENV at a venv that already has the torch you want. FASTSEG_CUDA=0 builds the
# C++ kernels only (faster), FASTSEG_CUDA=1 forces the CUDA kernels; default: CUDA when the
# installed torch is a CUDA build and a CUDA toolkit is found.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=bench
if [[ "${1:-}" == "test" || "${1:-}" == "bench" ]]; then MODE=$1; shift; fi
VENV=${FASTSEG_VENV:-.venv}
TORCH_SPEC=${FASTSEG_TORCH:-"torch==2.14.1 torchvision==0.29.1"}

if [[ -z "${CUDA_HOME:-}" && -x /usr/local/cuda/bin/nvcc ]]; then export CUDA_HOME=/usr/local/cuda; fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "== creating $VENV with $TORCH_SPEC"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $TORCH_SPEC
fi
"$VENV/bin/pip" install -q ninja numpy pytest hypothesis expecttest pytest-benchmark setuptools wheel pillow tqdm matplotlib pycocotools 2>&1 | grep -v "^WARNING: Location" || true

if ! "$VENV/bin/python" -c "import fastseg, sys; sys.exit(0 if fastseg.HAS_OPS else 1)" >/dev/null 2>&1; then
  echo "== building fastseg (a few minutes with the CUDA kernels; FASTSEG_CUDA=0 for C++ only)"
  MAX_JOBS=${MAX_JOBS:-$(nproc)} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} \
    "$VENV/bin/pip" install -q --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import fastseg; assert fastseg.HAS_OPS, fastseg.load_error"
fi

if [[ $MODE == test ]]; then
  exec "$VENV/bin/python" -m pytest tests -q "$@"
fi
exec "$VENV/bin/python" -m benchmarks --quick "$@"
