"""Test helpers that choose how the kernels run: CPU threads, forced kernel paths
(`fastseg.testing.strategy`), the CPU kernel forms and the CPU loops' instruction set.

- threads: `single_thread`, `many_threads`, `TEST_THREADS`, `MAX_THREADS`.
- kernel paths: `strategy`, `KERNEL_FORMS` / `cpu_kernel_form` / `kernel_form_or_skip` (the
  `kernel_form` fixture), `CPU_ISAS` / `cpu_isa_params` / `cpu_isa` (the `cpu_isa` fixture:
  every instruction set of the CPU row loops).

Re-exported by helpers.py.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, List, Optional, Tuple

import pytest
import torch

import fastseg.testing

# ----------------------------------------------------------------------------- threads


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


# ----------------------------------------------------------------------------- kernel paths

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


# ----------------------------------------------------------------------------- CPU instruction sets

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
