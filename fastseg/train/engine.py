"""One training epoch and one evaluation pass, for any model with the contract
`model(x) -> logits [N, C, H', W']`. A network whose output is smaller than its input (U-Net
with valid convolutions) is trained on the centre of each target, as in the paper."""
import contextlib
import math
import sys
import time
from dataclasses import dataclass
from typing import Dict, Iterable, Optional

import torch

from .. import losses
from ..data import semantic_batch
from ..metrics import MeanIoU
from .distributed import Dist, all_reduce_sum

IGNORE_INDEX = 255


@dataclass
class Context:
    dist: Dist
    num_classes: int
    amp_dtype: Optional[torch.dtype] = None   # None: no autocast
    progress: bool = False                    # a tqdm bar (rank 0 on a terminal)
    log_every: int = 0                        # plain log lines every N iterations (0: none)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.dist.device.type, dtype=self.amp_dtype)


def center_crop(target: torch.Tensor, size) -> torch.Tensor:
    """The centre `size` window of [N, H, W] targets (U-Net's valid output)."""
    h, w = target.shape[-2:]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return target[..., top:top + size[0], left:left + size[1]]


def _targets_for(logits: torch.Tensor, targets, images: torch.Tensor) -> torch.Tensor:
    t = semantic_batch(targets, tuple(images.shape[-2:])).to(logits.device)
    return center_crop(t, logits.shape[-2:]) if t.shape[-2:] != logits.shape[-2:] else t


def _bar(ctx: Context, loader, desc: str):
    if not ctx.progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=len(loader), desc=desc, leave=False, dynamic_ncols=True)


def optimizer_step(loss: torch.Tensor, optimizer, scheduler, scaler) -> None:
    """Backward, optimizer and schedule step (through the GradScaler with float16 AMP)."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    scheduler.step()


def train_one_epoch(model, loader: Iterable, optimizer, scheduler, scaler, ctx: Context, epoch: int) -> Dict:
    """Returns {"train_loss" (mean over the global batch's kept pixels), "images", "seconds"}."""
    model.train()
    device = ctx.dist.device
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, kept pixels, images
    start = time.perf_counter()
    bar = _bar(ctx, loader, f"epoch {epoch}")
    for it, (images, targets) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        with ctx.autocast():
            logits = model(images)
        target = _targets_for(logits, targets, images)
        # Normalise by the kept pixels of the whole global batch (all ranks): with DDP's gradient
        # averaging, K processes then compute exactly the single-process loss and gradients.
        kept = all_reduce_sum((target != IGNORE_INDEX).sum().to(torch.float64))
        loss = losses.cross_entropy(logits, target, IGNORE_INDEX, normalizer=kept / ctx.dist.world_size)
        optimizer_step(loss, optimizer, scheduler, scaler)
        batch_loss = all_reduce_sum(loss.detach().to(torch.float64) * kept / ctx.dist.world_size)
        totals += torch.stack([batch_loss, kept, all_reduce_sum(torch.tensor(float(images.shape[0]),
                                                                             dtype=torch.float64, device=device))])
        if not math.isfinite(float(batch_loss)):
            raise FloatingPointError(f"the training loss became {float(batch_loss)} at epoch {epoch}, iteration {it}")
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.set_postfix(loss=f"{float(batch_loss / kept):.4f}", img_s=f"{float(totals[2]) / seconds:.1f}")
            bar.update()
        elif ctx.log_every and ctx.dist.is_main and (it + 1) % ctx.log_every == 0:
            print(f"epoch {epoch} iter {it + 1}/{len(loader)} loss {float(batch_loss / kept):.4f} "
                  f"{float(totals[2]) / seconds:.1f} img/s", file=sys.stderr, flush=True)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    return {"train_loss": float(totals[0] / totals[1].clamp(min=1)), "images": int(totals[2]), "seconds": seconds}


@torch.no_grad()
def evaluate(model, loader: Iterable, ctx: Context) -> Dict:
    """Validation loss and the data-set-level confusion matrix (summed over ranks): every rank
    returns the same {"val_loss", "miou", "pixel_accuracy", "iou"}."""
    model.eval()
    device = ctx.dist.device
    metric = MeanIoU(ctx.num_classes, IGNORE_INDEX, device=device)
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        with ctx.autocast():
            logits = model(images)
        target = _targets_for(logits, targets, images)
        totals[0] += losses.cross_entropy(logits, target, IGNORE_INDEX, normalizer=torch.ones((), device=device)) \
            .to(torch.float64)
        totals[1] += (target != IGNORE_INDEX).sum()
        metric.update(logits.argmax(1), target)
    metric.all_reduce()
    all_reduce_sum(totals)
    result = metric.compute()
    return {"val_loss": float(totals[0] / totals[1].clamp(min=1)), "miou": result["miou"],
            "pixel_accuracy": result["pixel_accuracy"], "iou": result["iou"]}
