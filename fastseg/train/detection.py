"""Training and evaluation of the instance segmentation models (Mask R-CNN's contract: a list of
images and target dicts in, a loss dict in training, detections in eval). Box and mask AP are
COCO's, computed by pycocotools (an optional dependency: `pip install pycocotools`)."""
import contextlib
import io
import math
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch

from .config import UsageError
from .distributed import all_reduce_sum
from .engine import Context, _bar, optimizer_step

LOSS_KEYS = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")


def instance_targets(target: Dict, thing_ids: Sequence[int], device) -> Dict[str, torch.Tensor]:
    """A SyntheticScenes target as Mask R-CNN's: things renumbered 1..T (0 is background),
    uint8 masks."""
    lut = torch.zeros(max(thing_ids) + 1, dtype=torch.int64)
    lut[torch.tensor(list(thing_ids))] = torch.arange(1, len(thing_ids) + 1)
    return {"boxes": target["boxes"].to(device), "labels": lut[target["labels"]].to(device),
            "masks": target["masks"].to(torch.uint8).to(device)}


def split_batch(images: torch.Tensor, targets: List[Dict]) -> List[torch.Tensor]:
    """The collated batch as a list of images, each cropped back to its own size."""
    return [im[:, :t["semantic"].shape[-2], :t["semantic"].shape[-1]] if "semantic" in t else im
            for im, t in zip(images, targets)]


def train_one_epoch(model, loader: Iterable, optimizer, scheduler, scaler, ctx: Context, epoch: int,
                    thing_ids: Sequence[int], loss_keys: Sequence[str] = LOSS_KEYS,
                    to_targets: Optional[Callable[[Dict, torch.device], Dict]] = None) -> Dict:
    """Returns {"train_loss" (the summed losses, mean over iterations and ranks), each loss's
    mean, "images", "seconds"}. Each process sums its own losses; DDP averages the gradients
    (torchvision's reference scripts do the same). `loss_keys` and `to_targets` (a data set
    target -> the model's, default `instance_targets`) serve the other models of the same
    contract (EfficientPS)."""
    model.train()
    device = ctx.dist.device
    to_targets = to_targets or (lambda t, dev: instance_targets(t, thing_ids, dev))
    totals = torch.zeros(len(loss_keys) + 2, dtype=torch.float64, device=device)  # losses, iterations, images
    start = time.perf_counter()
    bar = _bar(ctx, loader, f"epoch {epoch}")
    for it, (images, targets) in enumerate(loader):
        inputs = [im.to(device, non_blocking=True) for im in split_batch(images, targets)]
        tgts = [to_targets(t, device) for t in targets]
        with ctx.autocast():
            loss_dict = model(inputs, tgts)
        loss = sum(loss_dict[k].float() for k in loss_keys)
        optimizer_step(loss, optimizer, scheduler, scaler)
        step = torch.stack([loss_dict[k].detach().to(torch.float64) for k in loss_keys] +
                           [torch.ones((), dtype=torch.float64, device=device),
                            torch.tensor(float(len(inputs)), dtype=torch.float64, device=device)])
        totals += all_reduce_sum(step)
        batch_loss = float(step[:len(loss_keys)].sum())
        if not math.isfinite(batch_loss):
            raise FloatingPointError(f"the training loss became {batch_loss} at epoch {epoch}, iteration {it}")
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.set_postfix(loss=f"{batch_loss:.4f}", img_s=f"{float(totals[-1]) / seconds:.1f}")
            bar.update()
        elif ctx.log_every and ctx.dist.is_main and (it + 1) % ctx.log_every == 0:
            print(f"epoch {epoch} iter {it + 1}/{len(loader)} loss {batch_loss:.4f}", file=sys.stderr, flush=True)
    if bar is not None:
        bar.close()
    iters = float(totals[-2].clamp(min=1))
    out = {k: float(totals[i]) / iters for i, k in enumerate(loss_keys)}
    out.update(train_loss=sum(out[k] for k in loss_keys), images=int(totals[-1]),
               seconds=time.perf_counter() - start)
    return out


def _coco():
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise UsageError("box and mask AP are computed by pycocotools, which is not installed: "
                         "pip install pycocotools") from None
    return COCO, COCOeval, mask_utils


def _rle(mask_utils, mask: torch.Tensor) -> Dict:
    import numpy as np
    rle = mask_utils.encode(np.asfortranarray(mask.to(torch.uint8).cpu().numpy()))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _xywh(box: torch.Tensor) -> List[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_ap(ground_truth: List[Dict], detections: List[Dict], num_classes: int) -> Dict[str, float]:
    """COCO box and mask AP (@[.5:.95] and @.5) of `detections` against `ground_truth`, both as
    lists of per-image dicts (`image_id`, `height`, `width`, `boxes`, `labels`, `masks` (bool
    [K, H, W]); detections also `scores`). Labels 1..num_classes-1."""
    COCO, COCOeval, mask_utils = _coco()
    images, anns = [], []
    for g in ground_truth:
        images.append({"id": g["image_id"], "height": g["height"], "width": g["width"]})
        for box, label, mask in zip(g["boxes"], g["labels"], g["masks"]):
            rle = _rle(mask_utils, mask)
            anns.append({"id": len(anns) + 1, "image_id": g["image_id"], "category_id": int(label),
                         "bbox": _xywh(box), "area": float(mask_utils.area(rle)), "segmentation": rle, "iscrowd": 0})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": c, "name": str(c)} for c in range(1, num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    out = {}
    for kind in ("bbox", "segm"):
        results = []
        for d in detections:
            for box, label, score, mask in zip(d["boxes"], d["labels"], d["scores"], d["masks"]):
                r = {"image_id": d["image_id"], "category_id": int(label), "score": float(score)}
                if kind == "bbox":
                    r["bbox"] = _xywh(box)
                else:
                    r["segmentation"] = _rle(mask_utils, mask)
                results.append(r)
        if not results or not anns:
            out[f"{kind}_ap"], out[f"{kind}_ap50"] = 0.0, 0.0
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(gt, gt.loadRes(results), kind)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        out[f"{kind}_ap"], out[f"{kind}_ap50"] = max(0.0, float(ev.stats[0])), max(0.0, float(ev.stats[1]))
    return out


@torch.no_grad()
def evaluate(model, loader: Iterable, ctx: Context, thing_ids: Sequence[int]) -> Dict:
    """Box and mask AP over the whole loader (every rank's share gathered; every rank returns
    the same numbers)."""
    _coco()  # fail before the pass, not after it
    model.eval()
    device = ctx.dist.device
    gts, dets = [], []
    for images, targets in loader:
        inputs = [im.to(device) for im in split_batch(images, targets)]
        with ctx.autocast():
            outputs = model(inputs)
        for im, t, o in zip(inputs, targets, outputs):
            g = instance_targets(t, thing_ids, "cpu")
            image_id = int(t.get("image_id", len(gts)))
            gts.append({"image_id": image_id, "height": im.shape[-2], "width": im.shape[-1], **g,
                        "masks": g["masks"].bool()})
            masks = o["masks"]
            masks = masks[:, 0] > 0.5 if masks.dtype != torch.bool else masks[:, 0]
            dets.append({"image_id": image_id, "boxes": o["boxes"].float().cpu(), "labels": o["labels"].cpu(),
                         "scores": o["scores"].float().cpu(), "masks": masks.cpu()})
    if ctx.dist.enabled:
        gathered = [None] * ctx.dist.world_size
        torch.distributed.all_gather_object(gathered, (gts, dets))
        gts = [g for part in gathered for g in part[0]]
        dets = [d for part in gathered for d in part[1]]
    return coco_ap(gts, dets, len(thing_ids) + 1)
