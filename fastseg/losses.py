"""Losses as plain functions."""
import math
from typing import Optional

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255,
                  normalizer: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Pixel-wise cross entropy of `logits` [N, C, H, W] against `target` [N, H, W], skipping
    `ignore_index`. Mean over the kept pixels, or the sum divided by `normalizer` (e.g. the kept
    pixels of the whole global batch, so that data-parallel ranks with different numbers of
    ignored pixels still compute the single-process loss)."""
    if logits.dim() != 4 or target.dim() != 3 or logits.shape[0] != target.shape[0] \
            or logits.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"fastseg.losses.cross_entropy: logits [N, C, H, W] and target [N, H, W] must agree, got "
                         f"{tuple(logits.shape)} and {tuple(target.shape)}")
    if normalizer is None:
        return F.cross_entropy(logits.float(), target, ignore_index=ignore_index)
    total = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="sum")
    return total / normalizer.clamp(min=1)


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255,
                       top_fraction: float = 0.25) -> torch.Tensor:
    """EfficientPS's semantic loss: pixel-wise cross entropy averaged over the `top_fraction`
    hardest (highest-loss) pixels of each image, ignored pixels excluded (at least one pixel of an
    image with any kept pixel; 0 for an image with none), then averaged over the images.
    Per image, so that a data-parallel rank's loss does not depend on the other ranks' images."""
    if logits.dim() != 4 or target.dim() != 3 or logits.shape[0] != target.shape[0] \
            or logits.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"fastseg.losses.ohem_cross_entropy: logits [N, C, H, W] and target [N, H, W] must agree, "
                         f"got {tuple(logits.shape)} and {tuple(target.shape)}")
    if not 0 < top_fraction <= 1:
        raise ValueError(f"fastseg.losses.ohem_cross_entropy: top_fraction must be in (0, 1], got {top_fraction!r}")
    pixel = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none").flatten(1)
    kept = (target != ignore_index).flatten(1).sum(1)
    per_image = []
    for loss, n in zip(pixel, kept.tolist()):
        k = max(1, int(math.ceil(top_fraction * n))) if n else 0
        # Ignored pixels have loss 0 and k <= the kept pixels, so the top k values are kept pixels' values.
        per_image.append(loss.topk(k).values.mean() if k else loss.sum() * 0)
    return torch.stack(per_image).mean()
