"""The CPU kernels run multi-threaded in whatever build is loaded, CUDA builds included (issue 15).

`at::parallel_for` is a header template that runs serially unless the code that instantiates it
is compiled with OpenMP (commit 8c82ff7: every CPU kernel ran on one thread). The CPU
translation units (csrc/**/*.cpp) get -fopenmp; the CUDA ones (csrc/**/*.cu) do not. A CPU flow
instantiated in both would be one weak symbol defined twice, serially in the .cu object, and
which copy the linker keeps is left to link order. So CPU code stays in CPU translation units,
selected at compile time (`if constexpr (Backend::kIsCpu)`, docs/design.md §4), and:

- `test_cpu_kernel_runs_on_several_threads` runs real kernels (the CPU-only flows of RoIAlign
  and batched NMS, and CpuBackend's body mapping) on 2 threads, in a child process, and checks
  that threads other than the caller do a fair share of the CPU time. A serial kernel leaves
  them idle (shown by building roi_align.cpp and nms.cpp without -fopenmp: those four cases
  fail). In CI's "tests" phase the loaded build is the CUDA build.
- `test_cuda_translation_units_include_no_cpu_flow` reads the headers every .cu file includes
  (transitively) and fails if one holds at::parallel_for / OpenMP, a CPU-only header, or, in a
  flow header (`*_ops.h`, `cuda_backend.cuh`), a run-time device test (`is_cpu()`). No build
  needed.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Set

import pytest
import torch

import fastseg
import helpers

CSRC = Path(helpers.REPO_ROOT) / "csrc"

# ------------------------------------------------------------------------------ run time

#: The share of the process's CPU time that threads other than the caller must take while a
#: kernel runs on 2 threads. A parallel kernel splits its work in two (OpenMP's static chunks):
#: ~0.5, a little less for the serial parts around it. A serial one: ~0 (measured: 0.00-0.01).
MIN_OTHER_SHARE = 0.25
#: CPU seconds each kernel is run for: a short run is dominated by the serial checks and
#: allocations around the kernel.
MIN_CPU_S = 0.3


def _other_threads_share(fn: Callable[[], object]) -> float:
    """Runs fn until it has used MIN_CPU_S of CPU time; returns the share of that time used by
    threads other than the calling one (OpenMP's workers)."""
    fn()  # warm-up: starts the OpenMP pool, faults in memory
    t0, p0 = time.thread_time(), time.process_time()
    calls = 0
    while calls < 3 or (time.process_time() - p0 < MIN_CPU_S and calls < 1000):
        fn()
        calls += 1
    mine = time.thread_time() - t0
    total = time.process_time() - p0
    return (total - mine) / total if total > 0 else 0.0


def _rois(k: int, batch: int, size: float, gen: torch.Generator) -> torch.Tensor:
    xy = torch.rand(k, 2, generator=gen) * size * 0.7
    wh = torch.rand(k, 2, generator=gen) * size * 0.3 + 4
    b = torch.randint(0, batch, (k, 1), generator=gen).float()
    return torch.cat([b, xy, xy + wh], 1)


def _case_roi_align(gen):
    # Channels-last input: the CPU path reads it directly (an NCHW input would first be copied
    # to channels-last by a parallel ATen copy, which is not the kernel under test).
    x = torch.rand(2, 64, 64, 64, generator=gen).contiguous(memory_format=torch.channels_last)
    rois = _rois(500, 2, 256.0, gen)
    return lambda: torch.ops.fastseg.roi_align.default(x, rois, 0.25, 7, 7, 2, False)


def _case_roi_align_backward(gen):
    grad = torch.rand(500, 64, 7, 7, generator=gen)
    rois = _rois(500, 2, 256.0, gen)
    return lambda: torch.ops.fastseg.roi_align_backward.default(grad, rois, 0.25, 7, 7, 2, 64, 64, 64, 2, False)


def _case_multi_scale_roi_align(gen):
    feats = [torch.rand(2, 64, s, s, generator=gen).contiguous(memory_format=torch.channels_last) for s in (64, 32)]
    rois = _rois(500, 2, 256.0, gen)
    levels = torch.randint(0, 2, (500,), generator=gen)
    return lambda: torch.ops.fastseg.multi_scale_roi_align.default(feats, rois, levels, [0.25, 0.125], 7, 7, 2)


def _case_batched_nms(gen):
    # Two classes of equal size (one per thread), boxes small and scattered so that few are
    # suppressed: the greedy loop does ~K^2 / 4 IoU tests per class.
    k = 6000
    xy = torch.rand(k, 2, generator=gen) * 4000
    boxes = torch.cat([xy, xy + 8 + torch.rand(k, 2, generator=gen) * 8], 1)
    scores = torch.rand(k, generator=gen)
    idxs = torch.arange(k) % 2
    return lambda: torch.ops.fastseg.batched_nms.default(boxes, scores, idxs, 0.5)


def _case_paste_masks(gen):
    masks = torch.rand(64, 28, 28, generator=gen)
    xy = torch.rand(64, 2, generator=gen) * 300
    boxes = torch.cat([xy, xy + 100 + torch.rand(64, 2, generator=gen) * 100], 1)
    return lambda: torch.ops.fastseg.paste_masks.default(masks, boxes, 512, 512, 0.5)


def _case_unpool_nearest2d(gen):
    x = torch.rand(2, 64, 96, 96, generator=gen)
    return lambda: torch.ops.fastseg.unpool_nearest2d.default(x, [2, 2])


#: Kernels whose CPU form is parallel: name -> factory of a zero-argument call.
CASES: Dict[str, Callable[[torch.Generator], Callable[[], object]]] = {
    "roi_align": _case_roi_align,                            # roi_align_cpu.h: cpu_forward
    "roi_align_backward": _case_roi_align_backward,          # roi_align_cpu.h: cpu_backward
    "multi_scale_roi_align": _case_multi_scale_roi_align,    # roi_align_cpu.h: cpu_forward, levels
    "batched_nms": _case_batched_nms,                        # nms_cpu.h: greedy_by_class
    "paste_masks": _case_paste_masks,                        # CpuBackend::for_each_4d, per-element
    "unpool_nearest2d": _case_unpool_nearest2d,              # CpuBackend::for_each_4d, row form
}


def measure_all() -> Dict[str, float]:
    """{case: share of the CPU time taken by other threads}, every case on 2 threads with the
    default kernel paths. Run in a child process (see _shares)."""
    import fastseg.testing

    torch.set_num_threads(2)
    shares = {}
    with fastseg.testing.strategy(cpu_row_kernels=True, nms="auto", roi_align_backward="auto"):
        for name, case in CASES.items():
            shares[name] = _other_threads_share(case(torch.Generator().manual_seed(0)))
    return shares


_CHILD = """
import json, os, sys
import fastseg
assert os.path.realpath(fastseg.__file__) == os.path.realpath(sys.argv[1]), (fastseg.__file__, sys.argv[1])
import test_cpu_threads
print("SHARES " + json.dumps(test_cpu_threads.measure_all()))
"""


@pytest.fixture(scope="module")
def _shares() -> Dict[str, float]:
    """The shares, measured in a fresh process with OMP_WAIT_POLICY=PASSIVE: OpenMP's workers
    then sleep as soon as a parallel region ends. With the default policy they spin for
    milliseconds after each one, so an ATen op's parallel region inside a call (a zero fill)
    lends a serial kernel CPU time on other threads (measured: 28% for a serial backward). The
    child imports the same fastseg as this process."""
    env = helpers._child_env()
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastseg.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env["PYTHONPATH"]])
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["OMP_NUM_THREADS"] = "2"
    # cwd: the tests, not the repository root, which `python -c` would put first on sys.path.
    proc = subprocess.run([sys.executable, "-c", _CHILD, fastseg.__file__], cwd=helpers.TESTS_DIR, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SHARES ")]
    assert proc.returncode == 0 and lines, f"the measuring process failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("SHARES "):])


@helpers.needs_ops
@pytest.mark.skipif("OpenMP" not in torch.__config__.parallel_info(),
                    reason="torch's CPU parallelism is not OpenMP here (the hazard is OpenMP's)")
@pytest.mark.parametrize("name", list(CASES))
def test_cpu_kernel_runs_on_several_threads(name, _shares):
    share = _shares[name]
    assert share >= MIN_OTHER_SHARE, (
        f"fastseg.{name} ran on one thread: the other threads took {share:.1%} of the CPU time on 2 threads "
        f"(expected ~50%). Its CPU code was probably compiled without OpenMP, e.g. a CPU flow "
        f"instantiated in a .cu translation unit (docs/design.md §4)")


# ------------------------------------------------------------------------------ static

_TOKEN = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|//[^\n]*|/\*.*?\*/', re.S)
_INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]', re.M)

#: Forbidden in every file a .cu translation unit includes (after comments are removed): CPU
#: threading, which must be compiled with OpenMP, i.e. only in .cpp files.
CPU_THREADING = re.compile(
    r"\b(parallel_for|parallel_reduce|invoke_parallel|get_num_threads|omp_\w+)\b|#\s*pragma\s+omp")
#: Headers a .cu file must not include (directly or not): the CPU backend, CPU-only flows
#: (`*_cpu.h`) and ATen's threading header.
CPU_HEADERS = re.compile(r"(^|/)(cpu_backend\.h|[a-z0-9_]+_cpu\.h|ATen/Parallel\.h|ATen/ParallelOpenMP\.h)$")
#: CPU-only headers that a .cu still reaches, with the reason. The unpooling bodies (max_unpool.h,
#: compact.h, scale.h) include their CPU row loops for their run_row / run_plane members, which
#: only CpuBackend instantiates; the loops hold no threading.
ALLOWED_CPU_HEADERS = {"ops/unpool/unpool_rows_cpu.h"}
#: Forbidden in the flow headers, which are instantiated for both backends: a run-time device
#: test where the backend type must decide (`if constexpr (Backend::kIsCpu)`).
RUNTIME_DEVICE_TESTS = ("is_cpu()", "is_cuda()")
#: The flow files: `<family>_ops.h`, their shared parts (`unpool_ops_common.h`), the CUDA backend
#: and the .cu files themselves.
FLOW_FILE = re.compile(r"(_ops(_\w+)?\.h|\.cuh|\.cu)$")


def _code(path: Path) -> str:
    """The file without comments (string and character literals kept)."""
    return _TOKEN.sub(lambda m: " " if m.group(0).startswith("/") else m.group(0), path.read_text())


def _project_includes(path: Path) -> List[str]:
    """The quoted #include targets of a file that resolve inside csrc/ (relative to csrc/)."""
    out = []
    for kind, target in _INCLUDE.findall(_code(path)):
        if kind != '"':
            continue
        for base in (CSRC, path.parent):
            if (base / target).is_file():
                out.append(str((base / target).resolve().relative_to(CSRC.resolve())))
                break
    return out


def _all_includes(path: Path) -> Dict[str, Set[str]]:
    """Every header a file includes, transitively: {header: the files that include it}, with
    system headers only as their name (never opened)."""
    seen: Dict[str, Set[str]] = {}
    todo = [path]
    while todo:
        f = todo.pop()
        code = _code(f)
        rel = str(f.resolve().relative_to(CSRC.resolve()))
        for kind, target in _INCLUDE.findall(code):
            if kind == "<":
                seen.setdefault(target, set()).add(rel)
        for inc in _project_includes(f):
            if inc not in seen:
                todo.append(CSRC / inc)
            seen.setdefault(inc, set()).add(rel)
    return seen


CUDA_SOURCES = sorted(CSRC.glob("**/*.cu"))


def test_there_are_cuda_sources():
    assert CUDA_SOURCES, f"no .cu files under {CSRC}"


@pytest.mark.parametrize("cu", CUDA_SOURCES, ids=lambda p: str(p.relative_to(CSRC)))
def test_cuda_translation_units_include_no_cpu_flow(cu: Path):
    problems = []
    includes = _all_includes(cu)
    for header, by in sorted(includes.items()):
        if CPU_HEADERS.search(header) and header not in ALLOWED_CPU_HEADERS:
            problems.append(f"includes the CPU-only header {header} (via {', '.join(sorted(by))})")
    for path in [cu] + [CSRC / h for h in includes if (CSRC / h).is_file()]:
        rel = str(path.relative_to(CSRC))
        code = _code(path)
        for token in sorted({m.group(0) for m in CPU_THREADING.finditer(code)}):
            problems.append(f"{rel} holds CPU threading ({token!r})")
        if FLOW_FILE.search(rel):
            for token in RUNTIME_DEVICE_TESTS:
                if token in code:
                    problems.append(f"{rel}, a flow compiled for both backends, tests the device at run time "
                                    f"({token!r}): select CPU code by the backend type (if constexpr "
                                    f"(Backend::kIsCpu)) and keep it in a CPU-only header")
    assert not problems, f"{cu.relative_to(CSRC)}:\n  " + "\n  ".join(problems)


def test_cpu_only_headers_are_included_by_a_cpu_source():
    """Each CPU-only flow header (`ops/<family>/<family>_cpu.h`) is included by a .cpp file (it
    defines what the shared flow declares; no .cu file may include it, see above)."""
    cpu_headers = sorted(p for p in CSRC.glob("ops/*/*_cpu.h") if str(p.relative_to(CSRC)) not in ALLOWED_CPU_HEADERS)
    assert cpu_headers, "no CPU-only flow headers found"
    for h in cpu_headers:
        rel = str(h.relative_to(CSRC))
        users = [p for p in CSRC.glob("**/*.cpp") if rel in _all_includes(p)]
        assert users, f"{rel} is included by no .cpp file: its definitions are never compiled"
