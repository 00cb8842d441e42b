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
