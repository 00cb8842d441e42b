"""Benchmark harness: the Case/Variant registry, timing, correctness checks, device naming and
memory-bandwidth bookkeeping. Shared by the CLI (`python -m benchmarks`) and by pytest-benchmark
(`pytest benchmarks --benchmark-only`).

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
each variant per round), so slow drifts of the machine (frequency, other tenants) hit all of
them alike. A sample is `calls` back-to-back calls, with `calls` chosen so that a sample lasts at
least `Profile.min_sample_s`; the per-call time is sample / calls. On CPU a sample is timed with
`time.perf_counter`; on CUDA with a pair of `torch.cuda.Event`s, after warm-up and with
`torch.cuda.synchronize()` before each sample. Sampling stops once every variant has
`min_repeats` samples and the round loop has used its time budget, or at `max_repeats`.
"""
from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import math
import os
import platform
import re
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

MODES = ("fwd", "fwd+bwd")
SIZES = ("full", "quick", "small")  # shapes: full/quick as in the network (quick may shrink), small for pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RESULTS_DIR = os.path.join(REPO_ROOT, "benchmarks", "results")


# ============================================================================ registry

class State(SimpleNamespace):
    """What a case's setup returns. Conventions used by the harness:

    * `leaves`: tensors requiring grad whose `.grad` is reset before each fwd+bwd call;
    * `grad_out`: the gradient fed to `out.backward(grad_out)` (allocated once, in setup);
    * `shapes`: a dict describing the shapes, copied into the report;
    * `notes`: a dict of extra facts for the report (e.g. index memory in bytes).
    """


@dataclass
class Variant:
    """One implementation of a case.

    `fn(state)` runs the forward and returns its output (a tensor, or a tuple of tensors).
    `kind`: "fastseg" (the implementation under test), "baseline" (what users would otherwise
    call: gets a ratio and must agree with fastseg) or "roofline" (a bound such as a bare
    zero-fill of the output: timed and reported, never checked).
    `modes`: the modes the variant supports (a roofline row usually only has `fwd`).
    `devices`: restrict to these device types (None: all).
    `checked`: False for a baseline whose output legitimately differs from fastseg's (another
    resampling rule or output format, e.g. torchvision's paste_masks_in_image): it is timed and
    gets a ratio, but not compared; its description must say why.
    """
    name: str
    fn: Callable[[State], Any]
    kind: str = "baseline"
    modes: Tuple[str, ...] = MODES
    description: str = ""
    devices: Optional[Tuple[str, ...]] = None
    checked: bool = True

    def __post_init__(self):
        if self.kind not in ("fastseg", "baseline", "roofline"):
            raise ValueError(f"Variant {self.name}: unknown kind {self.kind!r}")
        bad = set(self.modes) - set(MODES)
        if bad:
            raise ValueError(f"Variant {self.name}: unknown modes {sorted(bad)}")


@dataclass
class Case:
    """A named workload. `setup(device, size)` builds a seeded `State` once per run;
    `bytes(state, mode, variant_name)` returns the bytes read + written by one call (see the
    module docstring for the convention). `atol`/`rtol` are the tolerances of the agreement
    check between fastseg and each baseline (outputs, and input gradients in fwd+bwd)."""
    name: str
    family: str
    description: str
    setup: Callable[[torch.device, str], State]
    variants: List[Variant]
    bytes: Callable[[State, str, str], int]
    modes: Tuple[str, ...] = MODES
    atol: float = 1e-6
    rtol: float = 1e-5
    tags: Tuple[str, ...] = ()
    # fwd+bwd: how to run the backward from the forward's output (default out.backward(grad_out))
    backward: Optional[Callable[[State, Any], None]] = None
    # Fewer samples than the profile asks for, for cases whose baseline takes seconds per call
    # (the panoptic reference loops): the median of 5 such samples is already stable.
    min_repeats: Optional[int] = None

    def variants_for(self, mode: str, device_type: str) -> List[Variant]:
        return [v for v in self.variants
                if mode in v.modes and (v.devices is None or device_type in v.devices)]

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"case {self.name} has no variant {name!r}")


REGISTRY: Dict[str, Case] = {}


def register(case: Case) -> Case:
    if case.name in REGISTRY:
        raise ValueError(f"benchmark case {case.name!r} registered twice")
    names = [v.name for v in case.variants]
    if len(set(names)) != len(names):
        raise ValueError(f"benchmark case {case.name!r}: duplicate variant names {names}")
    if sum(v.kind == "fastseg" for v in case.variants) != 1:
        raise ValueError(f"benchmark case {case.name!r} needs exactly one fastseg variant")
    REGISTRY[case.name] = case
    return case


def load_cases() -> Dict[str, Case]:
    """Imports every op family's case module (they register themselves)."""
    from . import cases  # noqa: F401
    return REGISTRY


def select_cases(patterns: Optional[Sequence[str]] = None) -> List[Case]:
    """Cases whose name or family matches any pattern: a glob (`segnet_*`) or, without
    wildcards, a substring (`segnet`, `unpool`). Comma-separated patterns are split. Without a
    pattern: every op case, not the whole networks (`--filter network` runs those)."""
    load_cases()
    pats: List[str] = []
    for p in patterns or ():
        pats += [q.strip() for q in p.split(",") if q.strip()]
    if not pats:  # whole networks take minutes each (and compile): only when asked for
        return [c for c in REGISTRY.values() if "network" not in c.tags]

    def match(p, s):
        return fnmatch.fnmatchcase(s, p) if any(c in p for c in "*?[") else p in s

    return [c for c in REGISTRY.values() if any(match(p, c.name) or match(p, c.family) for p in pats)]


# ============================================================================ fastseg availability

def fastseg_status(device: torch.device) -> Tuple[bool, str]:
    """(usable, reason): whether fastseg's compiled ops can run on `device`."""
    try:
        import fastseg
    except Exception as e:  # pragma: no cover - broken install
        return False, f"import fastseg failed: {e}"
    if not fastseg.HAS_OPS:
        return False, f"fastseg._C not built ({fastseg.load_error})"
    if device.type == "cuda" and not fastseg.HAS_CUDA_KERNELS:
        return False, "fastseg was built without CUDA kernels"
    return True, ""


def fastseg_version() -> Optional[str]:
    try:
        import fastseg
        return fastseg.__version__
    except Exception:
        return None


# ============================================================================ device naming, bandwidth

# Peak DRAM/HBM bandwidth in GB/s (vendor datasheets), matched in order against
# torch.cuda.get_device_name(); first match wins, unknown devices get no "% of peak".
PEAK_BANDWIDTH_GBPS: List[Tuple[str, float]] = [
    (r"GH200.*144G", 4900.0),
    (r"GH200", 4000.0),
    (r"B200", 8000.0),
    (r"H200", 4800.0),                # H200 SXM and H200 NVL
    (r"H100.*PCIe", 2000.0),
    (r"H100.*NVL", 3900.0),
    (r"H100", 3350.0),                # "NVIDIA H100 80GB HBM3" is the SXM part
    (r"H800.*PCIe", 2000.0),
    (r"H800", 3350.0),
    (r"A100.*80GB.*PCIe|A100.*PCIE.*80GB", 1935.0),
    (r"A100.*SXM.*80GB|A100.*80GB", 2039.0),
    (r"A100", 1555.0),                # 40GB, SXM4 and PCIe
    (r"A800.*80GB", 2039.0),
    (r"L40S|L40\b", 864.0),
    (r"L4\b", 300.0),
    (r"A10G", 600.0),
    (r"A10\b", 600.0),
    (r"A30\b", 933.0),
    (r"T4\b", 320.0),
    (r"V100", 900.0),
    (r"RTX 6000 Ada", 960.0),
    (r"RTX A6000", 768.0),
    (r"RTX 5090", 1792.0),
    (r"RTX 4090", 1008.0),
    (r"RTX 3090 Ti", 1008.0),
    (r"RTX 3090", 936.0),
]


def peak_bandwidth_gbps(device_name: str) -> Optional[float]:
    if "MIG" in device_name:  # a MIG slice gets a fraction of the bandwidth: unknown
        return None
    for pattern, gbps in PEAK_BANDWIDTH_GBPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return gbps
    return None


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def cpu_family_model() -> str:
    """"f<family>m<model>" from /proc/cpuinfo (e.g. f25m17: AMD Zen 4), or "" where unknown."""
    fields: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break
    except OSError:
        return ""
    if "cpu family" in fields and fields.get("model", "").isdigit():
        return f"f{fields['cpu family']}m{fields['model']}"
    return ""


def cpu_isa_label() -> str:
    """The vector ISA this run's fastseg loops use ("avx512", "avx2", "baseline"; FASTSEG_CPU_ISA
    caps it), for the results directory's name; "" where unknown."""
    info = cpu_isa_info()
    return info.get("in_effect", "") if "error" not in info else ""


def cpu_core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def slugify(text: str) -> str:
    text = re.sub(r"\((r|tm|c)\)", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"@.*$", " ", text)                       # "@ 2.70GHz"
    text = re.sub(r"\b(cpu|processor)\b", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"\b\d+-core\b", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return text or "unknown"


@dataclass
class DeviceInfo:
    type: str                      # "cpu" | "cuda"
    name: str                      # CPU model name or torch.cuda.get_device_name()
    slug: str                      # filesystem-safe directory name under results/
    cores: Optional[int] = None    # CPU: usable cores
    peak_gbps: Optional[float] = None


def device_info(device: torch.device) -> DeviceInfo:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return DeviceInfo("cuda", name, slugify(name), None, peak_bandwidth_gbps(name))
    # The directory names the CPU: vendor/model, family and model number, the ISA in effect (an
    # AVX2-capped run on an AVX-512 machine gets its own directory) and the cores.
    name = cpu_model_name()
    cores = cpu_core_count()
    parts = [slugify(name), cpu_family_model(), cpu_isa_label(), f"{cores}c"]
    return DeviceInfo("cpu", name, "cpu-" + "-".join(p for p in parts if p), cores, None)


def resolve_device(name: Optional[str]) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks: --device cuda requested but torch.cuda.is_available() is False")
    if device.type not in ("cpu", "cuda"):
        raise SystemExit(f"benchmarks: unsupported device {name!r} (cpu or cuda)")
    return device


def git_commit() -> Tuple[Optional[str], Optional[bool]]:
    """(commit, dirty) of the repository, or (None, None) outside git / before the first commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


def _load_average() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_isa_info() -> Dict[str, Any]:
    """The instruction set of fastseg's vectorised CPU loops (what the CPU supports, the cap, the
    level in effect) and the caps of the libraries the baselines use, as set in the environment."""
    info: Dict[str, Any] = {v: os.environ.get(v) for v in ("FASTSEG_CPU_ISA", "ONEDNN_MAX_CPU_ISA",
                                                            "MKL_ENABLE_INSTRUCTIONS")}
    try:
        import fastseg.testing
        info.update(supported=fastseg.testing.cpu_isa_supported(), cap=fastseg.testing.current()["cpu_isa"],
                    in_effect=fastseg.testing.cpu_isa_in_effect())
    except RuntimeError as e:  # no extension, an older one, or a bad FASTSEG_CPU_ISA (the ops raise too)
        info["error"] = str(e)
    return info


def environment(device: torch.device) -> Dict[str, Any]:
    info = device_info(device)
    commit, dirty = git_commit()
    usable, reason = fastseg_status(device)
    return {
        "device": dataclasses.asdict(info),
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "fastseg_version": fastseg_version(),
        "fastseg_ops": usable,
        "fastseg_unavailable_reason": reason or None,
        "num_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": dirty,
        "load_average": _load_average(),
        "cpu_isa": cpu_isa_info(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


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
