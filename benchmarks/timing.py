"""Timing of benchmark variants: the profiles (`PROFILES`), one timed sample (`_time_sample`),
interleaved rounds (`time_variants`) and their statistics (`Stats`).

Every variant of a (case, mode) is timed in the same run, in interleaved rounds (one sample of
each variant per round), so slow drifts of the machine (frequency, other tenants) hit all of
them alike. A sample is `calls` back-to-back calls, with `calls` chosen so that a sample lasts at
least `Profile.min_sample_s`; the per-call time is sample / calls. On CPU a sample is timed with
`time.perf_counter`; on CUDA with a pair of `torch.cuda.Event`s, after warm-up and with
`torch.cuda.synchronize()` before each sample. Sampling stops once every variant has
`min_repeats` samples and the round loop has used its time budget, or at `max_repeats`.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Tuple

import torch

# ============================================================================ timing

@dataclass
class Profile:
    """How hard to time. `quick` also tells cases they may shrink (never segnet_dec1)."""
    name: str
    size: str
    warmup: int                 # calls before calibration (CPU); CUDA uses warmup_cuda
    warmup_cuda: int
    min_repeats: int
    max_repeats: int
    budget_s: float             # per variant: the rounds stop after n_variants * budget_s seconds
    min_sample_s: float         # a sample lasts at least this long (calls are batched)


PROFILES = {
    "quick": Profile("quick", "quick", warmup=1, warmup_cuda=5, min_repeats=5, max_repeats=25,
                     budget_s=0.25, min_sample_s=0.005),
    "full": Profile("full", "full", warmup=2, warmup_cuda=20, min_repeats=15, max_repeats=300,
                    budget_s=2.0, min_sample_s=0.01),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_sample(fn: Callable[[], Any], calls: int, device: torch.device) -> float:
    """Seconds per call, averaged over `calls` back-to-back calls."""
    if device.type == "cuda":
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(calls - 1):
            fn()
        keep = fn()
        end.record()
        end.synchronize()
        del keep
        return start.elapsed_time(end) / 1e3 / calls
    t0 = time.perf_counter()
    for _ in range(calls - 1):
        fn()
    keep = fn()          # the last result is freed after the clock stops
    t = time.perf_counter() - t0
    del keep
    return t / calls


@dataclass
class Stats:
    median_s: float
    iqr_s: float
    min_s: float
    max_s: float
    repeats: int
    calls_per_repeat: int
    samples_s: List[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: List[float], calls: int) -> "Stats":
        s = sorted(samples)
        if len(s) >= 2:
            q = statistics.quantiles(s, n=4, method="inclusive")
            iqr = q[2] - q[0]
        else:
            iqr = 0.0
        return cls(statistics.median(s), iqr, s[0], s[-1], len(s), calls, samples)


def time_variants(runners: Dict[str, Tuple[Callable[[], Any], Callable[[], None]]],
                  device: torch.device, profile: Profile) -> Dict[str, Stats]:
    """Times every runner (name -> (call, reset)) in interleaved rounds; `reset` runs untimed
    before each sample."""
    warmup = profile.warmup_cuda if device.type == "cuda" else profile.warmup
    calls: Dict[str, int] = {}
    for name, (fn, reset) in runners.items():
        est = math.inf
        for _ in range(max(1, warmup)):
            reset()
            est = min(est, _time_sample(fn, 1, device))
        calls[name] = max(1, min(10000, math.ceil(profile.min_sample_s / max(est, 1e-9))))
    samples: Dict[str, List[float]] = {name: [] for name in runners}
    deadline = time.perf_counter() + profile.budget_s * len(runners)
    for r in range(profile.max_repeats):
        for name, (fn, reset) in runners.items():
            reset()
            samples[name].append(_time_sample(fn, calls[name], device))
        if r + 1 >= profile.min_repeats and time.perf_counter() >= deadline:
            break
    return {name: Stats.of(samples[name], calls[name]) for name in runners}
