"""Plain-PyTorch mask pasting (no torchvision): detectron2's `_do_paste_mask` over the whole
image with F.grid_sample (bilinear, zeros padding, align_corners=False), one mask at a time."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, image_size: Sequence[int],
                threshold: Optional[float] = 0.5) -> torch.Tensor:
    if masks.dim() == 4:
        masks = masks[:, 0]
    h, w = int(image_size[0]), int(image_size[1])
    dt = torch.float64 if masks.dtype == torch.float64 else torch.float32
    out = torch.zeros(masks.shape[0], h, w, dtype=dt, device=masks.device)
    for k in range(masks.shape[0]):
        x0, y0, x1, y1 = boxes[k].to(dt).tolist()
        if not (x1 > x0 and y1 > y0):
            continue
        img_y = (torch.arange(h, dtype=dt, device=masks.device) + 0.5 - y0) / (y1 - y0) * 2 - 1
        img_x = (torch.arange(w, dtype=dt, device=masks.device) + 0.5 - x0) / (x1 - x0) * 2 - 1
        grid = torch.stack([img_x[None, :].expand(h, w), img_y[:, None].expand(h, w)], dim=2)[None]
        out[k] = F.grid_sample(masks[k][None, None].to(dt), grid, mode="bilinear", padding_mode="zeros",
                               align_corners=False)[0, 0]
    return out >= threshold if threshold is not None else out.to(masks.dtype)


def paste_masks_in_image(masks: torch.Tensor, boxes: torch.Tensor, image_size: Sequence[int],
                         padding: int = 1) -> torch.Tensor:
    """torchvision's roi_heads.paste_masks_in_image, one mask at a time: zero-pad the mask,
    scale the box by (M + 2 padding) / M, truncate it to integers, F.interpolate (bilinear) the
    mask to the box size and copy the part inside the image (nothing for boxes wholly outside)."""
    h, w = int(image_size[0]), int(image_size[1])
    m = masks.shape[-1]
    scale = float(m + 2 * padding) / m
    padded = F.pad(masks, (padding,) * 4)
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    cx, cy = (boxes[:, 2] + boxes[:, 0]) * 0.5, (boxes[:, 3] + boxes[:, 1]) * 0.5
    int_boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 1).to(torch.int64)
    out = masks.new_zeros(masks.shape[0], 1, h, w)
    for k in range(masks.shape[0]):
        x0, y0, x1, y1 = int_boxes[k].tolist()
        bw, bh = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        resized = F.interpolate(padded[k:k + 1], size=(bh, bw), mode="bilinear", align_corners=False)[0, 0]
        ix0, ix1, iy0, iy1 = max(x0, 0), min(x1 + 1, w), max(y0, 0), min(y1 + 1, h)
        if ix1 > ix0 and iy1 > iy0:
            out[k, 0, iy0:iy1, ix0:ix1] = resized[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
    return out
