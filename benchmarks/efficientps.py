"""EfficientPS end to end and per stage: fastseg vs its plain-PyTorch twin, same weights, same
images.

    python -m benchmarks.efficientps [--quick] [--repeats N] [--device cpu|cuda] [--out DIR]

Two models on one set of random weights: `fastseg` (the default: RoIAlign, NMS, the mask head's
transposed convolution and the fusion through fastseg's ops) and `twin` (`reference=True`: the
same modules running those layers' plain-PyTorch forms, what a user would write without
fastseg). EfficientNet-B0 backbone, Cityscapes' 11 stuff and 8 thing classes, batch 1, images
1024 x 2048 and 512 x 1024 (--quick: 512 x 1024 only). The batch norms are calibrated on random
images and the heads scaled so that, as with a trained model on a street scene, ~1000 proposals
reach the box head and 100 detections above the fusion's 0.5 score threshold reach the fusion.

Reported, from one run with the variants interleaved: end to end (median ms of `model(images)`,
eval, no_grad, and the ratio twin / fastseg), per stage (backbone, 2-way FPN, semantic head,
instance head = RPN + box and mask heads, fusion), the agreement of the panoptic outputs, and
peak memory (CPU: VmHWM above the inputs in a fresh process per model; CUDA: max allocated).
Written to `<out>/<device-slug>/<profile>-efficientps.{md,json}`.
"""
import argparse
import copy
import json
import subprocess
import sys
from typing import Any, Callable, Dict, List

import torch

from . import harness, report
from .maskrcnn import interleaved_ms

SIZES = {"full": ((1024, 2048), (512, 1024)), "quick": ((512, 1024),)}
NUM_STUFF, NUM_THINGS = 11, 8
VARIANTS = ("fastseg", "twin")


def build(device) -> Dict[str, torch.nn.Module]:
    from fastseg import nn as fnn
    from fastseg.models import efficientps

    torch.manual_seed(0)
    model = efficientps(num_stuff=NUM_STUFF, num_things=NUM_THINGS)
    # Batch-norm statistics measured on random images: unit-scale activations, as trained.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(2):
            x = torch.rand(2, 3, 256, 512)
            feats = model.fpn(model.backbone(x))
            model.semantic_head(feats, x.shape[-2:])
            model.rpn.head(list(feats.values()))
            model.roi_heads.mask_head(torch.randn(64, 256, 14, 14))
    model.eval()
    with torch.no_grad():
        # Small box regressions and objectness logits (~1000 proposals survive the RPN's NMS);
        # one thing class scored ~0.9 over a low background, so that the box head's NMS keeps
        # 100 detections per image above the fusion's threshold; positive mask logits.
        for layer in (model.rpn.head.bbox_pred, model.roi_heads.box_predictor.bbox_pred, model.rpn.head.cls_logits,
                      model.roi_heads.box_predictor.cls_score):
            layer.weight.mul_(0.01)
            layer.bias.zero_()
        model.roi_heads.box_predictor.cls_score.bias[0] = -4.0
        model.roi_heads.box_predictor.cls_score.bias[1] = 4.0
        model.roi_heads.mask_predictor.mask_fcn_logits.bias.add_(1.0)
    model = model.to(device)
    return {"fastseg": model, "twin": fnn.set_reference(copy.deepcopy(model), True)}


def images_for(size, device) -> List[torch.Tensor]:
    g = torch.Generator().manual_seed(size[0])
    return [torch.rand(3, *size, generator=g).to(device)]


def stages(model, images: List[torch.Tensor]) -> Dict[str, Callable[[], Any]]:
    """One callable per stage, on the inputs it gets inside the model (computed once)."""
    with torch.no_grad():
        batch, _ = model.transform(images)
        x = batch.tensors
        body = model.backbone(x)
        feats = model.fpn(body)
        semantic = model.semantic_head(feats, x.shape[-2:])
        proposals, _ = model.rpn(batch, feats)
        detections, _ = model.roi_heads(feats, proposals, batch.image_sizes)
        (h, w), d = batch.image_sizes[0], detections[0]
        fusion_args = (semantic[0, :, :h, :w], d["mask_logits"][:, 0] * model.mask_logit_scale, d["boxes"],
                       d["scores"], d["labels"] + (model.num_stuff - 1))

    def instance_head():
        p, _ = model.rpn(batch, feats)
        return model.roi_heads(feats, p, batch.image_sizes)

    return {"backbone": lambda: model.backbone(x), "2-way FPN": lambda: model.fpn(body),
            "semantic head": lambda: model.semantic_head(feats, x.shape[-2:]), "instance head": instance_head,
            "fusion": lambda: model.fusion(*fusion_args)}


def agreement(a, b) -> Dict[str, Any]:
    (pa, ia), (pb, ib) = a[0], b[0]
    return {"segments": len(ia), "things": sum(s["isthing"] for s in ia), "panoptic_equal": bool(torch.equal(pa, pb)),
            "segments_info_equal": ia == ib}


_CHILD = r"""
import json, sys, torch
from benchmarks.efficientps import build, images_for
which, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = build(torch.device("cpu"))[which]
images = images_for((h, w), "cpu")
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
with torch.no_grad():
    model(images)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
with torch.no_grad():
    model(images)
print(json.dumps({"peak_extra": status("VmHWM") - before}))
"""


def peak_memory(which: str, size, device: torch.device, models) -> int:
    if device.type == "cuda":
        images = images_for(size, device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.no_grad():
            models[which](images)
        return torch.cuda.max_memory_allocated() - base
    res = subprocess.run([sys.executable, "-c", _CHILD, which, str(size[0]), str(size[1])], cwd=harness.REPO_ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_extra"]


def run(profile: str, repeats: int, device: torch.device) -> Dict[str, Any]:
    models = build(device)
    rows = []
    for size in SIZES[profile]:
        images = images_for(size, device)
        with torch.no_grad():
            outs = {k: m(images) for k, m in models.items()}
        e2e = interleaved_ms({k: (lambda m=m: m(images)) for k, m in models.items()}, repeats, device)
        per = {k: stages(m, images) for k, m in models.items()}
        st = interleaved_ms({(k, s): fn for k, fns in per.items() for s, fn in fns.items()}, repeats, device)
        rows.append({"size": list(size), "agreement": agreement(outs["fastseg"], outs["twin"]), "end_to_end_ms": e2e,
                     "end_to_end_ratio": e2e["twin"] / e2e["fastseg"],
                     "stages": [{"stage": s, **{f"{k}_ms": st[(k, s)] for k in VARIANTS},
                                 "ratio": st[("twin", s)] / st[("fastseg", s)]} for s in per["fastseg"]],
                     "peak_memory_bytes": {k: peak_memory(k, size, device, models) for k in VARIANTS}})
        print(f"{size}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in e2e.items()), flush=True)
    return {"rows": rows}


def markdown(doc: Dict[str, Any]) -> str:
    env = doc["environment"]
    lines = [f"# EfficientPS (EfficientNet-B0), fastseg vs its plain-PyTorch twin ({doc['profile']}): "
             f"{env['device']['name']}, {env['num_threads']} threads", "",
             f"- command: `{doc['command']}`",
             f"- torch {env['torch_version']}, commit {env['git_commit']}{' (dirty)' if env['git_dirty'] else ''}, "
             f"{env['date']}, load average {env['load_average']}",
             f"- medians of {doc['repeats']} interleaved samples after one warm-up; eval, no_grad, batch 1; the same "
             "random weights (calibrated batch norms, 100 detections reaching the fusion) and image; "
             "ratio = twin / fastseg (> 1: fastseg faster)", ""]
    for r in doc["rows"]:
        e, mem, a = r["end_to_end_ms"], r["peak_memory_bytes"], r["agreement"]
        lines += [f"## {r['size'][0]} x {r['size'][1]}", "", "| | fastseg | twin | ratio |", "|---|---:|---:|---:|",
                  f"| end to end ms | {e['fastseg']:.0f} | {e['twin']:.0f} | **{r['end_to_end_ratio']:.2f}** |"]
        for s in r["stages"]:
            lines.append(f"| {s['stage']} ms | {s['fastseg_ms']:.1f} | {s['twin_ms']:.1f} | {s['ratio']:.2f} |")
        lines += [f"| peak memory MiB | {mem['fastseg'] / 2**20:.0f} | {mem['twin'] / 2**20:.0f} | "
                  f"{mem['twin'] / max(mem['fastseg'], 1):.2f} |", "",
                  f"- outputs: {a['segments']} segments ({a['things']} things); panoptic maps equal: "
                  f"{a['panoptic_equal']}, segments_info equal: {a['segments_info_equal']}", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="512 x 1024 only")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=harness.DEFAULT_RESULTS_DIR)
    args = p.parse_args(argv)
    device = harness.resolve_device(args.device)
    profile = "quick" if args.quick else "full"
    env = harness.environment(device)
    doc = {"environment": env, "profile": profile, "repeats": args.repeats,
           "command": "python -m benchmarks.efficientps " + " ".join(argv if argv is not None else sys.argv[1:]),
           **run(profile, args.repeats, device)}
    report.write_doc(args.out, env["device"]["slug"], f"{profile}-efficientps", doc, markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
