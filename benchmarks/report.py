"""Reports: JSON (everything), a markdown table, and a PNG bar chart of the ratios when
matplotlib is importable. Files go to `<out>/<device-slug>/<run-name>.{json,md,png}`."""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from .harness import CaseResult

SCHEMA_VERSION = 1


def run_name(profile: str, filters: Optional[Sequence[str]]) -> str:
    """`quick` / `full`, or `quick-<filter>` for a filtered run (so it does not overwrite a
    complete run's files)."""
    if not filters:
        return profile
    slug = re.sub(r"[^a-z0-9]+", "-", "-".join(filters).lower()).strip("-")
    return f"{profile}-{slug[:60] or 'filtered'}"


def to_json(env: Dict[str, Any], meta: Dict[str, Any], results: List[CaseResult]) -> Dict[str, Any]:
    return {"schema": SCHEMA_VERSION, **env, **meta, "cases": [dataclasses.asdict(r) for r in results]}


def dumps(doc: Dict[str, Any]) -> str:
    """JSON with one key per line but lists of numbers (shapes, samples) kept on one line."""
    text = json.dumps(doc, indent=1)
    return re.sub(r"\[\s*([-0-9.eE+]+(?:,\s*[-0-9.eE+]+)*)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def _fmt(v: Optional[float], digits: int = 3) -> str:
    if v is None:
        return ""
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.{digits - 1}f}"
    return f"{v:.{digits}g}"


def _mib(b: Optional[int]) -> str:
    return "" if b is None else f"{b / 2**20:.1f}"


def _status_cell(mode_status: str, v: Dict[str, Any]) -> str:
    if v["status"] == "failed":
        return "**FAILED**"
    if v["status"] == "skipped":
        return "skipped"
    if v["status"] == "error":
        return "**error**"
    if v["kind"] == "roofline":
        return "roofline"
    return "ok"


def markdown(doc: Dict[str, Any]) -> str:
    dev = doc["device"]
    peak = dev.get("peak_gbps")
    commit = doc.get("git_commit")
    commit_txt = "none" if not commit else commit[:12] + (" (dirty)" if doc.get("git_dirty") else "")
    load = doc.get("load_average")
    load_end = doc.get("load_average_end")
    load_txt = "" if not load else f"; load average {load[0]:.2f}" + (
        f" at start, {load_end[0]:.2f} at end" if load_end else "")
    cores = f", {dev['cores']} cores" if dev.get("cores") else ""
    lines = [
        f"# fastseg benchmarks: {dev['name']} ({doc['profile']})",
        "",
        f"- device: {dev['name']} (`{dev['slug']}`{cores}); peak memory bandwidth: "
        + (f"{peak:.0f} GB/s" if peak else "unknown"),
        f"- torch {doc['torch_version']}, fastseg {doc.get('fastseg_version')}"
        + ("" if doc.get("fastseg_ops") else f" (**compiled ops unavailable**: {doc.get('fastseg_unavailable_reason')})")
        + f", threads {doc['num_threads']}, {doc['date']}, commit {commit_txt}",
        f"- command: `{doc.get('command', '')}`; wall time {doc.get('wall_s', 0):.0f} s{load_txt}",
    ]
    isa = doc.get("cpu_isa") or {}
    if dev.get("type") == "cpu" and isa.get("in_effect"):
        caps = [f"{v}={isa[v]}" for v in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS") if isa.get(v)]
        lines.append(f"- fastseg CPU loops: {isa['in_effect']} (cap {isa.get('cap')}, the CPU has "
                     f"{isa.get('supported')})" + (f"; baselines capped: {', '.join(caps)}" if caps else ""))
    lines += [
        "",
        "Times are per call (ms): median, interquartile range and minimum over n samples. "
        "ratio = baseline median / fastseg median (> 1: fastseg is faster); on a roofline row it is "
        "roofline median / fastseg median. GB/s = bytes read + written by the op (formulas in "
        "`benchmarks/cases/`) / median. fwd runs under `torch.no_grad()`; fwd+bwd is forward with "
        "autograd + `out.backward(grad)`.",
        "",
    ]
    show_peak = bool(peak)
    head = ["case", "mode", "variant", "median ms", "IQR ms", "min ms", "n", "MiB moved", "GB/s"]
    if show_peak:
        head.append("% peak")
    head += ["ratio", "status"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" if h in ("case", "mode", "variant", "status") else "---:" for h in head) + "|")
    notes: List[str] = []
    for case in doc["cases"]:
        if case["status"] == "error" and not case["modes"]:
            row = [case["name"], "", "", "", "", "", "", "", ""] + ([""] if show_peak else []) + ["", "**error**"]
            lines.append("| " + " | ".join(row) + " |")
            notes.append(f"- **{case['name']}**: {case['message']}")
            continue
        first_case = True
        for m in case["modes"]:
            first_mode = True
            for v in m["variants"]:
                ratio = ""
                if v["kind"] != "fastseg" and v.get("ratio") is not None:
                    ratio = f"{v['ratio']:.2f}"
                    if v["kind"] == "baseline":
                        ratio = f"**{ratio}**"
                n = "" if v.get("repeats") is None else (
                    f"{v['repeats']}" + (f"x{v['calls_per_repeat']}" if v.get("calls_per_repeat", 1) > 1 else ""))
                row = [case["name"] if first_case else "", m["mode"] if first_mode else "", v["name"],
                       _fmt(v.get("median_ms")), _fmt(v.get("iqr_ms"), 2), _fmt(v.get("min_ms")), n,
                       _mib(v.get("bytes")), _fmt(v.get("gbps"))]
                if show_peak:
                    row.append(_fmt(v.get("pct_peak"), 2))
                row += [ratio, _status_cell(m["status"], v)]
                lines.append("| " + " | ".join(row) + " |")
                first_case = first_mode = False
            if m["status"] != "ok" and m.get("message"):
                notes.append(f"- **{case['name']} {m['mode']}** ({m['status']}): {m['message']}")
    lines.append("")
    case_notes = []
    for case in doc["cases"]:
        mem = case.get("notes", {}).get("index_memory")
        if mem:
            case_notes.append(f"- **{case['name']}** index memory: {mem}")
    if case_notes:
        lines += ["Memory:", ""] + case_notes + [""]
    if notes:
        lines += ["Problems:", ""] + notes + [""]
    lines += ["Cases:", ""] + [f"- **{c['name']}**: {c['description']}" for c in doc["cases"]] + [""]
    return "\n".join(lines)


def plot_ratios(doc: Dict[str, Any], path: str) -> Optional[str]:
    """Horizontal bar chart of baseline/fastseg ratios; returns the path, or None when
    matplotlib is missing or there is nothing to plot."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return None
    labels, values, colors = [], [], []
    palette = {"fwd": "#4C72B0", "fwd+bwd": "#DD8452"}
    for case in doc["cases"]:
        for m in case["modes"]:
            for v in m["variants"]:
                if v["kind"] == "baseline" and v.get("ratio") is not None:
                    labels.append(f"{case['name']} {m['mode']} vs {v['name']}")
                    values.append(v["ratio"])
                    colors.append(palette.get(m["mode"], "#55A868"))
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(values) + 1.4))
    y = list(range(len(values)))[::-1]
    ax.barh(y, values, color=colors)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.axvline(1.0, color="black", linewidth=0.8)
    for yi, val in zip(y, values):
        ax.text(val, yi, f" {val:.2f}", va="center", fontsize=7)
    ax.set_xlabel("baseline median / fastseg median (> 1: fastseg faster)")
    ax.set_title(f"fastseg speed-up, {doc['device']['name']} ({doc['profile']}, "
                 f"{doc['num_threads']} threads, torch {doc['torch_version']})", fontsize=9)
    ax.set_xlim(0, max(values) * 1.15)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_doc(out_root: str, slug: str, name: str, doc: Dict[str, Any], text: str) -> str:
    """A tool's results: `<out_root>/<slug>/<name>.json` (doc) and `.md` (text), printed with
    their paths; returns the common stem."""
    folder = os.path.join(out_root, slug)
    os.makedirs(folder, exist_ok=True)
    stem = os.path.join(folder, name)
    with open(stem + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write(text)
    print(text)
    print(f"results: {stem}.md, {stem}.json")
    return stem


def write(doc: Dict[str, Any], out_root: str, name: str) -> Dict[str, str]:
    """Writes `<out_root>/<device-slug>/<name>.json|.md|.png`; returns the paths written."""
    folder = os.path.join(out_root, doc["device"]["slug"])
    os.makedirs(folder, exist_ok=True)
    paths = {"json": os.path.join(folder, name + ".json"), "md": os.path.join(folder, name + ".md")}
    with open(paths["json"], "w") as f:
        f.write(dumps(doc) + "\n")
    with open(paths["md"], "w") as f:
        f.write(markdown(doc))
    png = plot_ratios(doc, os.path.join(folder, name + ".png"))
    if png:
        paths["png"] = png
    elif os.path.exists(os.path.join(folder, name + ".png")):
        os.remove(os.path.join(folder, name + ".png"))  # stale chart of an older run
    return paths
