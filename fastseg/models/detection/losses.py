"""The R-CNN training losses: RPN, Fast R-CNN box head, Mask R-CNN mask head.

Pure functions with torchvision's semantics (`RegionProposalNetwork.compute_loss`,
`roi_heads.fastrcnn_loss`, `roi_heads.project_masks_on_boxes`, `roi_heads.maskrcnn_loss`),
without importing torchvision. Every loss is a 0-dim tensor in the autograd graph of its
prediction tensors even when an image has no positives (the box terms are then a sum over an
empty selection, 0 with a zero gradient; the mask loss is `mask_logits.sum() * 0`), so under DDP
every head's parameters reach the loss.

As in torchvision, a loss whose normaliser is 0 is nan: `rpn_losses` when no anchor at all is
sampled (every label ignored), `fastrcnn_loss` with no sampled proposals.
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ...ops import roi_align
from .matching import BalancedPositiveNegativeSampler

__all__ = ["rpn_losses", "fastrcnn_loss", "project_masks_on_boxes", "maskrcnn_loss"]


def rpn_losses(objectness: Tensor, pred_bbox_deltas: Tensor, labels: List[Tensor], regression_targets: List[Tensor],
               sampler: BalancedPositiveNegativeSampler) -> Tuple[Tensor, Tensor]:
    """(loss_objectness, loss_rpn_box_reg) of the region proposal network.

    objectness: [sum A, 1] or [sum A] logits over every image's anchors (images concatenated);
    pred_bbox_deltas: [sum A, 4]; labels: per image [A_i] float, 1 foreground, 0 background,
    < 0 ignored; regression_targets: per image [A_i, 4] encoded targets. `sampler` draws the
    anchors (its randperms are the only random numbers used). The box loss is smooth L1
    (beta 1/9) summed over the sampled positives and divided by the number of sampled anchors;
    the objectness loss is the mean BCE-with-logits over the sampled anchors.
    """
    sampled_pos_inds, sampled_neg_inds = sampler(labels)
    sampled_pos_inds = torch.where(torch.cat(sampled_pos_inds, dim=0))[0]
    sampled_neg_inds = torch.where(torch.cat(sampled_neg_inds, dim=0))[0]
    sampled_inds = torch.cat([sampled_pos_inds, sampled_neg_inds], dim=0)

    objectness = objectness.flatten()
    labels_cat = torch.cat(labels, dim=0)
    targets_cat = torch.cat(regression_targets, dim=0)

    box_loss = F.smooth_l1_loss(pred_bbox_deltas[sampled_pos_inds], targets_cat[sampled_pos_inds], beta=1 / 9,
                                reduction="sum") / sampled_inds.numel()
    objectness_loss = F.binary_cross_entropy_with_logits(objectness[sampled_inds], labels_cat[sampled_inds])
    return objectness_loss, box_loss


def fastrcnn_loss(class_logits: Tensor, box_regression: Tensor, labels: List[Tensor],
                  regression_targets: List[Tensor]) -> Tuple[Tensor, Tensor]:
    """(loss_classifier, loss_box_reg) of the Fast R-CNN box head.

    class_logits: [K, C] over the sampled proposals of every image; box_regression: [K, 4C]
    (per-class deltas); labels: per image [K_i] int64 class (0 background);
    regression_targets: per image [K_i, 4]. Cross-entropy over all K; smooth L1 (beta 1/9) of
    each foreground proposal's deltas for its own class, summed and divided by K.
    """
    labels_cat = torch.cat(labels, dim=0)
    targets_cat = torch.cat(regression_targets, dim=0)

    classification_loss = F.cross_entropy(class_logits, labels_cat)

    sampled_pos_inds_subset = torch.where(labels_cat > 0)[0]
    labels_pos = labels_cat[sampled_pos_inds_subset]
    N = class_logits.shape[0]
    box_regression = box_regression.reshape(N, box_regression.size(-1) // 4, 4)

    box_loss = F.smooth_l1_loss(box_regression[sampled_pos_inds_subset, labels_pos],
                                targets_cat[sampled_pos_inds_subset], beta=1 / 9, reduction="sum")
    box_loss = box_loss / labels_cat.numel()
    return classification_loss, box_loss


def project_masks_on_boxes(gt_masks: Tensor, boxes: Tensor, matched_idxs: Tensor, M: int) -> Tensor:
    """[P, M, M] mask targets: gt mask `matched_idxs[p]` ([G, H, W], any dtype) cropped to
    `boxes[p]` and resampled with RoIAlign (spatial_scale 1, sampling_ratio -1, aligned=False),
    in the boxes' dtype."""
    matched_idxs = matched_idxs.to(boxes)
    rois = torch.cat([matched_idxs[:, None], boxes], dim=1)
    gt_masks = gt_masks[:, None].to(rois)
    return roi_align(gt_masks, rois, (M, M), 1.0)[:, 0]


def maskrcnn_loss(mask_logits: Tensor, proposals: List[Tensor], gt_masks: List[Tensor], gt_labels: List[Tensor],
                  mask_matched_idxs: List[Tensor]) -> Tensor:
    """Mean per-pixel BCE-with-logits of each positive proposal's mask logits for its matched
    ground truth's class against that ground truth's mask projected on the proposal.

    mask_logits: [P, C, M, M] over the positive proposals of every image; proposals: per image
    [P_i, 4]; gt_masks: per image [G_i, H, W]; gt_labels: per image [G_i] int64;
    mask_matched_idxs: per image [P_i] int64 index into that image's ground truths. With no
    positive proposal at all the loss is `mask_logits.sum() * 0`.
    """
    discretization_size = mask_logits.shape[-1]
    labels = [gt_label[idxs] for gt_label, idxs in zip(gt_labels, mask_matched_idxs)]
    mask_targets = [project_masks_on_boxes(m, p, i, discretization_size)
                    for m, p, i in zip(gt_masks, proposals, mask_matched_idxs)]

    labels_cat = torch.cat(labels, dim=0)
    targets_cat = torch.cat(mask_targets, dim=0)

    # binary_cross_entropy_with_logits's mean of an empty tensor is nan: keep the graph instead
    if targets_cat.numel() == 0:
        return mask_logits.sum() * 0

    return F.binary_cross_entropy_with_logits(
        mask_logits[torch.arange(labels_cat.shape[0], device=labels_cat.device), labels_cat], targets_cat)
