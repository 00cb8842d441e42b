"""Mask pasting layers (see `fastseg.ops.paste_masks`), with a `reference` switch like every
fastseg layer."""
from typing import Optional, Sequence

import torch
from torch import nn

from ..ops.paste_masks import paste_masks as _paste_masks_op, paste_masks_in_image as _paste_masks_in_image_op
from ..reference import paste_masks as _paste_masks_ref, paste_masks_in_image as _paste_masks_in_image_ref

# One node each under torch.fx.symbolic_trace.
torch.fx.wrap("_paste_masks_op")
torch.fx.wrap("_paste_masks_in_image_op")
torch.fx.wrap("_paste_masks_ref")
torch.fx.wrap("_paste_masks_in_image_ref")


class PasteMasksInImage(nn.Module):
    """torchvision's `paste_masks_in_image(masks [K,1,M,M], boxes, image_size, padding)`: float
    [K, 1, H, W] masks of the image."""

    def __init__(self, padding: int = 1):
        super().__init__()
        self.padding = padding
        self.reference = False

    def forward(self, masks: torch.Tensor, boxes: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
        if self.reference:
            return _paste_masks_in_image_ref(masks, boxes, image_size, self.padding)
        return _paste_masks_in_image_op(masks, boxes, image_size, self.padding)

    def extra_repr(self) -> str:
        return f"padding={self.padding}"


class PasteMasks(nn.Module):
    """detectron2's paste (`fastseg.ops.paste_masks`): bool [K, H, W] masks (values >= threshold),
    or the values when `threshold=None`."""

    def __init__(self, threshold: Optional[float] = 0.5):
        super().__init__()
        self.threshold = threshold
        self.reference = False

    def forward(self, masks: torch.Tensor, boxes: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
        if self.reference:
            return _paste_masks_ref(masks, boxes, image_size, self.threshold)
        return _paste_masks_op(masks, boxes, image_size, self.threshold)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"
