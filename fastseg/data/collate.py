"""Batching: images padded to the batch's largest size (zeros) and stacked, targets kept as a
list of dicts; `semantic_batch` stacks their semantic maps (padding ignored, 255)."""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255


def _pad_to(t: torch.Tensor, h: int, w: int, value) -> torch.Tensor:
    ph, pw = h - t.shape[-2], w - t.shape[-1]
    return F.pad(t, (0, pw, 0, ph), value=value) if ph or pw else t


def collate(batch: Sequence[Tuple[torch.Tensor, Dict]]) -> Tuple[torch.Tensor, List[Dict]]:
    """[(image [3, H, W], target)] -> (images [N, 3, Hmax, Wmax], [target, ...])."""
    h = max(image.shape[-2] for image, _ in batch)
    w = max(image.shape[-1] for image, _ in batch)
    images = torch.stack([_pad_to(image, h, w, 0.0) for image, _ in batch])
    return images, [target for _, target in batch]


def semantic_batch(targets: Sequence[Dict], size: Tuple[int, int]) -> torch.Tensor:
    """The targets' `semantic` maps as int64 [N, H, W], padded (ignored) to `size`."""
    return torch.stack([_pad_to(t["semantic"], size[0], size[1], IGNORE_INDEX) for t in targets])
