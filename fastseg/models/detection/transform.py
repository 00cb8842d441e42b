"""The detection models' input and output transform (torchvision's GeneralizedRCNNTransform
behaviour): normalise each image, resize it so its short side is `min_size` (long side at most
`max_size`), pad the batch to a multiple of `size_divisible`; afterwards map boxes back to the
original image and paste the masks there.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .box_coder import resize_boxes


class ImageList:
    """A padded batch `tensors` [N, 3, H, W] and each image's size before padding."""

    def __init__(self, tensors: torch.Tensor, image_sizes: List[Tuple[int, int]]):
        self.tensors = tensors
        self.image_sizes = image_sizes


def resized_size(h: int, w: int, min_size: float, max_size: float) -> Tuple[int, int]:
    """The size an (h, w) image is resized to: scale = min(min_size / short, max_size / long),
    each side floor(side * scale) (F.interpolate's rule with recompute_scale_factor)."""
    scale = min(float(min_size) / min(h, w), float(max_size) / max(h, w))
    return int(math.floor(h * scale)), int(math.floor(w * scale))


class DetectionTransform(nn.Module):
    def __init__(self, min_size=800, max_size: int = 1333, image_mean: Sequence[float] = (0.485, 0.456, 0.406),
                 image_std: Sequence[float] = (0.229, 0.224, 0.225), size_divisible: int = 32,
                 fixed_size: Optional[Tuple[int, int]] = None):
        super().__init__()
        self.min_size = (min_size,) if isinstance(min_size, (int, float)) else tuple(min_size)
        self.max_size = max_size
        self.image_mean, self.image_std = list(image_mean), list(image_std)
        self.size_divisible = size_divisible
        self.fixed_size = fixed_size

    def _min_size(self) -> float:
        if not self.training:
            return float(self.min_size[-1])
        # torchvision's torch_choice: one draw from torch's RNG per image.
        return float(self.min_size[int(torch.empty(1).uniform_(0.0, float(len(self.min_size))).item())])

    def resize(self, image: torch.Tensor, target: Optional[Dict[str, torch.Tensor]]):
        h, w = image.shape[-2:]
        size = tuple(self.fixed_size[::-1]) if self.fixed_size is not None else \
            resized_size(h, w, self._min_size(), self.max_size)
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        if target is None:
            return image, None
        target = dict(target)
        target["boxes"] = resize_boxes(target["boxes"], (h, w), size)
        if "masks" in target:
            m = target["masks"]
            target["masks"] = F.interpolate(m[:, None].float(), size=size)[:, 0].byte() if m.shape[0] else \
                m.new_zeros((0, *size), dtype=torch.uint8)
        return image, target

    def forward(self, images: List[torch.Tensor], targets: Optional[List[Dict[str, torch.Tensor]]] = None):
        out_images, out_targets = [], []
        for i, image in enumerate(images):
            mean = torch.as_tensor(self.image_mean, dtype=image.dtype, device=image.device)
            std = torch.as_tensor(self.image_std, dtype=image.dtype, device=image.device)
            image = (image - mean[:, None, None]) / std[:, None, None]
            image, target = self.resize(image, targets[i] if targets is not None else None)
            out_images.append(image)
            out_targets.append(target)
        sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in out_images]
        batch = self.batch_images(out_images)
        return ImageList(batch, sizes), (out_targets if targets is not None else None)

    def batch_images(self, images: List[torch.Tensor]) -> torch.Tensor:
        d = self.size_divisible
        h = int(math.ceil(max(im.shape[-2] for im in images) / d) * d)
        w = int(math.ceil(max(im.shape[-1] for im in images) / d) * d)
        batch = images[0].new_zeros((len(images), images[0].shape[0], h, w))
        for b, im in zip(batch, images):
            b[:, :im.shape[-2], :im.shape[-1]].copy_(im)
        return batch

    def postprocess(self, result: List[Dict[str, torch.Tensor]], image_sizes: List[Tuple[int, int]],
                    original_sizes: List[Tuple[int, int]], paste) -> List[Dict[str, torch.Tensor]]:
        """Boxes back to the original sizes; `paste(masks, boxes, size)` (the model's mask
        format) turns the per-box masks into the output masks."""
        if self.training:
            return result
        for r, size, original in zip(result, image_sizes, original_sizes):
            r["boxes"] = resize_boxes(r["boxes"], size, original)
            if "masks" in r:
                r["masks"] = paste(r["masks"], r["boxes"], original)
        return result

    def extra_repr(self) -> str:
        return (f"min_size={self.min_size}, max_size={self.max_size}, mean={self.image_mean}, std={self.image_std}, "
                f"size_divisible={self.size_divisible}")
