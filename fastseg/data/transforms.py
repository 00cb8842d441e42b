"""Joint transforms of an image and its targets, with `torchvision.transforms.v2` semantics (a
transform takes and returns `(image, target)`; random draws use torch's global generator, which
DataLoader seeds per worker) but no torchvision import.

Geometric transforms move every per-pixel target with the image: `semantic` and `panoptic`
(nearest), `masks` (nearest); `boxes` are then recomputed from the masks, instances whose mask
left the frame are dropped (with their labels), and `segments_info` keeps the segments still
present with their new areas. Pixels padded in are ignored (`semantic` 255, `panoptic` 0 void).
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255
_LABEL_MAPS = ("semantic", "panoptic")


class Compose:
    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, image: torch.Tensor, target: Dict) -> Tuple[torch.Tensor, Dict]:
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


def _apply(image: torch.Tensor, target: Dict, image_fn, label_fn) -> Tuple[torch.Tensor, Dict]:
    """image_fn on the image, label_fn(map, fill) on every per-pixel target, then boxes,
    labels and segments made consistent again."""
    out = dict(target)
    image = image_fn(image)
    for key in _LABEL_MAPS:
        if key in target:
            out[key] = label_fn(target[key], IGNORE_INDEX if key == "semantic" else 0)
    if "masks" in target:
        masks = label_fn(target["masks"], False)
        keep = masks.flatten(1).any(1)
        out["masks"] = masks[keep]
        if "labels" in target:
            out["labels"] = target["labels"][keep]
        out["boxes"] = boxes_from_masks(out["masks"])
    if "segments_info" in target and "panoptic" in out:
        ids, counts = torch.unique(out["panoptic"], return_counts=True)
        area = dict(zip(ids.tolist(), counts.tolist()))
        out["segments_info"] = [dict(s, area=area[s["id"]]) for s in target["segments_info"] if s["id"] in area]
    return image, out


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Tight (x1, y1, x2, y2) boxes of `[K, H, W]` bool masks (x2/y2 exclusive); empty masks give
    zeros."""
    if masks.numel() == 0:
        return torch.zeros(masks.shape[0], 4)
    rows, cols = masks.any(2), masks.any(1)
    h, w = masks.shape[-2:]
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    y1 = torch.where(rows, ar_h, h).min(1).values
    y2 = torch.where(rows, ar_h, -1).max(1).values + 1
    x1 = torch.where(cols, ar_w, w).min(1).values
    x2 = torch.where(cols, ar_w, -1).max(1).values + 1
    boxes = torch.stack([x1, y1, x2, y2], 1).float()
    return torch.where(masks.flatten(1).any(1, keepdim=True), boxes, torch.zeros_like(boxes))


def _resize_labels(t: torch.Tensor, size) -> torch.Tensor:
    x = t.unsqueeze(0) if t.dim() == 2 else t
    y = F.interpolate(x[None].float(), size=size, mode="nearest-exact")[0].to(t.dtype)
    return y[0] if t.dim() == 2 else y


class RandomScale:
    """Resize by a factor drawn uniformly from [min_scale, max_scale] (bilinear image, nearest
    labels), like v2.RandomResize on the shorter side."""

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0):
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"fastseg.data.RandomScale: need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.min_scale, self.max_scale = min_scale, max_scale

    def __repr__(self) -> str:
        return f"RandomScale({self.min_scale}, {self.max_scale})"

    def __call__(self, image, target):
        s = self.min_scale + (self.max_scale - self.min_scale) * float(torch.rand(()))
        h, w = image.shape[-2:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        return _apply(image, target,
                      lambda im: F.interpolate(im[None], size=size, mode="bilinear", align_corners=False)[0],
                      lambda t, fill: _resize_labels(t, size))


class RandomCrop:
    """Crop `size=(H, W)` at a random place, padding first where the image is smaller (image with
    `fill`, labels ignored)."""

    def __init__(self, size, fill: float = 0.0):
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"fastseg.data.RandomCrop: size must be an int or (H, W) of positive ints, got {size!r}")
        self.size, self.fill = size, fill

    def __repr__(self) -> str:
        return f"RandomCrop({self.size})"

    def __call__(self, image, target):
        H, W = self.size
        h, w = image.shape[-2:]
        ph, pw = max(0, H - h), max(0, W - w)
        top = int(torch.randint(0, h + ph - H + 1, ()))
        left = int(torch.randint(0, w + pw - W + 1, ()))

        def crop(t, fill):
            if ph or pw:
                t = F.pad(t, (0, pw, 0, ph), value=fill) if t.dtype != torch.bool else \
                    F.pad(t.to(torch.uint8), (0, pw, 0, ph), value=int(fill)).bool()
            return t[..., top:top + H, left:left + W]

        return _apply(image, target, lambda im: crop(im, self.fill), crop)


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:
            raise ValueError(f"fastseg.data.RandomHorizontalFlip: p must be a probability in [0, 1], got {p!r}")
        self.p = p

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"

    def __call__(self, image, target):
        if float(torch.rand(())) >= self.p:
            return image, target
        return _apply(image, target, lambda im: im.flip(-1), lambda t, fill: t.flip(-1))


def train_transforms(crop_size: Optional[Sequence[int]] = None, min_scale: float = 0.5, max_scale: float = 2.0):
    """The usual semantic-segmentation augmentation: random scale, crop (to `crop_size` or the
    input's size), horizontal flip."""
    steps = [RandomScale(min_scale, max_scale)]
    if crop_size is not None:
        steps.append(RandomCrop(tuple(crop_size)))
    steps.append(RandomHorizontalFlip())
    return Compose(steps)


__all__ = ["Compose", "RandomScale", "RandomCrop", "RandomHorizontalFlip", "train_transforms", "boxes_from_masks"]
