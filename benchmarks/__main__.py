"""CLI: `python -m benchmarks [--quick] [--filter NAME] [--device cpu|cuda] [--out DIR]`."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import List, Optional

import torch

from . import harness, report


def _progress(i: int, total: int, res: harness.CaseResult) -> None:
    width = len(str(total))
    if not res.modes:
        print(f"[{i:>{width}}/{total}] {res.name:<26} {res.status}: {res.message}", flush=True)
        return
    for m in res.modes:
        parts = []
        for v in m.variants:
            if v.median_ms is None:
                parts.append(f"{v.name} {v.status}")
                continue
            txt = f"{v.name} {v.median_ms:.3f} ms"
            if v.kind == "baseline" and v.ratio is not None:
                txt += f" (x{v.ratio:.2f})"
            parts.append(txt)
        status = "" if m.status == "ok" else f"  [{m.status}: {m.message}]"
        print(f"[{i:>{width}}/{total}] {res.name:<26} {m.mode:<7} " + " | ".join(parts) + status, flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Times fastseg against the PyTorch/reference baselines on real network shapes, "
                    "forward and forward+backward; see benchmarks/README.md.")
    p.add_argument("--quick", action="store_true", help="fewer repeats (a few minutes for every case on a 2-core CPU)")
    p.add_argument("--filter", action="append", metavar="NAME",
                   help="run only cases whose name or family contains NAME (or matches a glob such as "
                        "'segnet_*'); repeatable, comma-separated lists allowed. Default: every op case; the "
                        "whole networks run with --filter network")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--out", default=harness.DEFAULT_RESULTS_DIR,
                   help="results root; files go to OUT/<device-slug>/ (default: benchmarks/results)")
    p.add_argument("--peak-gbps", type=float, default=None,
                   help="device peak memory bandwidth in GB/s, overriding the built-in table")
    p.add_argument("--list", action="store_true", help="list the selected cases and exit")
    args = p.parse_args(argv)

    cases = harness.select_cases(args.filter)
    if args.list:
        for c in cases:
            print(f"{c.name:<28} {c.family:<8} {c.description}")
        return 0
    if not cases:
        print(f"benchmarks: no case matches {args.filter}; try --list", file=sys.stderr)
        return 2

    device = harness.resolve_device(args.device)
    profile = harness.PROFILES["quick" if args.quick else "full"]
    env = harness.environment(device)
    if args.peak_gbps:
        env["device"]["peak_gbps"] = args.peak_gbps
    peak = env["device"]["peak_gbps"]
    dev = env["device"]
    print(f"fastseg benchmarks ({profile.name}): {dev['name']} [{dev['slug']}], torch {env['torch_version']}, "
          f"fastseg {env['fastseg_version']}, {env['num_threads']} threads, {len(cases)} cases", flush=True)
    load = env.get("load_average")
    if device.type == "cpu" and load and load[0] > 0.5 * (dev.get("cores") or 1):
        print(f"warning: load average {load[0]:.2f} on {dev.get('cores')} cores: other processes are using the "
              "CPU, timings will be noisy", flush=True)
    isa = env.get("cpu_isa") or {}
    if device.type == "cpu" and isa.get("in_effect"):
        print(f"fastseg CPU loops: {isa['in_effect']} (cap {isa['cap']}, the CPU has {isa['supported']})", flush=True)
    if not env["fastseg_ops"]:
        print(f"warning: fastseg ops unavailable ({env['fastseg_unavailable_reason']}); timing baselines only",
              flush=True)

    t0 = time.perf_counter()
    results = []
    for i, res in enumerate(harness.iter_case_results(cases, device, profile, peak), 1):
        results.append(res)
        _progress(i, len(cases), res)
    wall = time.perf_counter() - t0

    meta = {"profile": profile.name, "filter": args.filter, "wall_s": round(wall, 1),
            "load_average_end": harness._load_average(),
            "command": "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
            "timing": {"cpu": "time.perf_counter", "cuda": "torch.cuda.Event"}[device.type],
            "profile_settings": harness.dataclasses.asdict(profile)}
    doc = report.to_json(env, meta, results)
    paths = report.write(doc, args.out, report.run_name(profile.name, args.filter))
    print()
    print(report.markdown(doc))
    print("results: " + ", ".join(os.path.relpath(p) for p in paths.values()), flush=True)
    if "png" not in paths:
        print("(no PNG chart: matplotlib is not importable or there were no ratios)", flush=True)
    failed = [r.name for r in results if r.status in ("FAILED", "error")]
    if failed:
        print(f"FAILED/error cases: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
