"""Mask R-CNN end to end and per stage: fastseg vs torchvision, same weights, same images.

    python -m benchmarks.maskrcnn [--quick] [--repeats N] [--device cpu|cuda] [--out DIR]

Three models, ResNet-50 FPN Mask R-CNNs with COCO's 91 classes on one set of random weights
(torchvision's initialisation, frozen-BN statistics measured on random images: no checkpoint
can be downloaded here) with a low background logit, which give 100 detections per image as a trained model does on
a busy image, so every stage does a realistic amount of work: `fastseg` (the default: torchvision's arithmetic, equal outputs), `fastseg_fast`
(`fast_backbone=True`: batch norms folded into the convolutions, channels-last backbone; float
rounding differences) and `torchvision`. Images are 800 x 1088 (COCO's typical size after the resize), batch 1 and 2 (--quick: 400 x
544). Reported, from one run with the variants interleaved:

* end to end: median ms of `model(images)` in eval / no_grad, and the ratios torchvision / fastseg;
* per stage, each stage timed alone on the inputs it gets inside the model: transform (normalise,
  resize, batch), backbone + FPN, RPN (heads, anchors, decoding, top-n, NMS), box head + NMS
  (RoIAlign 7x7, the two FC layers, decoding, per-class NMS; also split into the box head and the
  post-processing), mask head (RoIAlign 14x14, four convs, transposed conv, logits), pasting
  (boxes back to the image, masks pasted);
* the agreement of the two outputs (boxes, scores, masks);
* peak memory (CPU: VmHWM of a second call above VmRSS before the first, in a fresh process per
  model, so that memory kept between calls, as fastseg's CPU pool keeps it, counts; CUDA:
  max_memory_allocated);
* on CPU, end to end again in a child process with glibc's malloc tuned so that no allocation goes
  back to the system (GLIBC_TUNABLES, MALLOC_TUNED): the page faults fastseg's CPU pool saves
  (fastseg.memory) are then saved for torchvision too.
Written to `<out>/<device-slug>/<profile>-maskrcnn.{md,json}`.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List

import torch

from fastseg import memory

from . import harness, report

SIZES = {"full": (800, 1088), "quick": (400, 544)}
# Random weights regress boxes wildly (the RPN's proposals collapse to a few image-sized boxes),
# saturate the objectness (ties at 1.0) and score the 91 classes about equally (each below the
# 0.05 threshold). Small box regressions and objectness logits, scaled class logits and a low
# background logit give the ~1000 proposals and 100 detections per image a trained model has on a
# busy image (every stage then does a realistic amount of work).
CLASS_LOGIT_SCALE = 1e-2
BACKGROUND_BIAS = -4.0


def build(device: torch.device):
    """{"fastseg", "fastseg_fast", "torchvision"} models on the same random weights, eval mode."""
    import torchvision
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.misc import FrozenBatchNorm2d

    from fastseg.models import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    body = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    # Normalisation statistics measured on random images, as a trained backbone has them
    # (unit-scale activations; random statistics let them grow ~1e3x and the box deltas explode).
    probe = torchvision.models.resnet50(weights=None).train()
    for m in probe.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        for _ in range(2):
            probe(torch.rand(2, 3, 224, 288))
    body.load_state_dict(probe.state_dict())
    tv = MaskRCNN(_resnet_fpn_extractor(body, 3), num_classes=91).eval()
    with torch.no_grad():  # see CLASS_LOGIT_SCALE
        tv.roi_heads.box_predictor.cls_score.weight.mul_(CLASS_LOGIT_SCALE)
        tv.roi_heads.box_predictor.cls_score.bias[0] = BACKGROUND_BIAS
        for layer in (tv.rpn.head.bbox_pred, tv.roi_heads.box_predictor.bbox_pred, tv.rpn.head.cls_logits):
            layer.weight.mul_(0.01)  # the objectness too: saturated sigmoids would tie at 1.0
            layer.bias.zero_()
    tv = tv.to(device)
    kw = dict(num_classes=91)
    return {"fastseg": maskrcnn_resnet50_fpn(weights=tv.state_dict(), **kw).eval().to(device),
            "fastseg_fast": maskrcnn_resnet50_fpn(weights=tv.state_dict(), fast_backbone=True, **kw).eval().to(device),
            "torchvision": tv}


def images_for(batch: int, size, device) -> List[torch.Tensor]:
    g = torch.Generator().manual_seed(batch)
    return [torch.rand(3, *size, generator=g).to(device) for _ in range(batch)]


def stages(model, images: List[torch.Tensor], is_torchvision: bool) -> Dict[str, Callable[[], Any]]:
    """One callable per stage, each on the inputs it gets inside the model (computed once)."""
    with torch.no_grad():
        originals = [tuple(im.shape[-2:]) for im in images]
        batch, _ = model.transform(images)
        feats = model.backbone(batch.tensors)
        proposals, _ = model.rpn(batch, feats)
        heads = model.roi_heads
        sizes = batch.image_sizes

        def box_head():
            return heads.box_predictor(heads.box_head(heads.box_roi_pool(feats, proposals, sizes)))

        def box_stage():
            return heads.postprocess_detections(*box_head(), proposals, sizes)

        box_outputs = box_head()

        found = box_stage()
        if is_torchvision:
            from torchvision.models.detection.roi_heads import maskrcnn_inference
            result = [{"boxes": b, "scores": s, "labels": lab} for b, s, lab in zip(*found)]
        else:
            result = found
        boxes = [r["boxes"] for r in result]
        labels = [r["labels"] for r in result]

        def mask_stage():
            x = heads.mask_head(heads.mask_roi_pool(feats, boxes, sizes))
            if is_torchvision:
                return maskrcnn_inference(heads.mask_predictor(x), labels)
            return heads.mask_predictor.class_logits(x, torch.cat(labels)).sigmoid()

        probs = mask_stage()
        if not is_torchvision:
            probs = probs.split([len(b) for b in boxes])
        for r, p in zip(result, probs):
            r["masks"] = p

        def paste_stage():
            res = [dict(r) for r in result]
            if is_torchvision:
                return model.transform.postprocess(res, sizes, originals)
            return model.transform.postprocess(res, sizes, originals, model._paste)

    fns = {"transform": lambda: model.transform(images), "backbone + FPN": lambda: model.backbone(batch.tensors),
            "RPN": lambda: model.rpn(batch, feats), "box head + NMS": box_stage,
            "  of which box head (RoIAlign 7x7, FC layers)": box_head,
            "  of which box post-processing (decode, score filter, NMS)":
                lambda: heads.postprocess_detections(*box_outputs, proposals, sizes),
            "mask head": mask_stage, "pasting": paste_stage}
    if is_torchvision or not memory.pool_applies(images):
        return fns
    return {k: (lambda fn=fn: pooled(fn)) for k, fn in fns.items()}  # as fastseg's forward runs them


def pooled(fn):
    with memory.cpu_pool():
        return fn()


# A callable faster than this is timed over back-to-back calls filling SHORT_STAGE_FILL_S per
# sample (the mean): one call of a 2 ms stage right after 200 ms of convolutions measures its cold
# caches and the timer more than the stage. The end-to-end rows run every stage once, cold.
SHORT_STAGE_S = 0.02
SHORT_STAGE_FILL_S = 0.1


def interleaved_ms(fns: Dict[str, Callable[[], Any]], repeats: int, device: torch.device) -> Dict[str, float]:
    """Median ms per callable: one warm-up call each, then `repeats` rounds of one sample each
    (one call, or for a short stage the mean of back-to-back calls, see SHORT_STAGE_S)."""
    def timed(fn, calls=1):
        harness._sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(calls):
                out = fn()
        harness._sync(device)
        del out
        return (time.perf_counter() - t0) / calls

    calls = {}
    for k, fn in fns.items():
        first = timed(fn)
        calls[k] = 1 if first >= SHORT_STAGE_S else max(1, int(SHORT_STAGE_FILL_S / max(first, 1e-6)))
    samples: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            samples[k].append(timed(fn, calls[k]))
    return {k: statistics.median(v) * 1e3 for k, v in samples.items()}


def agreement(a: List[Dict], b: List[Dict]) -> Dict[str, Any]:
    out = {"detections": [len(r["boxes"]) for r in a], "same_count": [len(x["boxes"]) for x in a] ==
           [len(y["boxes"]) for y in b]}
    if out["same_count"] and sum(out["detections"]):
        cat = lambda rs, k: torch.cat([r[k].float().flatten() for r in rs])  # noqa: E731
        out["max_box_diff_px"] = float((cat(a, "boxes") - cat(b, "boxes")).abs().max())
        out["max_score_diff"] = float((cat(a, "scores") - cat(b, "scores")).abs().max())
        out["labels_equal"] = bool(torch.equal(cat(a, "labels"), cat(b, "labels")))
        out["mean_mask_diff"] = float((cat(a, "masks") - cat(b, "masks")).abs().mean())
    return out


_CHILD = r"""
import json, sys, torch
from benchmarks.maskrcnn import build, images_for
which, batch, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = build(torch.device("cpu"))[which]
images = images_for(batch, (h, w), "cpu")
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
before = status("VmRSS")  # before the first call: memory a model keeps between calls counts
with torch.no_grad():
    model(images)  # warm-up: allocator, memory pool and oneDNN caches as in steady state
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM: the peak of the second call
with torch.no_grad():
    out = model(images)
print(json.dumps({"peak_extra": status("VmHWM") - before}))
"""


def peak_memory(which: str, batch: int, size, device: torch.device, models) -> int:
    if device.type == "cuda":
        model = models[which]
        images = images_for(batch, size, device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.no_grad():
            model(images)
        return torch.cuda.max_memory_allocated() - base
    res = subprocess.run([sys.executable, "-c", _CHILD, which, str(batch), str(size[0]), str(size[1])],
                         cwd=harness.REPO_ROOT, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_extra"]


# No allocation goes back to the system: every large block comes from the heap, and freed heap
# memory is kept (glibc's defaults mmap blocks over 32 MiB afresh and trim the heap's top).
MALLOC_TUNED = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=4294967296"

_TUNED_CHILD = r"""
import json, sys, torch
from benchmarks.maskrcnn import build, images_for, interleaved_ms
batch, h, w, repeats = (int(v) for v in sys.argv[1:])
models = build(torch.device("cpu"))
images = images_for(batch, (h, w), "cpu")
fns = {k: (lambda m=models[k]: m(images)) for k in ("fastseg", "torchvision")}
print(json.dumps(interleaved_ms(fns, repeats, torch.device("cpu"))))
"""


def tuned_malloc_ms(batch: int, size, repeats: int) -> Dict[str, float]:
    """End to end, fastseg and torchvision, in a child process under GLIBC_TUNABLES=MALLOC_TUNED."""
    env = dict(os.environ, GLIBC_TUNABLES=MALLOC_TUNED)
    res = subprocess.run([sys.executable, "-c", _TUNED_CHILD, str(batch), str(size[0]), str(size[1]), str(repeats)],
                         cwd=harness.REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


VARIANTS = ("fastseg", "fastseg_fast", "torchvision")


def run(size_name: str, repeats: int, device: torch.device) -> Dict[str, Any]:
    models = build(device)
    size = SIZES[size_name]
    rows = []
    for batch in (1, 2):
        images = images_for(batch, size, device)
        with torch.no_grad():
            outs = {k: m(images) for k, m in models.items()}
        check = {k: agreement(outs[k], outs["torchvision"]) for k in ("fastseg", "fastseg_fast")}
        e2e = interleaved_ms({k: (lambda m=m: m(images)) for k, m in models.items()}, repeats, device)
        per = {k: stages(m, images, k == "torchvision") for k, m in models.items()}
        st = interleaved_ms({(k, s): fn for k, fns in per.items() for s, fn in fns.items()}, repeats, device)
        tv = e2e["torchvision"]
        rows.append({"batch": batch, "size": list(size), "agreement": check, "end_to_end_ms": e2e,
                     "end_to_end_ratio": {k: tv / e2e[k] for k in ("fastseg", "fastseg_fast")},
                     "stages": [{"stage": s, **{f"{k}_ms": st[(k, s)] for k in VARIANTS},
                                 "ratio": st[("torchvision", s)] / st[("fastseg", s)],
                                 "ratio_fast": st[("torchvision", s)] / st[("fastseg_fast", s)]} for s in per["fastseg"]],
                     "peak_memory_bytes": {k: peak_memory(k, batch, size, device, models) for k in VARIANTS}})
        if device.type == "cpu" and sys.platform.startswith("linux"):
            rows[-1]["tuned_malloc_ms"] = tuned_malloc_ms(batch, size, repeats)
        print(f"batch {batch}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in e2e.items()), flush=True)
    return {"rows": rows}


def markdown(doc: Dict[str, Any]) -> str:
    env = doc["environment"]
    lines = [f"# Mask R-CNN ResNet-50 FPN, fastseg vs torchvision ({doc['profile']}): {env['device']['name']}, "
             f"{env['num_threads']} threads", "",
             f"- command: `{doc['command']}`",
             f"- torch {env['torch_version']}, torchvision {doc['torchvision_version']}, commit {env['git_commit']}"
             f"{' (dirty)' if env['git_dirty'] else ''}, {env['date']}, load average {env['load_average']}",
             f"- medians of {doc['repeats']} interleaved samples after one warm-up; eval, no_grad; the same random "
             "weights and images; ratio = torchvision / fastseg (> 1: fastseg faster); a stage under "
             f"{SHORT_STAGE_S * 1e3:.0f} ms is sampled as the mean of back-to-back calls filling "
             f"{SHORT_STAGE_FILL_S * 1e3:.0f} ms (warm caches; end to end runs it once)", ""]
    for r in doc["rows"]:
        e, ratio, mem = r["end_to_end_ms"], r["end_to_end_ratio"], r["peak_memory_bytes"]
        lines += [f"## batch {r['batch']}, {r['size'][0]} x {r['size'][1]}", "",
                  "| | fastseg | fastseg fast_backbone | torchvision |", "|---|---:|---:|---:|",
                  f"| end to end ms | {e['fastseg']:.1f} | {e['fastseg_fast']:.1f} | {e['torchvision']:.1f} |",
                  f"| ratio (torchvision / variant) | **{ratio['fastseg']:.3f}** | **{ratio['fastseg_fast']:.3f}** | 1 |",
                  "| peak memory MiB | " + " | ".join(f"{mem[k] / 2**20:.0f}" for k in VARIANTS) + " |", ""]
        if "tuned_malloc_ms" in r:
            t = r["tuned_malloc_ms"]
            lines += [f"- with `GLIBC_TUNABLES={MALLOC_TUNED}` (a child process; no allocation goes back to the "
                      f"system, so torchvision's page faults are saved too): fastseg {t['fastseg']:.1f} ms, "
                      f"torchvision {t['torchvision']:.1f} ms, ratio {t['torchvision'] / t['fastseg']:.3f}"]
        for k, a in r["agreement"].items():
            lines.append(f"- {k} vs torchvision: detections {a['detections']} (same count: {a['same_count']})" +
                         (f", max box difference {a['max_box_diff_px']:.2g} px, max score difference "
                          f"{a['max_score_diff']:.2g}, labels equal: {a['labels_equal']}, mean mask difference "
                          f"{a['mean_mask_diff']:.2g}" if "max_box_diff_px" in a else ""))
        lines += ["", "| stage | fastseg ms | fastseg fast ms | torchvision ms | ratio | ratio fast |",
                  "|---|---:|---:|---:|---:|---:|"]
        for s in r["stages"]:
            lines.append(f"| {s['stage']} | {s['fastseg_ms']:.1f} | {s['fastseg_fast_ms']:.1f} | "
                         f"{s['torchvision_ms']:.1f} | {s['ratio']:.2f} | {s['ratio_fast']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="400 x 544 images")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=harness.DEFAULT_RESULTS_DIR)
    args = p.parse_args(argv)
    try:
        import torchvision
    except ImportError:
        print("benchmarks.maskrcnn compares with torchvision, which is not importable", file=sys.stderr)
        return 2
    device = harness.resolve_device(args.device)
    profile = "quick" if args.quick else "full"
    env = harness.environment(device)
    doc = {"environment": env, "profile": profile, "repeats": args.repeats, "torchvision_version": torchvision.__version__,
           "command": "python -m benchmarks.maskrcnn " + " ".join(argv if argv is not None else sys.argv[1:]),
           **run(profile, args.repeats, device)}
    report.write_doc(args.out, env["device"]["slug"], f"{profile}-maskrcnn", doc, markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
