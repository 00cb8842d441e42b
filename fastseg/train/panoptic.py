"""Training and evaluation of the panoptic models (EfficientPS's contract: a list of images and
SyntheticScenes target dicts in, a loss dict in training, one `(panoptic, segments_info)` per
image in eval), scored by panoptic quality (`fastseg.metrics.PanopticQuality`: PQ, SQ, RQ, and
PQ over things and stuff)."""
import json
import os
from typing import Dict, Iterable, List, Optional, Sequence

import torch

from ..metrics import PanopticQuality
from . import detection
from .engine import Context

LOSS_KEYS = ("loss_semantic", *detection.LOSS_KEYS)
TARGET_KEYS = ("boxes", "labels", "masks", "semantic")


def panoptic_targets(target: Dict, device) -> Dict[str, torch.Tensor]:
    """The target tensors the model trains on, on `device` (class ids as they are: the model
    renumbers the things for its detector)."""
    return {k: target[k].to(device) for k in TARGET_KEYS}


def train_one_epoch(model, loader: Iterable, optimizer, scheduler, scaler, ctx: Context, epoch: int) -> Dict:
    """As `detection.train_one_epoch`, with the semantic loss."""
    return detection.train_one_epoch(model, loader, optimizer, scheduler, scaler, ctx, epoch, (), LOSS_KEYS,
                                     panoptic_targets)


class CocoPanopticWriter:
    """Writes predictions and ground truth in COCO's panoptic format, what panopticapi's
    `pq_compute` reads: DIR/{pred,gt}/<image_id>.png (id = R + 256 G + 256^2 B) and
    DIR/{pred,gt}.json (`annotations`, `images`, `categories`)."""

    def __init__(self, out: str, thing_ids: Sequence[int], stuff_ids: Sequence[int], class_names=None):
        self.out = out
        for kind in ("pred", "gt"):
            os.makedirs(os.path.join(out, kind), exist_ok=True)
        names = list(class_names) if class_names is not None else None
        self.categories = [{"id": int(c), "name": names[c] if names else str(c), "isthing": int(c in thing_ids)}
                           for c in sorted(list(thing_ids) + list(stuff_ids))]
        self.annotations: Dict[str, List[Dict]] = {"pred": [], "gt": []}
        self.images: List[Dict] = []

    def add(self, image_id: int, size, prediction, target) -> None:
        from ..panoptic_format import save_png, to_coco_panoptic

        self.images.append({"id": image_id, "file_name": f"{image_id}.png", "height": size[0], "width": size[1]})
        for kind, (panoptic, info) in (("pred", prediction), ("gt", target)):
            rgb, annotation = to_coco_panoptic(panoptic.cpu(), info, image_id=image_id)
            save_png(os.path.join(self.out, kind, annotation["file_name"]), rgb)
            self.annotations[kind].append(annotation)

    def finish(self, dist) -> None:
        """Gathers every rank's records; rank 0 writes the two JSON files."""
        records = (self.images, self.annotations)
        if dist.enabled:
            gathered = [None] * dist.world_size
            torch.distributed.all_gather_object(gathered, records)
        else:
            gathered = [records]
        if not dist.is_main:
            return
        images = sorted((im for part in gathered for im in part[0]), key=lambda im: im["id"])
        for kind in ("pred", "gt"):
            annotations = sorted((a for part in gathered for a in part[1][kind]), key=lambda a: a["image_id"])
            with open(os.path.join(self.out, f"{kind}.json"), "w") as f:
                json.dump({"images": images, "annotations": annotations, "categories": self.categories}, f)


@torch.no_grad()
def evaluate(model, loader: Iterable, ctx: Context, thing_ids: Sequence[int], stuff_ids: Sequence[int],
             coco_out: Optional[str] = None, class_names=None) -> Dict:
    """PQ, SQ, RQ (all, things `_th`, stuff `_st`) over the whole loader, against the data set's
    `panoptic` / `segments_info` targets; every rank returns the same numbers. `coco_out`: also
    write predictions and ground truth in COCO's panoptic format there (`CocoPanopticWriter`)."""
    model.eval()
    device = ctx.dist.device
    metric = PanopticQuality(thing_ids, stuff_ids, device=device)
    writer = CocoPanopticWriter(coco_out, thing_ids, stuff_ids, class_names) if coco_out else None
    for images, targets in loader:
        inputs = [im.to(device) for im in detection.split_batch(images, targets)]
        with ctx.autocast():
            outputs = model(inputs)
        for (panoptic, info), t, im in zip(outputs, targets, inputs):
            metric.update(panoptic, info, t["panoptic"].to(device), t["segments_info"])
            if writer is not None:
                writer.add(int(t.get("image_id", len(writer.images))), tuple(im.shape[-2:]), (panoptic, info),
                           (t["panoptic"], t["segments_info"]))
    if writer is not None:
        writer.finish(ctx.dist)
    if ctx.dist.enabled:
        metric.all_reduce()
    r = metric.compute()
    return {k: float(r[k]) for k in ("pq", "sq", "rq", "pq_th", "pq_st")}
