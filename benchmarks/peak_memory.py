"""Peak extra memory of one forward call (or, with --train, one forward + backward: a training
step) of each variant of the selected cases.

    python -m benchmarks.peak_memory --filter panoptic [--quick] [--train] [--variant NAME]
                                     [--device cpu|cuda] [--out DIR]

CPU: each (case, variant) runs in a fresh process, which builds the case's inputs, resets the
kernel's peak-RSS counter (`/proc/self/clear_refs`), calls the variant once and reads `VmHWM`:
the peak resident memory above what the inputs already held (Linux only). CUDA: in-process,
`torch.cuda.max_memory_allocated` above the allocation before the call. Writes
`<out>/<device-slug>/<profile>-peak-memory-<filter>.md`.
"""
import argparse
import json
import os
import subprocess
import sys

import torch

from . import cases  # noqa: F401  (registers the cases)
from .harness import REGISTRY, DEFAULT_RESULTS_DIR, device_info, select_cases

_CHILD = r"""
import json, sys, torch
from benchmarks import cases
from benchmarks.harness import REGISTRY
case = REGISTRY[sys.argv[1]]
state = case.setup(torch.device("cpu"), sys.argv[3])
fn = case.variant(sys.argv[2]).fn
train = sys.argv[4] == "train"

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current RSS
before = status("VmRSS")
if train:
    out = fn(state)
    (case.backward or (lambda s, o: o.backward(s.grad_out)))(state, out)
else:
    with torch.no_grad():
        out = fn(state)
print(json.dumps({"peak_extra": status("VmHWM") - before}))
"""


def measure_cpu(case_name: str, variant: str, size: str, train: bool = False) -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", _CHILD, case_name, variant, size, "train" if train else "fwd"],
                         cwd=root, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_extra"]


def measure_cuda(case_name: str, variant: str, size: str, device: torch.device, train: bool = False) -> int:
    case = REGISTRY[case_name]
    state = case.setup(device, size)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    if train:
        out = case.variant(variant).fn(state)
        (case.backward or (lambda s, o: o.backward(s.grad_out)))(state, out)
    else:
        with torch.no_grad():
            case.variant(variant).fn(state)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--filter", action="append", default=[])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--train", action="store_true", help="forward + backward (a training step), not a forward")
    p.add_argument("--variant", action="append", default=[], help="only these variants (repeatable)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=DEFAULT_RESULTS_DIR)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    size = "quick" if args.quick else "full"
    info = device_info(device)
    mode = "fwd+bwd" if args.train else "fwd"
    rows = ["| case | variant | peak extra MiB |", "|---|---|---:|"]
    for case in select_cases(args.filter):
        for v in case.variants:
            if mode not in v.modes or mode not in case.modes or (args.variant and v.name not in args.variant):
                continue
            peak = (measure_cpu(case.name, v.name, size, args.train) if device.type == "cpu"
                    else measure_cuda(case.name, v.name, size, device, args.train))
            rows.append(f"| {case.name} | {v.name} | {peak / 2**20:.1f} |")
            print(rows[-1], flush=True)
    how = ("peak resident memory (VmHWM) of a fresh process above its resident memory once the inputs were built"
           if device.type == "cpu" else "torch.cuda.max_memory_allocated above the allocation before the call")
    what = "training step (forward + backward)" if args.train else "forward call"
    text = "\n".join([f"# Peak extra memory of one {what} ({size} shapes, {info.name})", "",
                      f"- command: `python -m benchmarks.peak_memory {' '.join(argv or sys.argv[1:])}`",
                      f"- measured: {how}", "", *rows, ""])
    out_dir = os.path.join(args.out, info.slug)
    os.makedirs(out_dir, exist_ok=True)
    name = f"{size}-peak-memory{'-train' if args.train else ''}-{'-'.join(args.filter) or 'all'}.md"
    with open(os.path.join(out_dir, name), "w") as f:
        f.write(text)
    print(f"results: {os.path.join(out_dir, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
