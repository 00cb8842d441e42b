"""Benchmark harness: the Case/Variant registry, timing, correctness checks, device naming and
memory-bandwidth bookkeeping. Shared by the CLI (`python -m benchmarks`) and by pytest-benchmark
(`pytest benchmarks --benchmark-only`).

This module gathers under one name (`from benchmarks import harness`, `from ..harness import
Case, State, Variant, register`) what lives, by concern, in:

* registry.py: `State`, `Variant`, `Case`, `REGISTRY`, `register`, `load_cases`, `select_cases`;
* machine.py: fastseg's availability, device naming (`device_info`, `resolve_device`), the peak
  bandwidth table, the CPU's instruction set, the git commit, `environment`; `REPO_ROOT`,
  `DEFAULT_RESULTS_DIR`;
* timing.py: `Profile`, `PROFILES`, `time_variants`, `Stats`, `_sync` (how a sample is timed);
* runner.py: `make_callable`, `zero_grads`, `check_agreement`, `run_case`, `iter_case_results`
  and the `*Result` records.

Vocabulary
----------
* A **Case** is one named workload taken from a real network (e.g. `segnet_dec1`). Its `setup`
  builds the inputs once (seeded) and returns a `State`; its **variants** are the
  implementations being compared on that state: `fastseg` and one or more baselines (`torch`,
  `reference`, ...), plus optional *roofline* rows such as a bare zero-fill of the output.
* A **mode** is `fwd` (forward under `torch.no_grad()`, i.e. inference) or `fwd+bwd` (forward with
  autograd, then `out.backward(state.grad_out)`; the `.grad` of every leaf in `state.leaves` is
  set to None before each call so gradient accumulation costs nothing on either side).
* **bytes** is the memory traffic we charge the op with: every tensor the op reads or writes,
  counted once at its full size (inputs + outputs of the forward, plus grad_output, saved
  tensors and grad_input for the backward). Each case states its formula next to the shapes.
  `GB/s = bytes / median time` is therefore an *effective* bandwidth, comparable across
  implementations of the same interface.
* **ratio** = baseline median / fastseg median (> 1: fastseg is faster).

Timing
------
Every variant of a (case, mode) is timed in the same run, in interleaved rounds (one sample of
each variant per round), so slow drifts of the machine hit all of them alike; see timing.py.
"""
from __future__ import annotations

import dataclasses  # harness.dataclasses: benchmarks/__main__.py uses harness.dataclasses.asdict

from .machine import (DEFAULT_RESULTS_DIR, PEAK_BANDWIDTH_GBPS, REPO_ROOT, DeviceInfo, _load_average,
                      cpu_core_count, cpu_family_model, cpu_isa_info, cpu_isa_label, cpu_model_name, device_info,
                      environment, fastseg_status, fastseg_version, git_commit, peak_bandwidth_gbps, resolve_device,
                      slugify)
from .registry import MODES, REGISTRY, SIZES, Case, State, Variant, load_cases, register, select_cases
from .runner import (CaseResult, ModeResult, VariantResult, _compare, _outputs_of, _run_mode, _short_error,
                     check_agreement, iter_case_results, make_callable, run_case, run_for_check, zero_grads)
from .timing import PROFILES, Profile, Stats, _sync, _time_sample, time_variants

# Everything the single harness.py used to define, private names included (benchmarks/maskrcnn.py
# uses `harness._sync`, benchmarks/__main__.py `harness._load_average`).
__all__ = [
    "dataclasses",
    # registry
    "MODES", "SIZES", "State", "Variant", "Case", "REGISTRY", "register", "load_cases", "select_cases",
    # machine
    "REPO_ROOT", "DEFAULT_RESULTS_DIR", "fastseg_status", "fastseg_version", "PEAK_BANDWIDTH_GBPS",
    "peak_bandwidth_gbps", "cpu_model_name", "cpu_family_model", "cpu_isa_label", "cpu_core_count", "slugify",
    "DeviceInfo", "device_info", "resolve_device", "git_commit", "_load_average", "cpu_isa_info", "environment",
    # timing
    "Profile", "PROFILES", "_sync", "_time_sample", "Stats", "time_variants",
    # runner
    "zero_grads", "make_callable", "_outputs_of", "_compare", "run_for_check", "check_agreement",
    "VariantResult", "ModeResult", "CaseResult", "_short_error", "run_case", "_run_mode", "iter_case_results",
]
