"""Running benchmark cases: one variant's callable (`make_callable`), the agreement check of
fastseg against the baselines (`check_agreement`), and a whole case in both modes (`run_case`,
`iter_case_results`) into `CaseResult`s."""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from .machine import fastseg_status
from .registry import Case, State, Variant
from .timing import Profile, Stats, _sync, time_variants

# ============================================================================ running one variant

def zero_grads(state: State) -> None:
    for t in getattr(state, "leaves", ()):
        t.grad = None


def make_callable(case: Case, variant: Variant, state: State, mode: str) -> Callable[[], Any]:
    """A zero-argument callable running one forward (mode fwd) or forward+backward call."""
    fn = variant.fn
    backward = case.backward or (lambda s, out: out.backward(s.grad_out))
    if mode == "fwd":
        def run_fwd():
            with torch.no_grad():
                return fn(state)
        return run_fwd
    if mode != "fwd+bwd":
        raise ValueError(f"unknown mode {mode!r}")

    def run_fwd_bwd():
        zero_grads(state)
        out = fn(state)
        backward(state, out)
        return out
    return run_fwd_bwd


def _outputs_of(out) -> List[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for t in out if isinstance(t, torch.Tensor)]


def _compare(a: torch.Tensor, b: torch.Tensor, what: str, atol: float, rtol: float) -> Optional[str]:
    if a.shape != b.shape:
        return f"{what}: shape {tuple(a.shape)} != {tuple(b.shape)}"
    if a.dtype != b.dtype:
        return f"{what}: dtype {a.dtype} != {b.dtype}"
    if torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True):
        return None
    if a.is_floating_point():
        diff = (a.double() - b.double()).abs().nan_to_num(nan=math.inf)
        bad = (diff > atol + rtol * b.double().abs()).sum().item()
        return f"{what}: {bad} of {a.numel()} elements differ (max abs diff {diff.max().item():.3g})"
    return f"{what}: {(a != b).sum().item()} of {a.numel()} elements differ"


def run_for_check(case: Case, variant: Variant, state: State, mode: str) -> List[Tuple[str, torch.Tensor]]:
    """Outputs (and, for fwd+bwd, leaf gradients) of one call, detached copies."""
    out = make_callable(case, variant, state, mode)()
    results = [(f"output[{i}]", t.detach().clone()) for i, t in enumerate(_outputs_of(out))]
    if mode == "fwd+bwd":
        for i, leaf in enumerate(getattr(state, "leaves", ())):
            g = leaf.grad
            results.append((f"grad[{i}]", None if g is None else g.detach().clone()))
        zero_grads(state)
    del out
    return results


def check_agreement(case: Case, state: State, mode: str, fastseg_variant: Variant,
                    baselines: Sequence[Variant]) -> Optional[str]:
    """None if fastseg agrees with every baseline, else a message describing the first mismatch."""
    ref = run_for_check(case, fastseg_variant, state, mode)
    for base in baselines:
        other = run_for_check(case, base, state, mode)
        if len(ref) != len(other):
            return f"vs {base.name}: {len(ref)} results != {len(other)}"
        for (what, a), (_, b) in zip(ref, other):
            if a is None or b is None:
                if (a is None) != (b is None):
                    return f"vs {base.name}: {what} is None on one side only"
                continue
            msg = _compare(a, b, what, case.atol, case.rtol)
            if msg:
                return f"vs {base.name}: {msg}"
        del other
    return None


# ============================================================================ running a case

@dataclass
class VariantResult:
    name: str
    kind: str
    status: str                       # "ok" | "skipped" | "error" | "failed"
    message: str = ""
    description: str = ""
    median_ms: Optional[float] = None
    iqr_ms: Optional[float] = None
    min_ms: Optional[float] = None
    max_ms: Optional[float] = None
    repeats: Optional[int] = None
    calls_per_repeat: Optional[int] = None
    bytes: Optional[int] = None
    gbps: Optional[float] = None
    pct_peak: Optional[float] = None
    ratio: Optional[float] = None     # this variant's median / fastseg's median (baselines, rooflines)
    samples_ms: Optional[List[float]] = None


@dataclass
class ModeResult:
    mode: str
    status: str                       # "ok" | "FAILED" | "no fastseg" | "error"
    message: str = ""
    variants: List[VariantResult] = field(default_factory=list)


@dataclass
class CaseResult:
    name: str
    family: str
    description: str
    shapes: Dict[str, Any]
    notes: Dict[str, Any]
    modes: List[ModeResult] = field(default_factory=list)
    status: str = "ok"
    message: str = ""
    setup_s: float = 0.0


def _short_error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) < 300 else text[:297] + "..."


def run_case(case: Case, device: torch.device, profile: Profile,
             peak_gbps: Optional[float] = None) -> CaseResult:
    """Sets the case up once, checks fastseg against the baselines, times all variants in both
    modes. Never raises for a failing variant: the failure is recorded in the result."""
    t0 = time.perf_counter()
    try:
        torch.manual_seed(0)
        state = case.setup(device, profile.size)
        _sync(device)
    except Exception as e:
        return CaseResult(case.name, case.family, case.description, {}, {}, status="error",
                          message=f"setup failed: {_short_error(e)}")
    result = CaseResult(case.name, case.family, case.description, dict(getattr(state, "shapes", {})),
                        dict(getattr(state, "notes", {})), setup_s=time.perf_counter() - t0)
    usable, reason = fastseg_status(device)
    for mode in case.modes:
        result.modes.append(_run_mode(case, state, mode, device, profile, peak_gbps, usable, reason))
        zero_grads(state)
    statuses = {m.status for m in result.modes}
    result.status = "FAILED" if "FAILED" in statuses else "error" if "error" in statuses else \
        "no fastseg" if "no fastseg" in statuses else "ok"
    del state
    return result


def _run_mode(case: Case, state: State, mode: str, device: torch.device, profile: Profile,
              peak_gbps: Optional[float], fastseg_usable: bool, fastseg_reason: str) -> ModeResult:
    variants = case.variants_for(mode, device.type)
    res = ModeResult(mode, "ok")
    vres: Dict[str, VariantResult] = {v.name: VariantResult(v.name, v.kind, "ok", description=v.description)
                                     for v in variants}
    res.variants = list(vres.values())
    fs = next((v for v in variants if v.kind == "fastseg"), None)
    baselines = [v for v in variants if v.kind == "baseline" and v.checked]
    to_time = list(variants)

    if fs is not None and not fastseg_usable:
        vres[fs.name].status, vres[fs.name].message = "skipped", fastseg_reason
        res.status, res.message = "no fastseg", fastseg_reason
        to_time.remove(fs)
    elif fs is not None:
        try:
            mismatch = check_agreement(case, state, mode, fs, baselines)
        except Exception as e:
            mismatch = None
            res.status, res.message = "error", f"check raised {_short_error(e)}"
            vres[fs.name].status, vres[fs.name].message = "error", res.message
            to_time.remove(fs)
        if mismatch:
            res.status, res.message = "FAILED", f"fastseg disagrees {mismatch}"
            vres[fs.name].status, vres[fs.name].message = "failed", res.message
            to_time.remove(fs)
        zero_grads(state)

    runners = {}
    for v in to_time:
        runners[v.name] = (make_callable(case, v, state, mode), lambda: zero_grads(state))
    if case.min_repeats is not None:
        profile = dataclasses.replace(profile, min_repeats=min(profile.min_repeats, case.min_repeats))
    stats: Dict[str, Stats] = {}
    try:
        stats = time_variants(runners, device, profile)
    except Exception as e:
        # time the variants one by one to find which one raises
        for name, runner in runners.items():
            try:
                stats.update(time_variants({name: runner}, device, profile))
            except Exception as e1:
                vres[name].status, vres[name].message = "error", _short_error(e1)
                if res.status == "ok":
                    res.status, res.message = "error", f"{name}: {_short_error(e1)}"
        if not any(r.status == "error" for r in vres.values()):  # pragma: no cover - flaky failure
            res.status, res.message = "error", _short_error(e)
    zero_grads(state)

    for name, st in stats.items():
        r = vres[name]
        r.median_ms, r.iqr_ms, r.min_ms, r.max_ms = (st.median_s * 1e3, st.iqr_s * 1e3,
                                                     st.min_s * 1e3, st.max_s * 1e3)
        r.repeats, r.calls_per_repeat = st.repeats, st.calls_per_repeat
        r.samples_ms = [round(t * 1e3, 6) for t in st.samples_s]
        try:
            r.bytes = int(case.bytes(state, mode, name))
        except Exception as e:  # a bytes formula must not kill the timing
            r.message = f"bytes: {_short_error(e)}"
        if r.bytes is not None and st.median_s > 0:
            r.gbps = r.bytes / st.median_s / 1e9
            if peak_gbps:
                r.pct_peak = 100.0 * r.gbps / peak_gbps
    if fs is not None and fs.name in stats:
        fmed = stats[fs.name].median_s
        for name, st in stats.items():
            vres[name].ratio = st.median_s / fmed if fmed > 0 else None
    return res


def iter_case_results(cases: Iterable[Case], device: torch.device, profile: Profile,
                      peak_gbps: Optional[float] = None):
    for case in cases:
        yield run_case(case, device, profile, peak_gbps)
        if device.type == "cuda":
            torch.cuda.empty_cache()
