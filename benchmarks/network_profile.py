"""Where a network's time goes, and whether the assembly adds anything to its layers' savings.

    python -m benchmarks.network_profile [--filter segnet] [--quick] [--repeats N] [--out DIR]

For each network of the `network` group (benchmarks/cases/networks.py, the papers' input sizes),
in one run, interleaved:

* the whole network, fastseg vs its twin (the same model with `reference=True`), inference
  (eval, no_grad) and a training step's forward + backward (train);
* every fastseg layer alone (MaxPool2dCompact, MaxUnpool2d(Compact), ConvTranspose2dCrop,
  UpConcat, ...) on the inputs it gets inside the network, in its fastseg and its reference form;
  in train mode the layer's forward + backward with a random output gradient (input gradients
  where the network needs them, and the layer's weight gradients).

Reported per network: the share of the twin's time spent in the layers fastseg replaces, the
whole-network saving (twin - fastseg), the sum of the layers' savings measured alone, and the
first over the second (the assembly adds no overhead when it is about 100 %). Written to
`<out>/<device-slug>/<profile>-network-profile.{md,json}`.
"""
import argparse
import statistics
import sys
import time
from typing import Any, Callable, Dict, List

import torch

from fastseg import nn as fnn

from . import harness, report
from .cases import networks


def _median_ms(fns: Dict[str, Callable[[], Any]], repeats: int) -> Dict[str, float]:
    """Interleaved rounds (one call of each per round) after one warm-up call each."""
    for fn in fns.values():
        fn()
    samples: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            out = fn()
            samples[k].append(time.perf_counter() - t0)
            del out
    return {k: statistics.median(v) * 1e3 for k, v in samples.items()}


def _capture(model: torch.nn.Module, x: torch.Tensor) -> List[Dict[str, Any]]:
    """Each fastseg layer call of one eval forward: the module and its (args, kwargs)."""
    calls: List[Dict[str, Any]] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module, args, kwargs):
        calls.append({"name": names[module], "module": module, "args": args, "kwargs": dict(kwargs)})

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in model.modules()
               if isinstance(m, fnn._SWITCHABLE)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return calls


def _layer_fn(call: Dict[str, Any], train: bool, reference: bool) -> Callable[[], Any]:
    """One call of a captured layer in its fastseg or reference form (set for the call only)."""
    module, args, kwargs = call["module"], call["args"], call["kwargs"]

    def as_form(fn):
        def run():
            module.reference = reference
            try:
                return fn()
            finally:
                module.reference = False
        return run

    if not train:
        def fwd():
            with torch.no_grad():
                return module(*args, **kwargs)
        return as_form(fwd)
    # Training: gradients flow into the layer's floating-point inputs (activations), not into
    # pooling switches / indices, and into its parameters.
    leaves = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
              for a in args]
    with torch.no_grad():
        out = as_form(lambda: module(*leaves, **kwargs))()
    out = out[0] if isinstance(out, tuple) else out
    grad = torch.randn_like(out)
    params = list(module.parameters())

    def step():
        for t in [*leaves, *params]:
            if isinstance(t, torch.Tensor):
                t.grad = None
        y = module(*leaves, **kwargs)
        (y[0] if isinstance(y, tuple) else y).backward(grad)
        return y
    return as_form(step)


def profile_network(case_name: str, size: str, repeats: int) -> Dict[str, Any]:
    builder = networks.NETWORKS[case_name][0]
    state = harness.REGISTRY[case_name].setup(torch.device("cpu"), size)
    model, x = state.model, state.x
    fnn.set_reference(model, False)
    fast_calls = _capture(model.eval(), x)
    fnn.set_reference(model, True)
    ref_calls = _capture(model, x)
    fnn.set_reference(model, False)
    assert [c["name"] for c in fast_calls] == [c["name"] for c in ref_calls]
    result: Dict[str, Any] = {"network": builder, "input": list(x.shape), "modes": {}}
    for mode, train in (("fwd", False), ("fwd+bwd", True)):
        def net(reference: bool):
            def run():
                fnn.set_reference(model, reference)
                model.train(train)
                torch.manual_seed(0)
                if not train:
                    with torch.no_grad():
                        return model(x)
                for p in model.parameters():
                    p.grad = None
                y = model(x)
                y.backward(state.grad_out)
                return y
            return run

        whole = _median_ms({"fastseg": net(False), "twin": net(True)}, repeats)
        layers = []
        for fc, rc in zip(fast_calls, ref_calls):
            ms = _median_ms({"fastseg": _layer_fn(fc, train, False), "twin": _layer_fn(rc, train, True)},
                            max(repeats, 5))
            layers.append({"layer": fc["name"], "type": type(fc["module"]).__name__, **ms,
                           "saving": ms["twin"] - ms["fastseg"]})
        fnn.set_reference(model, False)
        layer_saving = sum(l["saving"] for l in layers)
        net_saving = whole["twin"] - whole["fastseg"]
        result["modes"][mode] = {
            "network_ms": whole, "ratio": whole["twin"] / whole["fastseg"], "layers": layers,
            "layers_twin_ms": sum(l["twin"] for l in layers), "layers_fastseg_ms": sum(l["fastseg"] for l in layers),
            "share_of_twin": sum(l["twin"] for l in layers) / whole["twin"],
            "network_saving_ms": net_saving, "layer_saving_ms": layer_saving,
            "saving_kept": net_saving / layer_saving if layer_saving > 0 else None,
        }
        print(f"{case_name} {mode}: fastseg {whole['fastseg']:.1f} ms, twin {whole['twin']:.1f} ms "
              f"(x{whole['twin'] / whole['fastseg']:.3f}); layers {result['modes'][mode]['share_of_twin']:.1%} of "
              f"the twin; saving {net_saving:.1f} ms of the layers' {layer_saving:.1f} ms", flush=True)
    return result


def markdown(doc: Dict[str, Any]) -> str:
    env = doc["environment"]
    lines = [f"# Network profile ({doc['profile']} sizes): {env['device']['name']}, {env['num_threads']} threads", "",
             f"- command: `{doc['command']}`", f"- torch {env['torch_version']}, commit {env['git_commit']}"
             f"{' (dirty)' if env['git_dirty'] else ''}, {env['date']}, load average {env['load_average']}",
             f"- medians of {doc['repeats']} interleaved samples (layers: at least 5); fwd = eval + no_grad, "
             "fwd+bwd = one training step's forward and backward", "",
             "| network | mode | fastseg ms | twin ms | ratio | fastseg layers' share of the twin | network saving ms "
             "| sum of layer savings ms | saving kept |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["networks"]:
        for mode, m in r["modes"].items():
            kept = "n/a" if m["saving_kept"] is None else f"{m['saving_kept']:.0%}"
            lines.append(f"| {r['network']} {'x'.join(map(str, r['input']))} | {mode} | {m['network_ms']['fastseg']:.1f} "
                         f"| {m['network_ms']['twin']:.1f} | {m['ratio']:.3f} | {m['share_of_twin']:.1%} "
                         f"| {m['network_saving_ms']:.1f} | {m['layer_saving_ms']:.1f} | {kept} |")
    for r in doc["networks"]:
        for mode, m in r["modes"].items():
            lines += ["", f"## {r['network']} {mode}: fastseg's layers alone", "",
                      "| layer | type | fastseg ms | twin ms | saving ms |", "|---|---|---:|---:|---:|"]
            for l in m["layers"]:
                lines.append(f"| {l['layer']} | {l['type']} | {l['fastseg']:.2f} | {l['twin']:.2f} | {l['saving']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--filter", action="append", default=[], help="network case names containing this")
    p.add_argument("--quick", action="store_true", help="the quick profile's smaller sizes")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=harness.DEFAULT_RESULTS_DIR)
    args = p.parse_args(argv)
    harness.load_cases()
    size = "quick" if args.quick else "full"
    names = [n for n in networks.NETWORKS if not args.filter or any(f in n for f in args.filter)]
    env = harness.environment(torch.device("cpu"))
    doc = {"environment": env, "profile": size, "repeats": args.repeats,
           "command": "python -m benchmarks.network_profile " + " ".join(argv if argv is not None else sys.argv[1:]),
           "networks": [profile_network(n, size, args.repeats) for n in names]}
    name = f"{size}-network-profile" + (f"-{'-'.join(args.filter)}" if args.filter else "")
    report.write_doc(args.out, env["device"]["slug"], name, doc, markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
