"""Box overlap, proposal-to-ground-truth matching and fg/bg sampling for the R-CNN heads.

Same semantics (and, for the sampler, the same random-number consumption) as torchvision's
`torchvision.ops.box_iou`, `torchvision.models.detection._utils.Matcher` and
`..._utils.BalancedPositiveNegativeSampler`, without importing torchvision. Boxes are
(x1, y1, x2, y2).
"""
from typing import List, Tuple

import torch
from torch import Tensor

__all__ = ["box_area", "box_iou", "Matcher", "BalancedPositiveNegativeSampler"]


def _upcast(t: Tensor) -> Tensor:
    # float16/bfloat16 -> float32, small ints -> int32 (as torchvision, against overflow in products)
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def box_area(boxes: Tensor) -> Tensor:
    """Area of each (x1, y1, x2, y2) box: [..., 4] -> [...] (torchvision.ops.box_area)."""
    boxes = _upcast(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU, [N, 4] x [M, 4] -> [N, M] (torchvision.ops.box_iou, same arithmetic: a pair
    whose union is 0 gives nan, as there)."""
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    lt = torch.max(boxes1[..., None, :2], boxes2[..., None, :, :2])  # [..., N, M, 2]
    rb = torch.min(boxes1[..., None, 2:], boxes2[..., None, :, 2:])  # [..., N, M, 2]
    wh = _upcast(rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[..., None] + area2[..., None, :] - inter
    return inter / union


class Matcher:
    """Assigns each prediction (column of an [M_gt, N_pred] quality matrix) the index of its
    best ground truth, or BELOW_LOW_THRESHOLD (-1) / BETWEEN_THRESHOLDS (-2)
    (torchvision.models.detection._utils.Matcher).

    With `allow_low_quality_matches`, every prediction that is (one of, ties included) the best
    for some ground truth keeps its best ground-truth match whatever its quality.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold: float, low_threshold: float, allow_low_quality_matches: bool = False) -> None:
        if not low_threshold <= high_threshold:
            raise ValueError("low_threshold should be <= high_threshold")
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: Tensor) -> Tensor:
        if match_quality_matrix.numel() == 0:
            if match_quality_matrix.shape[0] == 0:
                raise ValueError("No ground-truth boxes available for one of the images during training")
            raise ValueError("No proposal boxes available for one of the images during training")
        matched_vals, matches = match_quality_matrix.max(dim=0)
        all_matches = matches.clone() if self.allow_low_quality_matches else None
        below_low_threshold = matched_vals < self.low_threshold
        between_thresholds = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches[below_low_threshold] = self.BELOW_LOW_THRESHOLD
        matches[between_thresholds] = self.BETWEEN_THRESHOLDS
        if all_matches is not None:
            self.set_low_quality_matches_(matches, all_matches, match_quality_matrix)
        return matches

    def set_low_quality_matches_(self, matches: Tensor, all_matches: Tensor, match_quality_matrix: Tensor) -> None:
        """For each ground truth, the predictions of highest quality with it (ties included)
        get back their best match (in place)."""
        highest_quality_foreach_gt, _ = match_quality_matrix.max(dim=1)
        pairs = torch.where(match_quality_matrix == highest_quality_foreach_gt[:, None])
        pred_inds_to_update = pairs[1]
        matches[pred_inds_to_update] = all_matches[pred_inds_to_update]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(high_threshold={self.high_threshold}, low_threshold={self.low_threshold}, "
                f"allow_low_quality_matches={self.allow_low_quality_matches})")


class BalancedPositiveNegativeSampler:
    """Per image, up to `batch_size_per_image` elements with at most
    `int(batch_size_per_image * positive_fraction)` positives (values >= 1) and negatives
    (values == 0) filling the rest; values < 0 are ignored
    (torchvision.models.detection._utils.BalancedPositiveNegativeSampler: two randperms per image,
    positives then negatives, on the labels' device).

    Returns two lists of uint8 masks shaped like each input: the sampled positives, the sampled
    negatives.
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def __call__(self, matched_idxs: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        pos_idx = []
        neg_idx = []
        for matched_idxs_per_image in matched_idxs:
            positive = torch.where(matched_idxs_per_image >= 1)[0]
            negative = torch.where(matched_idxs_per_image == 0)[0]

            num_pos = int(self.batch_size_per_image * self.positive_fraction)
            num_pos = min(positive.numel(), num_pos)
            num_neg = self.batch_size_per_image - num_pos
            num_neg = min(negative.numel(), num_neg)

            perm1 = torch.randperm(positive.numel(), device=positive.device)[:num_pos]
            perm2 = torch.randperm(negative.numel(), device=negative.device)[:num_neg]

            pos_mask = torch.zeros_like(matched_idxs_per_image, dtype=torch.uint8)
            neg_mask = torch.zeros_like(matched_idxs_per_image, dtype=torch.uint8)
            pos_mask[positive[perm1]] = 1
            neg_mask[negative[perm2]] = 1
            pos_idx.append(pos_mask)
            neg_idx.append(neg_mask)
        return pos_idx, neg_idx

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(batch_size_per_image={self.batch_size_per_image}, "
                f"positive_fraction={self.positive_fraction})")
