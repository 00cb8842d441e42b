"""Losses as plain functions."""
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
