"""Crash-safe error checks: bad inputs run in a fresh interpreter, so that a segfault, abort or
hang fails the test instead of killing pytest.

- `raises_in_subprocess`: one snippet must raise an exception whose message matches a regex.
- `BadCase`, `run_cases_in_subprocess`, `bad_case_failures`, `assert_no_bad_case_failures`,
  `check_bad_cases`: many bad-input cases in ONE fresh interpreter (importing torch costs seconds).
- `register_bad_cases` / `bad_case_results`: every test module's factories of a session run in
  one subprocess per device.

Re-exported by helpers.py.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from helpers_devices import REPO_ROOT, TESTS_DIR

# ----------------------------------------------------------------------------- subprocess harness

SUBPROCESS_TIMEOUT_S = 60.0


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    parts = [REPO_ROOT, TESTS_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def stdout_words_with_env(code: str, name: str, value: Optional[str], timeout: float = 120.0) -> List[str]:
    """Runs `code` in a child Python with the environment variable `name` set to `value` (None:
    unset); asserts it exits 0 and returns its stdout split into words."""
    env = _child_env()
    env.pop(name, None)
    if value is not None:
        env[name] = value
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


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
