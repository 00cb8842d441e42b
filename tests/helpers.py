"""Shared test helpers for every fastseg op family.

What lives here (each op family's test file reuses all of it):

- devices: `devices()`, `DEVICES`, `device_params()`; the `device` fixture in conftest.py.
- dtypes: `DTYPES`, `LOW_PRECISION`, `tol(dtype)`.
- shapes and layouts: `random_nchw`, `SHAPES`, `LAYOUTS`, `make_layout`, `assert_memory_format`.
- kernel paths: `strategy`, `KERNEL_FORMS` / `cpu_kernel_form` (the `kernel_form` fixture),
  `CPU_ISAS` / `cpu_isa` (the `cpu_isa` fixture: every instruction set of the CPU row loops).
- comparison: `assert_same` (bit-exact, NaN == NaN), `assert_close_tol`.
- PyTorch machinery: `run_opcheck`, `check_compile`, `check_export`.
- crash-safe error checks: `raises_in_subprocess`, `BadCase`, `run_cases_in_subprocess`,
  `check_bad_cases` (many bad-input cases in ONE fresh interpreter; a segfault, abort or hang
  fails the test instead of killing pytest).
- skip markers: `needs_ops`, `needs_torchvision`, `needs_cuda`.

This module must import on every CI leg, including the CPU-only torch 2.13 leg without
torchvision and a source tree whose extension is not built.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import random
import re
import subprocess
import sys
import textwrap
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import pytest
import torch

import fastseg
import fastseg.testing

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)

# ----------------------------------------------------------------------------- availability

HAS_OPS: bool = bool(fastseg.HAS_OPS)
HAS_CUDA_KERNELS: bool = bool(fastseg.HAS_CUDA_KERNELS)


def _has_torchvision() -> bool:
    try:
        importlib.import_module("torchvision")
    except Exception:  # not installed, or built against another torch
        return False
    return True


HAS_TORCHVISION: bool = _has_torchvision()

needs_ops = pytest.mark.skipif(
    not HAS_OPS, reason=f"fastseg._C is not built ({fastseg.load_error}); tests/test_build.py fails in CI"
)
needs_torchvision = pytest.mark.skipif(not HAS_TORCHVISION, reason="torchvision is not importable")
needs_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and HAS_CUDA_KERNELS), reason="needs a GPU and fastseg's CUDA kernels"
)


def devices() -> List[str]:
    """cpu, plus cuda when a GPU is present and the extension has CUDA kernels."""
    out = ["cpu"]
    if torch.cuda.is_available() and HAS_CUDA_KERNELS:
        out.append("cuda")
    return out


DEVICES: List[str] = devices()


def device_params() -> List[Any]:
    """For `@pytest.mark.parametrize("device", device_params())`."""
    return [pytest.param(d, id=d) for d in DEVICES]


# ----------------------------------------------------------------------------- dtypes

DTYPES: Tuple[torch.dtype, ...] = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
LOW_PRECISION: Tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)

_TOL = {
    torch.float64: dict(atol=1e-10, rtol=1e-7),
    torch.float32: dict(atol=1e-5, rtol=1.3e-6),
    torch.float16: dict(atol=1e-3, rtol=1e-3),
    torch.bfloat16: dict(atol=1e-2, rtol=1.6e-2),
}


def tol(dtype: torch.dtype) -> Dict[str, float]:
    """Tolerances for values computed in `dtype` (compared against a float64 computation cast back)."""
    return dict(_TOL[dtype])


def dtype_id(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


# ----------------------------------------------------------------------------- shapes and layouts

#: Hand-picked NCHW shapes: odd sizes, 1x1 planes, single channel, empty batch.
SHAPES: Tuple[Tuple[int, int, int, int], ...] = (
    (2, 3, 7, 9),
    (1, 1, 1, 1),
    (1, 2, 1, 5),
    (3, 1, 6, 1),
    (0, 3, 5, 5),
    (2, 4, 8, 8),
    (1, 5, 11, 4),
)


def random_nchw(rng: random.Random, *, min_hw: int = 1, max_hw: int = 9, max_n: int = 3, max_c: int = 4,
                empty_batch_prob: float = 0.05) -> Tuple[int, int, int, int]:
    """A small random NCHW shape (odd sizes, 1x1 planes, occasionally N=0)."""
    n = 0 if rng.random() < empty_batch_prob else rng.randint(1, max_n)
    c = rng.randint(1, max_c)
    return n, c, rng.randint(min_hw, max_hw), rng.randint(min_hw, max_hw)


def torch_gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


LAYOUTS: Tuple[str, ...] = ("contiguous", "noncontiguous", "channels_last")


def make_layout(t: torch.Tensor, kind: str) -> torch.Tensor:
    """The same values as `t` (detached) in the layout `kind`.

    - "contiguous": row-major.
    - "noncontiguous": a strided view into a buffer twice as wide (stride 2 in the last dim, and
      a transposed (C, N) order of the first two dims for 4-D): neither contiguous nor
      channels-last.
    - "channels_last": `torch.channels_last` strides (4-D only).
    """
    t = t.detach()
    if kind == "contiguous":
        return t.contiguous().clone()
    if kind == "channels_last":
        if t.dim() != 4:
            raise ValueError("channels_last needs a 4-D tensor")
        return t.clone().contiguous(memory_format=torch.channels_last)
    if kind == "noncontiguous":
        shape = list(t.shape)
        if t.dim() == 4:
            # storage order (C, N, H, 2W+1); viewed back as (N, C, H, W) with stride 2 in W
            big = torch.zeros(shape[1], shape[0], shape[2], 2 * shape[3] + 1, dtype=t.dtype, device=t.device)
            big = big.transpose(0, 1)
        else:
            big = torch.zeros(*shape[:-1], 2 * shape[-1] + 1, dtype=t.dtype, device=t.device)
        view = big[..., 1::2]
        view.copy_(t)
        assert view.shape == t.shape
        return view
    raise ValueError(f"unknown layout {kind!r}")


def is_channels_last(t: torch.Tensor) -> bool:
    """True when `t` is channels-last and that is distinguishable from contiguous."""
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def assert_memory_format(out: torch.Tensor, inp: torch.Tensor) -> None:
    """Channels-last in -> channels-last out; a contiguous input gives a contiguous output; any
    input gives a dense (contiguous or channels-last) output."""
    if out.dim() != 4:
        assert out.is_contiguous(), f"3-D output should be contiguous, strides {out.stride()}"
        return
    if is_channels_last(inp):
        assert out.is_contiguous(memory_format=torch.channels_last), (
            f"channels-last input gave strides {out.stride()} for shape {tuple(out.shape)}")
    elif inp.is_contiguous():
        assert out.is_contiguous(), f"contiguous input gave strides {out.stride()} for shape {tuple(out.shape)}"
    else:
        assert out.is_contiguous() or out.is_contiguous(memory_format=torch.channels_last), (
            f"output is not dense: strides {out.stride()} for shape {tuple(out.shape)}")


# ----------------------------------------------------------------------------- comparison

def assert_same(actual: torch.Tensor, expected: torch.Tensor, msg: str = "") -> None:
    """Bit-exact comparison (shape, dtype, device and values; NaN equals NaN)."""
    torch.testing.assert_close(actual, expected, atol=0, rtol=0, equal_nan=True,
                               msg=(lambda m: f"{msg}\n{m}") if msg else None)


def assert_close_tol(actual: torch.Tensor, expected: torch.Tensor, dtype: Optional[torch.dtype] = None,
                     msg: str = "") -> None:
    """Comparison within `tol(dtype)` (dtype defaults to actual's)."""
    torch.testing.assert_close(actual, expected, equal_nan=True, **tol(dtype or actual.dtype),
                               msg=(lambda m: f"{msg}\n{m}") if msg else None)


@contextlib.contextmanager
def single_thread():
    """Runs PyTorch CPU kernels on one thread. PyTorch's CPU max_unpool2d splits each plane's
    input positions across threads (`parallel_for(0, numel, 0, ...)`), so with duplicate indices
    its result depends on thread timing; on one thread it writes in input order and the larger
    input position wins, which is the result fastseg promises."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


#: Threads for PyTorch CPU kernels during the tests (conftest.py applies it). One thread by
#: default: on a small, busy CI machine OpenMP's thread hand-off costs ~15 ms per tiny op, which
#: dominates the suite. Tests of fastseg's parallel CPU paths use `many_threads()`.
TEST_THREADS = int(os.environ.get("FASTSEG_TEST_THREADS", "1"))
MAX_THREADS = max(2, os.cpu_count() or 2)


@contextlib.contextmanager
def many_threads(n: int = MAX_THREADS):
    """Runs CPU kernels on `n` (>= 2) threads, so that at::parallel_for really splits work."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


#: The CPU backend has two forms of some kernels: a whole-row form (NCHW outputs) and the
#: per-element form that the CUDA backend runs. "element" makes the CPU use the per-element
#: form everywhere, so CPU tests also check the GPU's per-element code.
KERNEL_FORMS: Tuple[str, ...] = ("row", "element")


def strategy(**settings):
    """fastseg.testing.strategy(**settings) (forces kernel paths, restores them on exit), or a
    skip where this build has no testing switches."""
    try:
        return fastseg.testing.strategy(**settings)
    except RuntimeError as e:
        pytest.skip(str(e))


def cpu_kernel_form(form: str):
    """Selects the CPU kernel form ("row": the default; "element": as on CUDA)."""
    assert form in KERNEL_FORMS, form
    return strategy(cpu_row_kernels=form == "row")


def kernel_form_or_skip(device: str, form: str):
    """The context for (device, form); the row form exists only on the CPU."""
    if device != "cpu" and form == "row":
        pytest.skip("the row kernel form is CPU-only")
    return cpu_kernel_form(form) if device == "cpu" else contextlib.nullcontext()


#: The instruction sets the CPU loops compiled in several forms run with (fastseg.testing's
#: cpu_isa setting; csrc/common/cpu_isa.h), best first.
CPU_ISAS: Tuple[str, ...] = ("avx512", "avx2", "baseline")


def _cpu_isa_supported() -> Optional[str]:
    try:
        return fastseg.testing.cpu_isa_supported()
    except RuntimeError:  # no extension, or one without the switch: the tests skip in strategy()
        return None


#: What this CPU supports ("avx512", "avx2", "baseline"; None without the switch).
CPU_ISA_SUPPORTED: Optional[str] = _cpu_isa_supported()


def cpu_isa_params() -> List[Any]:
    """CPU_ISAS as pytest params, each skipped (with the reason) where this CPU lacks it: a cap
    above what the CPU has would only run a lower form again."""
    levels = fastseg.testing.CPU_ISA_LEVELS
    params = []
    for isa in CPU_ISAS:
        lacks = CPU_ISA_SUPPORTED is not None and levels.index(isa) > levels.index(CPU_ISA_SUPPORTED)
        params.append(pytest.param(isa, id=isa, marks=pytest.mark.skipif(
            lacks, reason=f"this CPU lacks {isa} (it supports {CPU_ISA_SUPPORTED})")))
    return params


def cpu_isa(isa: str):
    """Caps the CPU loops' instruction set at `isa` (one of CPU_ISAS), checking that it is the one
    in effect (the params of cpu_isa_params() skip the ones this CPU lacks)."""
    assert isa in CPU_ISAS, isa
    ctx = strategy(cpu_isa=isa)

    @contextlib.contextmanager
    def checked():
        with ctx:
            assert fastseg.testing.cpu_isa_in_effect() == isa, (isa, CPU_ISA_SUPPORTED)
            yield

    return checked()


# ----------------------------------------------------------------------------- opcheck / compile / export

OPCHECK_UTILS: Tuple[str, ...] = ("test_schema", "test_autograd_registration", "test_faketensor",
                                  "test_aot_dispatch_dynamic")


def run_opcheck(op, args: Sequence[Any], kwargs: Optional[Dict[str, Any]] = None,
                test_utils: Sequence[str] = OPCHECK_UTILS) -> Dict[str, str]:
    """`torch.library.opcheck` (public API); fails the test on any unsuccessful check."""
    result = torch.library.opcheck(op, tuple(args), kwargs or {}, test_utils=tuple(test_utils),
                                   raise_exception=True)
    bad = {k: v for k, v in result.items() if v != "SUCCESS"}
    assert not bad, f"opcheck failed for {op}: {bad}"
    return result


def _tree_tensors(x) -> List[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tree_tensors(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _tree_tensors(v)]
    return []


def _clone_args(args):
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            c = a.detach().clone(memory_format=torch.preserve_format)
            c.requires_grad_(a.requires_grad)
            out.append(c)
        else:
            out.append(a)
    return out


def _compare_outputs(actual, expected, exact: bool, what: str) -> None:
    a, e = _tree_tensors(actual), _tree_tensors(expected)
    assert len(a) == len(e), f"{what}: {len(a)} outputs vs {len(e)}"
    for i, (x, y) in enumerate(zip(a, e)):
        if exact:
            assert_same(x.detach(), y.detach(), f"{what}: output {i}")
        else:
            torch.testing.assert_close(x.detach(), y.detach(), equal_nan=True, **tol(y.dtype) if y.is_floating_point()
                                       else dict(atol=0, rtol=0), msg=lambda m: f"{what}: output {i}\n{m}")


def _grads_of(fn, args, outputs_seed: int = 0):
    """Runs fn on clones of args, backpropagates a fixed random cotangent through every floating
    output, returns (outputs, grads of the args that require grad)."""
    args = _clone_args(args)
    out = fn(*args)
    outs = [t for t in _tree_tensors(out) if t.is_floating_point() and t.requires_grad]
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    if not outs or not leaves:
        return out, []
    g = torch_gen(outputs_seed, "cpu")
    cots = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype).to(o.device) for o in outs]
    grads = torch.autograd.grad(outs, leaves, cots, allow_unused=True)
    return out, [gr if gr is not None else torch.zeros_like(l) for gr, l in zip(grads, leaves)]


def check_compile(fn: Callable, *args, backend: str = "aot_eager", dynamic: Optional[bool] = False,
                  exact: bool = False, check_grad: bool = True):
    """`torch.compile(fn, fullgraph=True)` must trace without graph breaks and match eager (outputs,
    and gradients of the args that require grad). Returns the compiled outputs.

    backend="inductor" runs the real compiler (slow on CPU: C++ codegen, tens of seconds);
    "aot_eager" traces through dynamo + AOTAutograd with fake tensors, which is what catches
    missing fake kernels and graph breaks.
    """
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend=backend, dynamic=dynamic)
    if check_grad:
        exp, exp_g = _grads_of(fn, args)
        act, act_g = _grads_of(compiled, args)
        _compare_outputs(act, exp, exact, "torch.compile forward")
        _compare_outputs(act_g, exp_g, exact, "torch.compile backward")
    else:
        with torch.no_grad():
            exp = fn(*_clone_args(args))
            act = compiled(*_clone_args(args))
        _compare_outputs(act, exp, exact, "torch.compile forward")
    return act


def check_export(module: torch.nn.Module, args: Tuple[Any, ...], dynamic_shapes=None, exact: bool = True,
                 more_args: Iterable[Tuple[Any, ...]] = ()):
    """`torch.export.export(module, args)`; `ep.module()(*a)` must equal `module(*a)` for `args` and
    every tuple in `more_args` (e.g. another batch size when `dynamic_shapes` allows it).
    Returns the ExportedProgram."""
    ep = torch.export.export(module, tuple(args), dynamic_shapes=dynamic_shapes)
    runnable = ep.module()
    for a in (tuple(args), *more_args):
        with torch.no_grad():
            exp = module(*a)
            act = runnable(*a)
        _compare_outputs(act, exp, exact, "torch.export")
    return ep


def graph_targets(ep) -> List[str]:
    """Names of the call_function targets of an ExportedProgram's graph."""
    return [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]


# ----------------------------------------------------------------------------- subprocess harness

SUBPROCESS_TIMEOUT_S = 60.0


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    parts = [REPO_ROOT, TESTS_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def _run_child(code: str, timeout: float) -> Tuple[Optional[int], str, str]:
    """(returncode or None when it hung and was killed, stdout, stderr)."""
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=_child_env(),
                              capture_output=True, text=True, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return None, out, err


_SINGLE_CHILD = r"""
import json, sys
res = {"raised": None, "message": None}
try:
    exec(compile(__CODE__, "<case>", "exec"), {"__name__": "__case__"})
except BaseException as e:
    res = {"raised": type(e).__name__, "message": str(e)}
sys.stdout.write("\n@@RESULT@@" + json.dumps(res) + "\n")
sys.stdout.flush()
"""


def raises_in_subprocess(code_str: str, exc_type_name, match: str, timeout: float = SUBPROCESS_TIMEOUT_S) -> str:
    """Runs `code_str` in a fresh interpreter; it must raise `exc_type_name` (a name or a tuple of
    names, e.g. "RuntimeError") with a message matching the regex `match`. A crash (segfault,
    abort), a hang (> timeout) or finishing without the exception fails the test. Returns the
    message."""
    names = (exc_type_name,) if isinstance(exc_type_name, str) else tuple(exc_type_name)
    code = _SINGLE_CHILD.replace("__CODE__", repr(textwrap.dedent(code_str)))
    rc, out, err = _run_child(code, timeout)
    marker = [l for l in out.splitlines() if l.startswith("@@RESULT@@")]
    if rc is None:
        pytest.fail(f"subprocess hung (> {timeout} s) running:\n{code_str}\n--- stderr ---\n{err[-4000:]}")
    if rc != 0 or not marker:
        pytest.fail(f"subprocess died (returncode {rc}) running:\n{code_str}\n"
                    f"--- stdout ---\n{out[-4000:]}\n--- stderr ---\n{err[-4000:]}")
    res = json.loads(marker[-1][len("@@RESULT@@"):])
    if res["raised"] is None:
        pytest.fail(f"expected {names} matching {match!r}; nothing was raised by:\n{code_str}")
    assert res["raised"] in names, (
        f"expected {names} matching {match!r}, got {res['raised']}: {res['message']}\ncode:\n{code_str}")
    assert re.search(match, res["message"]), (
        f"{res['raised']} message {res['message']!r} does not match {match!r}\ncode:\n{code_str}")
    return res["message"]


DEFAULT_EXC = ("RuntimeError", "ValueError", "TypeError")


@dataclasses.dataclass
class BadCase:
    """One bad-input case for `run_cases_in_subprocess`.

    fn: a zero-argument callable that must raise one of `exc` with a message matching the regex
        `match` (re.search).
    allow_result: optional `callable(result) -> bool`: when given, returning normally is also
        accepted if it returns True (for inputs where both raising and computing the right answer
        are acceptable).
    """
    id: str
    fn: Callable[[], Any]
    match: str
    exc: Tuple[str, ...] = DEFAULT_EXC
    allow_result: Optional[Callable[[Any], bool]] = None


_BATCH_CHILD = r"""
import importlib, json, sys
FACTORIES = __FACTORIES__
START = __START__
def emit(d):
    sys.stdout.write("@@CASE@@" + json.dumps(d) + "\n")
    sys.stdout.flush()
pos = 0
for group, (factory, kwargs) in enumerate(FACTORIES):
    module, func = factory.split(":")
    cases = list(getattr(importlib.import_module(module), func)(**kwargs))
    for c in cases:
        if pos >= START:
            sys.stderr.write("@@START@@ %d\n" % pos)
            sys.stderr.flush()
            rec = {"pos": pos, "id": c.id, "raised": None, "message": None, "allowed_result": None}
            try:
                result = c.fn()
                if c.allow_result is not None:
                    try:
                        rec["allowed_result"] = bool(c.allow_result(result))
                    except BaseException as e:
                        rec["allowed_result"] = False
                        rec["message"] = "allow_result raised " + type(e).__name__ + ": " + str(e)
            except BaseException as e:
                rec["raised"] = type(e).__name__
                rec["message"] = str(e)
            emit(rec)
        pos += 1
emit({"done": pos})
"""

CRASH = "<crashed>"
HANG = "<hung>"


def _build_cases(factories) -> List[Tuple[int, BadCase]]:
    out = []
    for group, (factory, kwargs) in enumerate(factories):
        module, func = factory.split(":")
        for c in getattr(importlib.import_module(module), func)(**kwargs):
            out.append((group, c))
    return out


def _normalise_factories(factories) -> List[Tuple[str, Dict[str, Any]]]:
    if isinstance(factories, str):
        return [(factories, {})]
    return [(f, dict(k or {})) for f, k in factories]


def run_cases_in_subprocess(factories, timeout: float = SUBPROCESS_TIMEOUT_S, max_crashes: int = 10):
    """Runs every `BadCase` built by `factories` in a fresh interpreter (one for all of them:
    importing torch costs seconds).

    factories: "module:function" or a list of ("module:function", kwargs) pairs; modules are
    importable from tests/, kwargs JSON-serialisable. The factories are run both here (for the
    expectations) and in the child (which calls the cases).

    When the child dies (segfault, abort) or hangs, the running case is recorded as raised
    "<crashed>" / "<hung>" with the tail of stderr, and a new child carries on after it (at most
    `max_crashes` times). Returns [(group index, BadCase, record)] in order, where record is
    {id, raised, message, allowed_result}.
    """
    factories = _normalise_factories(factories)
    cases = _build_cases(factories)
    records: Dict[int, Dict[str, Any]] = {}
    start, crashes = 0, 0
    while start < len(cases):
        code = (_BATCH_CHILD.replace("__FACTORIES__", repr([list(f) for f in factories]))
                .replace("__START__", str(start)))
        rc, out, err = _run_child(code, timeout)
        done = False
        for line in out.splitlines():
            if line.startswith("@@CASE@@"):
                rec = json.loads(line[len("@@CASE@@"):])
                if "done" in rec:
                    done = True
                    assert rec["done"] == len(cases), (
                        f"the child built {rec['done']} cases, this process {len(cases)}: "
                        "the factories are not deterministic")
                else:
                    records[rec["pos"]] = rec
        if rc == 0 and done:
            break
        started = [int(l.split()[1]) for l in err.splitlines() if l.startswith("@@START@@ ")]
        if not started or started[-1] in records:
            pytest.fail(f"case subprocess died outside any case (returncode {rc})\n--- stderr ---\n{err[-6000:]}")
        bad = started[-1]
        tail = "\n".join(l for l in err.splitlines() if not l.startswith("@@START@@"))[-3000:]
        records[bad] = {"pos": bad, "id": cases[bad][1].id, "raised": HANG if rc is None else CRASH,
                        "message": f"returncode {rc}; stderr tail:\n{tail}", "allowed_result": None}
        crashes += 1
        if crashes >= max_crashes:
            break
        start = bad + 1
    return [(g, c, records.get(i, {"id": c.id, "raised": "<not run>", "message": "too many crashes",
                                    "allowed_result": None}))
            for i, (g, c) in enumerate(cases)]


def bad_case_failures(results) -> List[str]:
    """Readable failures of `run_cases_in_subprocess` results: a case fails unless it raised one
    of its exception types with a message matching its regex (or returned an accepted result)."""
    failures = []
    for _, c, r in results:
        raised, message = r["raised"], r["message"] or ""
        if raised in (CRASH, HANG, "<not run>"):
            failures.append(f"{c.id}: {raised.strip('<>').upper()} ({message})")
        elif raised is None:
            if c.allow_result is not None and r["allowed_result"]:
                continue
            why = "returned normally" if c.allow_result is None else (
                f"returned a result that is not acceptable ({message or 'wrong values'})")
            failures.append(f"{c.id}: {why}; expected {c.exc} matching {c.match!r}")
        elif raised not in c.exc:
            failures.append(f"{c.id}: raised {raised} ({message[:300]!r}); expected one of {c.exc}")
        elif not re.search(c.match, message):
            failures.append(f"{c.id}: {raised} message {message[:300]!r} does not match {c.match!r}")
    return failures


def assert_no_bad_case_failures(results, what: str = "bad-input cases") -> None:
    failures = bad_case_failures(results)
    assert not failures, f"{len(failures)} of {len(results)} {what} failed:\n" + "\n".join(failures[:60])


def check_bad_cases(factories, *, min_cases: int = 1, timeout: float = SUBPROCESS_TIMEOUT_S) -> int:
    """`run_cases_in_subprocess` + verdict (every case raises as expected). Returns the count."""
    results = run_cases_in_subprocess(factories, timeout)
    assert len(results) >= min_cases, f"{factories} built only {len(results)} cases (< {min_cases})"
    assert_no_bad_case_failures(results)
    return len(results)


# ----------------------------------------------------------------------------- shared bad-case runs

_REGISTERED_BAD: Dict[str, Tuple[str, Dict[str, Any]]] = {}
_BAD_RESULTS: Dict[str, Dict[str, list]] = {}


def register_bad_cases(name: str, factory: str, **kwargs) -> None:
    """Registers a bad-case factory ("module:function"; it also gets `device=`) under `name`.
    Test modules register at import, so that `bad_case_results` can run every registered
    factory of the session in ONE subprocess per device (each fresh interpreter pays seconds to
    import torch)."""
    _REGISTERED_BAD[name] = (factory, dict(kwargs))


def bad_case_results(name: str, device: str, timeout: float = 180.0):
    """Results (as `run_cases_in_subprocess` returns them) of the registered factory `name` on
    `device`; the first call runs all registered factories not yet run for that device."""
    done = _BAD_RESULTS.setdefault(device, {})
    if name not in done:
        names = [n for n in _REGISTERED_BAD if n not in done]
        assert name in names, f"bad-case factory {name!r} is not registered"
        factories = [(_REGISTERED_BAD[n][0], dict(_REGISTERED_BAD[n][1], device=device)) for n in names]
        results = run_cases_in_subprocess(factories, timeout)
        for n in names:
            done[n] = []
        for group, case, rec in results:
            done[names[group]].append((group, case, rec))
    return done[name]
