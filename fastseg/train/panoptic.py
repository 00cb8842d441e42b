"""Training and evaluation of the panoptic models (EfficientPS's contract: a list of images and
SyntheticScenes target dicts in, a loss dict in training, one `(panoptic, segments_info)` per
image in eval), scored by panoptic quality (`fastseg.metrics.PanopticQuality`: PQ, SQ, RQ, and
PQ over things and stuff)."""
from typing import Dict, Iterable, Sequence

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


@torch.no_grad()
def evaluate(model, loader: Iterable, ctx: Context, thing_ids: Sequence[int], stuff_ids: Sequence[int]) -> Dict:
    """PQ, SQ, RQ (all, things `_th`, stuff `_st`) over the whole loader, against the data set's
    `panoptic` / `segments_info` targets; every rank returns the same numbers."""
    model.eval()
    device = ctx.dist.device
    metric = PanopticQuality(thing_ids, stuff_ids, device=device)
    for images, targets in loader:
        inputs = [im.to(device) for im in detection.split_batch(images, targets)]
        with ctx.autocast():
            outputs = model(inputs)
        for (panoptic, info), t in zip(outputs, targets):
            metric.update(panoptic, info, t["panoptic"].to(device), t["segments_info"])
    if ctx.dist.enabled:
        metric.all_reduce()
    r = metric.compute()
    return {k: float(r[k]) for k in ("pq", "sq", "rq", "pq_th", "pq_st")}
