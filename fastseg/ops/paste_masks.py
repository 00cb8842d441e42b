"""Mask pasting: paste_masks(masks[K,Mh,Mw], boxes[K,4], image_size, threshold=0.5).

detectron2's paste (docs/design.md §5.5): each mask is resampled bilinearly into its box at image
resolution (pixel centre (x + 0.5, y + 0.5) -> mask coordinate (x + 0.5 - x1) / (x2 - x1) * M - 0.5,
zeros outside the mask: F.grid_sample with align_corners=False). Returns bool [K, H, W]
(value >= threshold) or, with threshold=None, the values in the masks' dtype. Only the pixels
whose sample can be non-zero (the box widened by half a mask cell) are computed; no K x H x W
float temporary exists. Not differentiable. Kernels in csrc/ops/paste_masks/.

`into=`: instead of [K, H, W], all masks are written into one [H, W] map: bool `into` becomes an
occupancy map (pixels covered by any mask set to True), an integer `into` an instance-id map
(covered pixels get k + 1 of the lowest-index mask covering them: with masks sorted by score the
best one wins). Pixels no mask covers keep their value, so a map can be filled incrementally.

`paste_masks_in_image(masks[K,1,M,M], boxes, img_shape, padding=1)` is a drop-in for
torchvision's `roi_heads.paste_masks_in_image`: the mask zero-padded by `padding`, the box scaled
to match and truncated to integers, then `F.interpolate(bilinear)` to the box and a copy of the
part inside the image, all in one kernel. Values equal torchvision's within float rounding
(<= 4e-6 in float32: ATen's interpolation sums in another order; the tests compare with
torchvision). One difference: torchvision raises (a shape mismatch) for a box whose integer
corner lies outside the image on the far side or wholly before it; here such a box pastes
nothing (the part of it inside the image, i.e. none).
"""
from typing import Optional, Sequence

import torch

from .. import _loader
from ._utils import check_float, check_int, check_no_overlap, check_numel, check_same_device, fake_same_device

__all__ = ["paste_masks", "paste_masks_in_image"]


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, image_size: Sequence[int],
                threshold: Optional[float] = 0.5, into: Optional[torch.Tensor] = None) -> torch.Tensor:
    _loader.require_ops()
    op = "paste_masks"
    for name, t in (("masks", masks), ("boxes", boxes)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"fastseg.{op}: {name} must be a Tensor, got {type(t).__name__}")
    if into is not None and not isinstance(into, torch.Tensor):
        raise TypeError(f"fastseg.{op}: into must be a Tensor, got {type(into).__name__}")
    check_same_device(op, "masks", masks, ("boxes", boxes), ("into", into))
    if masks.dim() == 4 and masks.shape[1] == 1:  # [K, 1, M, M] as Mask R-CNN's head returns
        masks = masks[:, 0]
    h, w = _image_size(op, "image_size", image_size)
    if threshold is not None:
        threshold = check_float(threshold, op, "threshold")
    if into is not None:
        if threshold is None:
            raise ValueError(f"fastseg.{op}: into= needs a threshold (it writes covered pixels), got None")
        if tuple(into.shape) != (h, w):
            raise ValueError(f"fastseg.{op}: into must have shape image_size {(h, w)}, got {tuple(into.shape)}")
        check_no_overlap(op, "into", into, ("masks", masks), ("boxes", boxes))
        torch.ops.fastseg.paste_masks_into.default(masks, boxes, threshold, into)
        return into
    check_numel((masks.shape[0], h, w), op, "image_size")
    return torch.ops.fastseg.paste_masks.default(masks, boxes, h, w, threshold)


def _image_size(op: str, name: str, image_size):
    """(H, W): ints >= 0 (numpy integers and 0-dim integer tensors too)."""
    if isinstance(image_size, (str, bytes)) or isinstance(image_size, torch.Tensor) and image_size.dim() != 1:
        raise TypeError(f"fastseg.{op}: {name} must be a pair of ints (H, W), got {image_size!r}")
    try:
        items = tuple(image_size)
    except TypeError:
        raise TypeError(f"fastseg.{op}: {name} must be a pair of ints (H, W), got {image_size!r}") from None
    if len(items) != 2:
        raise ValueError(f"fastseg.{op}: {name} must be a pair of ints (H, W), got {image_size!r}")
    return tuple(check_int(v, op, name, minimum=0) for v in items)


def expand_boxes(boxes: torch.Tensor, scale: float) -> torch.Tensor:
    """torchvision's roi_heads.expand_boxes: boxes scaled by `scale` about their centres."""
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    return torch.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], dim=1)


def paste_masks_in_image(masks: torch.Tensor, boxes: torch.Tensor, img_shape: Sequence[int],
                         padding: int = 1) -> torch.Tensor:
    """Drop-in for `torchvision.models.detection.roi_heads.paste_masks_in_image`: float
    [K, 1, H, W] in the masks' dtype."""
    _loader.require_ops()
    op = "paste_masks_in_image"
    for name, t in (("masks", masks), ("boxes", boxes)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"fastseg.{op}: {name} must be a Tensor, got {type(t).__name__}")
    check_same_device(op, "masks", masks, ("boxes", boxes))
    if masks.dim() != 4 or masks.shape[1] != 1:
        raise ValueError(f"fastseg.{op}: masks must be [K, 1, M, M], got shape {tuple(masks.shape)}")
    if boxes.dim() != 2 or boxes.shape[1] != 4 or not boxes.is_floating_point():
        raise ValueError(f"fastseg.{op}: boxes must be a float [K, 4] tensor, got {tuple(boxes.shape)} {boxes.dtype}")
    # a padding larger than 2**31 would only build boxes of more than 2**31 * M pixels
    padding = check_int(padding, op, "padding", minimum=0, maximum=2 ** 31)
    h, w = _image_size(op, "img_shape", img_shape)
    check_numel((masks.shape[0], h, w), op, "img_shape")
    m = masks.shape[-1]
    if m == 0:
        raise ValueError(f"fastseg.{op}: masks must have non-empty [M, M] planes, got shape {tuple(masks.shape)}")
    # torchvision: expand_masks (scale from the last dim) then boxes.to(int64), i.e. truncation.
    int_boxes = expand_boxes(boxes, float(m + 2 * padding) / m).to(torch.int64)
    out = torch.ops.fastseg.paste_masks_in_image.default(masks[:, 0], int_boxes, padding, h, w)
    return out[:, None]


def _fake(masks, boxes, height, width, threshold):
    torch._check(masks.dim() == 3, lambda: f"fastseg.paste_masks: masks must be 3-D, got {masks.dim()}-D")
    fake_same_device("paste_masks", "masks", masks, ("boxes", boxes))
    dtype = torch.bool if threshold is not None else masks.dtype
    return masks.new_empty((masks.shape[0], height, width), dtype=dtype)


def _fake_in_image(masks, boxes, padding, height, width):
    torch._check(masks.dim() == 3, lambda: f"fastseg.paste_masks_in_image: masks must be 3-D, got {masks.dim()}-D")
    fake_same_device("paste_masks_in_image", "masks", masks, ("boxes", boxes))
    return masks.new_empty((masks.shape[0], height, width))


def _fake_into(masks, boxes, threshold, into):
    fake_same_device("paste_masks", "masks", masks, ("boxes", boxes), ("into", into))
    return None


if _loader.HAS_OPS:
    torch.library.register_fake("fastseg::paste_masks")(_fake)
    torch.library.register_fake("fastseg::paste_masks_in_image")(_fake_in_image)
    torch.library.register_fake("fastseg::paste_masks_into")(_fake_into)
