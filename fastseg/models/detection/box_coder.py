"""Box arithmetic of the R-CNN family (Girshick 2015): the (dx, dy, dw, dh) encoding of a box
relative to a reference box, clipping, small-box removal and resizing. The arithmetic follows
torchvision's step by step, so detections agree with it to float rounding.
"""
import math
from typing import List, Sequence, Tuple

import torch

# Largest dw/dh decoded (exp(4.135) = 62.5x): keeps exp() finite for wild regressions.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


class BoxCoder:
    """`encode(matched_gt, references)` gives the regression targets, `decode(codes, references)`
    inverts it. `weights` (wx, wy, ww, wh) scale the targets: (1, 1, 1, 1) in the RPN,
    (10, 10, 5, 5) in the box head."""

    def __init__(self, weights: Tuple[float, float, float, float], bbox_xform_clip: float = BBOX_XFORM_CLIP):
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, matched_gt: List[torch.Tensor], references: List[torch.Tensor]) -> List[torch.Tensor]:
        counts = [len(b) for b in references]
        targets = self.encode_single(torch.cat(matched_gt, 0), torch.cat(references, 0))
        return list(targets.split(counts, 0))

    def encode_single(self, gt: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        w = torch.as_tensor(self.weights, dtype=gt.dtype, device=gt.device)
        ref_w, ref_h = ref[:, 2:3] - ref[:, 0:1], ref[:, 3:4] - ref[:, 1:2]
        ref_x, ref_y = ref[:, 0:1] + 0.5 * ref_w, ref[:, 1:2] + 0.5 * ref_h
        gt_w, gt_h = gt[:, 2:3] - gt[:, 0:1], gt[:, 3:4] - gt[:, 1:2]
        gt_x, gt_y = gt[:, 0:1] + 0.5 * gt_w, gt[:, 1:2] + 0.5 * gt_h
        return torch.cat((w[0] * (gt_x - ref_x) / ref_w, w[1] * (gt_y - ref_y) / ref_h,
                          w[2] * torch.log(gt_w / ref_w), w[3] * torch.log(gt_h / ref_h)), dim=1)

    def decode(self, codes: torch.Tensor, references: List[torch.Tensor]) -> torch.Tensor:
        """[sum K_i, 4 C] codes and per-image [K_i, 4] references -> [sum K_i, C, 4] boxes."""
        ref = torch.cat(references, 0)
        total = ref.shape[0]
        return self.decode_single(codes.reshape(total, -1), ref).reshape(total, -1, 4)

    def decode_single(self, codes: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        ref = ref.to(codes.dtype)
        widths, heights = ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1]
        ctr_x, ctr_y = ref[:, 0] + 0.5 * widths, ref[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx, dy = codes[:, 0::4] / wx, codes[:, 1::4] / wy
        dw = torch.clamp(codes[:, 2::4] / ww, max=self.bbox_xform_clip)
        dh = torch.clamp(codes[:, 3::4] / wh, max=self.bbox_xform_clip)
        px, py = dx * widths[:, None] + ctr_x[:, None], dy * heights[:, None] + ctr_y[:, None]
        half_w, half_h = 0.5 * (torch.exp(dw) * widths[:, None]), 0.5 * (torch.exp(dh) * heights[:, None])
        return torch.stack((px - half_w, py - half_h, px + half_w, py + half_h), dim=2).flatten(1)


def clip_boxes_to_image(boxes: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Clamp [..., 4] boxes to an image of `size` (height, width)."""
    h, w = size
    x = boxes[..., 0::2].clamp(min=0, max=w)
    y = boxes[..., 1::2].clamp(min=0, max=h)
    return torch.stack((x, y), dim=boxes.dim()).reshape(boxes.shape)


def remove_small_boxes(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices of the boxes whose sides are both >= min_size."""
    ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.where((ws >= min_size) & (hs >= min_size))[0]


def resize_boxes(boxes: torch.Tensor, original: Sequence[int], new: Sequence[int]) -> torch.Tensor:
    """Boxes of an image of size `original` (h, w) mapped to the same image resized to `new`."""
    rh = torch.tensor(float(new[0]), device=boxes.device) / torch.tensor(float(original[0]), device=boxes.device)
    rw = torch.tensor(float(new[1]), device=boxes.device) / torch.tensor(float(original[1]), device=boxes.device)
    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.stack((x1 * rw, y1 * rh, x2 * rw, y2 * rh), dim=1)
