"""Where a benchmark runs: fastseg's availability, the device's name, results-directory slug and
peak memory bandwidth, the CPU's model and instruction set, the git commit, and the environment
record written with every result (`environment`)."""
from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RESULTS_DIR = os.path.join(REPO_ROOT, "benchmarks", "results")


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
