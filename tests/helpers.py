"""Shared test helpers for every fastseg op family: `import helpers` (or `from helpers import
...`) gives all of them. They live, by concern, in:

- helpers_devices.py: availability and devices: `HAS_OPS`, `HAS_CUDA_KERNELS`, `HAS_TORCHVISION`,
  `devices()`, `DEVICES`, `device_params()` (the `device` fixture in conftest.py); skip markers
  `needs_ops`, `needs_torchvision`, `needs_cuda`; `TESTS_DIR`, `REPO_ROOT`.
- helpers_tensors.py: dtypes (`DTYPES`, `LOW_PRECISION`, `tol(dtype)`, `dtype_id`), shapes and
  layouts (`random_nchw`, `SHAPES`, `torch_gen`, `LAYOUTS`, `make_layout`, `assert_memory_format`),
  comparison (`assert_same`: bit-exact, NaN == NaN; `assert_close_tol`).
- helpers_kernels.py: threads (`single_thread`, `many_threads`), kernel paths (`strategy`,
  `KERNEL_FORMS` / `cpu_kernel_form`: the `kernel_form` fixture; `CPU_ISAS` / `cpu_isa`: the
  `cpu_isa` fixture, every instruction set of the CPU row loops).
- helpers_compile.py: PyTorch machinery: `run_opcheck`, `check_compile`, `check_export`,
  `graph_targets`.
- helpers_subprocess.py: crash-safe error checks: `raises_in_subprocess`, `BadCase`,
  `run_cases_in_subprocess`, `check_bad_cases`, `register_bad_cases` / `bad_case_results` (many
  bad-input cases in ONE fresh interpreter; a segfault, abort or hang fails the test instead of
  killing pytest).

These modules must import on every CI leg, including the CPU-only torch 2.13 leg without
torchvision and a source tree whose extension is not built.
"""
from __future__ import annotations

from helpers_compile import (OPCHECK_UTILS, _clone_args, _compare_outputs, _grads_of, _tree_tensors, check_compile,
                             check_export, graph_targets, run_opcheck)
from helpers_devices import (DEVICES, HAS_CUDA_KERNELS, HAS_OPS, HAS_TORCHVISION, REPO_ROOT, TESTS_DIR,
                             _has_torchvision, device_params, devices, needs_cuda, needs_ops, needs_torchvision)
from helpers_kernels import (CPU_ISA_SUPPORTED, CPU_ISAS, KERNEL_FORMS, MAX_THREADS, TEST_THREADS, _cpu_isa_supported,
                             cpu_isa, cpu_isa_params, cpu_kernel_form, kernel_form_or_skip, many_threads,
                             single_thread, strategy)
from helpers_subprocess import (_BAD_RESULTS, _BATCH_CHILD, _REGISTERED_BAD, _SINGLE_CHILD, CRASH, DEFAULT_EXC, HANG,
                                SUBPROCESS_TIMEOUT_S, BadCase, _build_cases, _child_env, _normalise_factories,
                                _run_child, assert_no_bad_case_failures, bad_case_failures, bad_case_results,
                                check_bad_cases, raises_in_subprocess, register_bad_cases, run_cases_in_subprocess)
from helpers_tensors import (_TOL, DTYPES, LAYOUTS, LOW_PRECISION, SHAPES, assert_close_tol, assert_memory_format,
                             assert_same, dtype_id, is_channels_last, make_layout, random_nchw, tol, torch_gen)

# Everything the single helpers.py used to define, private names included (test_cpu_isa.py uses
# `helpers._child_env`, others `helpers._tree_tensors`).
__all__ = [
    # helpers_devices
    "TESTS_DIR", "REPO_ROOT", "HAS_OPS", "HAS_CUDA_KERNELS", "_has_torchvision", "HAS_TORCHVISION", "needs_ops",
    "needs_torchvision", "needs_cuda", "devices", "DEVICES", "device_params",
    # helpers_tensors
    "DTYPES", "LOW_PRECISION", "_TOL", "tol", "dtype_id", "SHAPES", "random_nchw", "torch_gen", "LAYOUTS",
    "make_layout", "is_channels_last", "assert_memory_format", "assert_same", "assert_close_tol",
    # helpers_kernels
    "single_thread", "TEST_THREADS", "MAX_THREADS", "many_threads", "KERNEL_FORMS", "strategy", "cpu_kernel_form",
    "kernel_form_or_skip", "CPU_ISAS", "_cpu_isa_supported", "CPU_ISA_SUPPORTED", "cpu_isa_params", "cpu_isa",
    # helpers_compile
    "OPCHECK_UTILS", "run_opcheck", "_tree_tensors", "_clone_args", "_compare_outputs", "_grads_of",
    "check_compile", "check_export", "graph_targets",
    # helpers_subprocess
    "SUBPROCESS_TIMEOUT_S", "_child_env", "_run_child", "_SINGLE_CHILD", "raises_in_subprocess", "DEFAULT_EXC",
    "BadCase", "_BATCH_CHILD", "CRASH", "HANG", "_build_cases", "_normalise_factories", "run_cases_in_subprocess",
    "bad_case_failures", "assert_no_bad_case_failures", "check_bad_cases", "_REGISTERED_BAD", "_BAD_RESULTS",
    "register_bad_cases", "bad_case_results",
]
