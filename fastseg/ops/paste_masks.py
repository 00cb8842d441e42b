"""Mask pasting: paste_masks(masks[K,Mh,Mw], boxes[K,4], image_size, threshold=0.5).

detectron2's paste (DESIGN.md §5.3): each mask is resampled bilinearly into its box at image
resolution (pixel centre (x + 0.5, y + 0.5) -> mask coordinate (x + 0.5 - x1) / (x2 - x1) * M - 0.5,
zeros outside the mask: F.grid_sample with align_corners=False). Returns bool [K, H, W]
(value >= threshold) or, with threshold=None, the values in the masks' dtype. Only the pixels
whose sample can be non-zero (the box widened by half a mask cell) are computed; no K x H x W
float temporary exists. Not differentiable. Kernels in csrc/ops/paste_masks/.
"""
from typing import Optional, Sequence

import torch

from .. import _loader
from ._utils import pair

__all__ = ["paste_masks"]


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, image_size: Sequence[int],
                threshold: Optional[float] = 0.5) -> torch.Tensor:
    _loader.require_ops()
    op = "paste_masks"
    for name, t in (("masks", masks), ("boxes", boxes)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"fastseg.{op}: {name} must be a Tensor, got {type(t).__name__}")
    if masks.dim() == 4 and masks.shape[1] == 1:  # [K, 1, M, M] as Mask R-CNN's head returns
        masks = masks[:, 0]
    h, w = pair(tuple(image_size), op, "image_size", minimum=0)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError(f"fastseg.{op}: threshold must be a float or None, got {type(threshold).__name__}")
        threshold = float(threshold)
    return torch.ops.fastseg.paste_masks.default(masks, boxes, h, w, threshold)


def _fake(masks, boxes, height, width, threshold):
    torch._check(masks.dim() == 3, lambda: f"fastseg.paste_masks: masks must be 3-D, got {masks.dim()}-D")
    dtype = torch.bool if threshold is not None else masks.dtype
    return masks.new_empty((masks.shape[0], height, width), dtype=dtype)


if _loader.HAS_OPS:
    torch.library.register_fake("fastseg::paste_masks")(_fake)
