#!/usr/bin/env bash
# Everything that needs a GPU, in one call (docs/design.md §1), for an H100/H200 machine with torch
# 2.11+cu130, nvcc and compute-sanitizer and no internet:
#
#   info        nvidia-smi, versions, missing Python packages
#   build       TORCH_CUDA_ARCH_LIST=9.0 FASTSEG_CUDA=1 python setup.py build_ext --inplace
#   cmake       libfastseg.so + the C++ test through CMake, built in the background while the
#               tests run; ctest then also runs its CUDA cases (skip with --no-cmake)
#   tests       the whole test suite (tests parametrize over cuda), FASTSEG_EXPECT_CUDA=1
#   sanitize    compute-sanitizer --tool memcheck and --tool racecheck (shared-memory kernels), side
#               by side, on a short CUDA test subset (PYTORCH_NO_CUDA_MEMORY_CACHING=1)
#   bench-cuda  python -m benchmarks --device cuda (full; --quick in quick mode)
#   bench-cpu   python -m benchmarks --device cpu --quick (not in quick mode)
#
# Usage (from anywhere; it works in the repository root):
#   tools/gpu_verify.sh [--quick] [--no-bench] [--no-cmake] [--budget SECONDS]
# Through the device tool:  run(command="tools/gpu_verify.sh", timeout_s=600)
#
# Every step runs even when an earlier one failed (those that need the build are skipped if it
# failed); each step has a time limit, and together they keep within --budget (default 540 s, under
# the device tool's 10-minute cap; a larger budget scales every step's limit, e.g. --budget 1200 on
# a slow machine). The exit status is non-zero if any step failed.
#
# Output: $OUT (default benchmarks/results/gpu-logs) receives at most 8 plain files, as the device
# tool brings back: gpu_verify.log (all output), summary.txt, bench-<device>-<run>.md, and
# bench-results.tar.gz (this run's benchmarks/results/<device>/ files: JSON, markdown, PNG).
# Benchmark results are also left under benchmarks/results/<device>/ as usual.
#
# Missing Python packages (the machine has no internet) travel as wheels in .whl/: they are
# installed into /tmp/site and put on PYTHONPATH.
# Knobs: PYTHON (default python3), GPU_VERIFY_SANITIZE_ARGS (pytest arguments of the sanitizer
# subset), GPU_VERIFY_TEST_ARGS (extra pytest arguments for the whole suite).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd -P)

QUICK=0 BENCH=1 CMAKE=1 BUDGET=540
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --no-bench) BENCH=0 ;;
    --no-cmake) CMAKE=0 ;;
    --budget) BUDGET=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_verify: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

OUT=${OUT:-$ROOT/benchmarks/results/gpu-logs}
mkdir -p "$OUT"
LOG="$OUT/gpu_verify.log"
SUMMARY_FILE="$OUT/summary.txt"
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!

PY=${PYTHON:-python3}
NPROC=$(nproc)
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export TORCH_CUDA_ARCH_LIST=9.0 FASTSEG_CUDA=1 MAX_JOBS=$NPROC
if [[ -z "${CUDA_HOME:-}" && -x /usr/local/cuda/bin/nvcc ]]; then export CUDA_HOME=/usr/local/cuda; fi
export PATH="${CUDA_HOME:-/usr/local/cuda}/bin:$PATH:${CUDA_HOME:-/usr/local/cuda}/compute-sanitizer"
# The sanitizer subset: every CUDA kernel, without what is slow under the sanitizer and runs no
# kernel of ours worth checking twice (compilation, export, opcheck, gradcheck, subprocess error
# checks).
SANITIZE_ARGS=${GPU_VERIFY_SANITIZE_ARGS:-tests/test_unpool_max_unpool.py tests/test_unpool_compact.py tests/test_unpool_scale.py tests/test_unpool_kernels.py tests/test_unpool_autograd.py tests/test_unpool_compile.py tests/test_unpool_nn.py tests/test_unpool_errors.py -q -x -m "not slow" -k "cuda and not compile and not export and not opcheck and not gradcheck and not named_errors"}

T0=$(date +%s)
DEADLINE=$((T0 + BUDGET))
STAMP=$(mktemp)  # benchmark files newer than this are this run's
STEP_NOTE=$(mktemp)  # a step may write a note for its summary line here
declare -a SUMMARY=()
FAILED=0
TIME_SKIPS=0
BUILD_OK=0

now() { date +%s; }
fmt() { printf '%3ds' "$1"; }
record() {  # NAME STATUS SECONDS [NOTE]
  SUMMARY+=("$(printf '%-11s %-8s %s %s' "$1" "$2" "$(fmt "$3")" "${4:-}")")
}

# step NAME CAP_SECONDS MIN_SECONDS COMMAND...: runs COMMAND with a limit of CAP seconds (scaled by
# BUDGET/540), or of what is left of the budget if less; skips it when fewer than MIN are left.
step() {
  local name=$1 cap=$(( $2 * BUDGET / 540 )) min=$3; shift 3
  local left=$((DEADLINE - $(now) - 5)) limit t rc
  limit=$(( cap < left ? cap : left ))
  echo
  echo "==================== [$name] $(date -u +%H:%M:%S) (limit ${limit}s) ===================="
  if (( limit < min )); then
    echo "---- [$name] SKIPPED: only ${left}s of the ${BUDGET}s budget left"
    record "$name" skipped 0 "(out of time)"
    TIME_SKIPS=1
    return 3
  fi
  t=$(now)
  # Through bash -c, so that COMMAND may be one of the functions below (exported with export -f).
  timeout -k 15 "$limit" bash -c '"$@"' step "$@"
  rc=$?
  t=$(( $(now) - t ))
  local extra=""
  if [[ -s "$STEP_NOTE" ]]; then extra=" $(cat "$STEP_NOTE")"; fi
  : >"$STEP_NOTE"
  if [[ $rc -eq 0 ]]; then
    record "$name" ok "$t" "${extra# }"
    echo "---- [$name] ok in ${t}s"
  else
    local note="(exit $rc)"
    [[ $rc -eq 124 || $rc -eq 137 ]] && note="(timed out after ${limit}s)"
    record "$name" FAILED "$t" "$note$extra"
    echo "---- [$name] FAILED $note after ${t}s"
    FAILED=1
  fi
  return $rc
}

skip() {  # NAME REASON
  echo "---- [$1] SKIPPED: $2"
  record "$1" skipped 0 "($2)"
}

finish() {
  local total=$(( $(now) - T0 ))
  {
    echo "gpu_verify $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
    echo "mode: $([[ $QUICK -eq 1 ]] && echo quick || echo full), budget ${BUDGET}s"
    printf '%s\n' "${SUMMARY[@]}"
    echo "total       $(fmt "$total")"
    if [[ $FAILED -eq 0 ]]; then echo "RESULT: PASSED"; else echo "RESULT: FAILED"; fi
    if [[ $TIME_SKIPS -eq 1 ]]; then echo "(some steps were skipped for time: see --budget, --quick)"; fi
  } >"$SUMMARY_FILE"
  echo
  echo "==================== summary ===================="
  cat "$SUMMARY_FILE"
  echo "logs and results in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
  rm -f "$STAMP" "$STEP_NOTE"
}

# ------------------------------------------------------------------------------ steps
info() {
  nvidia-smi || return 1
  echo
  echo "host: $(uname -srm), $NPROC cores; repo: $ROOT (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none))"
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
  command -v compute-sanitizer >/dev/null && compute-sanitizer --version | head -n 2
  command -v cmake >/dev/null && cmake --version | head -n 1
  gcc --version | head -n 1
  "$PY" - <<'EOF'
import importlib, sys
import torch
print(f"python {sys.version.split()[0]} ({sys.executable})")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
if not torch.cuda.is_available():
    sys.exit("torch.cuda.is_available() is False")
p = torch.cuda.get_device_properties(0)
print(f"GPU: {p.name}, sm_{p.major}{p.minor}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB")
missing = []
for mod in ("torchvision", "pytest", "hypothesis", "expecttest", "pytest_benchmark", "numpy", "matplotlib"):
    try:
        m = importlib.import_module(mod)
        print(f"  {mod} {getattr(m, '__version__', '?')}")
    except Exception as e:  # noqa: BLE001
        missing.append(mod)
        print(f"  {mod}: MISSING ({type(e).__name__}: {e})")
if missing:
    print(f"warning: missing {missing}; carry them as wheels in .whl/ (device README)")
EOF
}

build() {
  # --force: setuptools' own up-to-date check ignores headers; ninja then recompiles only what
  # changed since the last call on a warm machine (build/ stays there between calls).
  "$PY" setup.py build_ext --inplace --force || return 1
  "$PY" -c '
import fastseg, torch
assert fastseg.HAS_OPS, f"fastseg._C did not load: {fastseg.load_error}"
assert fastseg.HAS_CUDA_KERNELS, "no CUDA kernels registered"
x = torch.randn(2, 3, 8, 8, device="cuda")
v, i = torch.nn.functional.max_pool2d(x, 2, 2, return_indices=True)
y = torch.ops.fastseg.max_unpool2d(v, i, [2, 2], [2, 2], [0, 0], [8, 8])
torch.cuda.synchronize()
assert torch.equal(y, torch.nn.functional.max_unpool2d(v, i, 2, 2, output_size=(8, 8)))
print("fastseg CUDA kernels registered; max_unpool2d runs on", torch.cuda.get_device_name())'
}

cmake_build() {  # runs in the background; output to build/cmake-gpu.log
  local tp
  tp=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)') || return 1
  rm -rf build/cmake-gpu
  cmake -S . -B build/cmake-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v "$PY")" \
    -DCMAKE_PREFIX_PATH="$tp" -DFASTSEG_CUDA=ON -DTORCH_CUDA_ARCH_LIST=9.0 &&
  cmake --build build/cmake-gpu -j "$NPROC"
}

ctest_run() {
  echo "---- background CMake build log:"
  cat build/cmake-gpu.log
  [[ $CMAKE_RC -eq 0 ]] || { echo "CMake configure/build failed (exit $CMAKE_RC)"; return 1; }
  ctest --test-dir build/cmake-gpu --output-on-failure
}

run_suite() {  # the whole suite; tests parametrize over cuda when a GPU is present
  eval "set -- ${GPU_VERIFY_TEST_ARGS:-}"
  FASTSEG_EXPECT_CUDA=1 "$PY" -m pytest tests -q -p no:cacheprovider "$@"
}

sanitize() {  # TOOL
  # Without the caching allocator every tensor is its own cudaMalloc, so the sanitizer sees the
  # real bounds. API errors (torch's probing calls) are not ours; kernel memory errors are.
  local tool=$1
  eval "set -- $SANITIZE_ARGS"  # shell words, quotes respected
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 FASTSEG_EXPECT_CUDA=1 \
    compute-sanitizer --tool "$tool" --error-exitcode 97 --print-limit 30 --report-api-errors no \
      --target-processes application-only \
    "$PY" -m pytest "$@" -p no:cacheprovider
}

sanitizers() {  # memcheck and racecheck side by side (each is CPU-bound in its own process)
  set -o pipefail
  local pm pr rcm rcr
  sanitize memcheck 2>&1 | sed -u 's/^/[memcheck] /' &
  pm=$!
  sanitize racecheck 2>&1 | sed -u 's/^/[racecheck] /' &
  pr=$!
  wait "$pm"; rcm=$?
  wait "$pr"; rcr=$?
  echo "memcheck: exit $rcm; racecheck: exit $rcr (97: the sanitizer reported errors)"
  echo "(memcheck $rcm, racecheck $rcr)" >"$STEP_NOTE"
  [[ $rcm -eq 0 && $rcr -eq 0 ]]
}

bench() {  # pytest-free CLI; files go to benchmarks/results/<device-slug>/
  "$PY" -m benchmarks "$@"
}

collect_bench() {
  local files
  [[ -d "$ROOT/benchmarks/results" ]] || { echo "no benchmark results written"; return 0; }
  files=$(cd "$ROOT" && find benchmarks/results -mindepth 2 -maxdepth 2 -type f -newer "$STAMP" \
            \( -name '*.json' -o -name '*.md' -o -name '*.png' \) -not -path '*/gpu-logs/*' | sort)
  [[ -n "$files" ]] || { echo "no benchmark results written"; return 0; }
  echo "$files"
  (cd "$ROOT" && tar -czf "$OUT/bench-results.tar.gz" $files)
  local f dev
  for f in $files; do
    [[ $f == *.md ]] || continue
    dev=$(basename "$(dirname "$f")")
    cp "$ROOT/$f" "$OUT/bench-$dev-$(basename "$f")"
  done
}

# ------------------------------------------------------------------------------ main
export -f info build cmake_build ctest_run run_suite sanitize sanitizers bench
export PY ROOT NPROC SANITIZE_ARGS STEP_NOTE
trap 'finish; exec >&- 2>&-; wait "$TEE_PID" 2>/dev/null' EXIT
trap 'echo "gpu_verify: interrupted"; FAILED=1; exit 143' TERM INT
echo "gpu_verify: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), budget ${BUDGET}s, quick=$QUICK bench=$BENCH cmake=$CMAKE, OUT=$OUT"

if compgen -G ".whl/*.whl" >/dev/null; then
  echo "installing carried wheels: $(ls .whl)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

step info 60 10 info
step build 300 60 build && BUILD_OK=1

CMAKE_PID=""
if [[ $CMAKE -eq 1 ]] && command -v cmake >/dev/null; then
  mkdir -p build
  # nice: the tests keep priority; the C++ build only needs to finish before ctest.
  nice -n 10 timeout -k 10 $(( 300 * BUDGET / 540 )) bash -c cmake_build >build/cmake-gpu.log 2>&1 &
  CMAKE_PID=$!
fi

if [[ $BUILD_OK -eq 1 ]]; then
  step tests 240 30 run_suite
  step sanitize 180 30 sanitizers
else
  skip tests "build failed"; skip sanitize "build failed"
fi

if [[ -n "$CMAKE_PID" ]]; then
  wait "$CMAKE_PID"; CMAKE_RC=$?
  export CMAKE_RC
  step ctest 60 10 ctest_run
elif [[ $CMAKE -eq 1 ]]; then
  skip ctest "no cmake on PATH"
fi

if [[ $BENCH -eq 1 && $BUILD_OK -eq 1 ]]; then
  if [[ $QUICK -eq 1 ]]; then
    step bench-cuda 120 30 bench --device cuda --quick
  else
    step bench-cuda 200 60 bench --device cuda
    step bench-cpu 150 30 bench --device cpu --quick
  fi
  collect_bench
elif [[ $BENCH -eq 1 ]]; then
  skip bench "build failed"
fi

exit $FAILED
