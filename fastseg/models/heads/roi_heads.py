"""Mask R-CNN's RoI heads (He et al. 2017) with torchvision's parameter names and behaviour: the
box head (two 1024-d FC layers) and predictor, the mask head (four 3x3 convs, a 2x2 transposed
conv, 1x1 logits), training-sample selection and losses, and inference post-processing through
fastseg's `MultiScaleRoIAlign` and `BatchedNMS`.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ... import nn as fnn
from ..backbones.fpn import rename_legacy_keys
from ..detection.box_coder import BoxCoder, clip_boxes_to_image, remove_small_boxes
from ..detection.losses import fastrcnn_loss, maskrcnn_loss
from ..detection.matching import BalancedPositiveNegativeSampler, Matcher, box_iou


class TwoMLPHead(nn.Module):
    def __init__(self, in_channels: int, representation_size: int = 1024):
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(start_dim=1)))))


class FastRCNNPredictor(nn.Module):
    """Class logits (background = 0) and per-class box deltas."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(1)
        return self.cls_score(x), self.bbox_pred(x)


class MaskRCNNHeads(nn.Sequential):
    """`len(layers)` 3x3 conv + ReLU blocks (`<i>.0` is the conv, torchvision's names; the legacy
    names `mask_fcn<i+1>` load too)."""

    def __init__(self, in_channels: int, layers: Tuple[int, ...] = (256, 256, 256, 256), dilation: int = 1):
        blocks = []
        for width in layers:
            blocks.append(nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=dilation, dilation=dilation),
                                        nn.ReLU(inplace=True)))
            in_channels = width
        super().__init__(*blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for i in range(len(self)):
            rename_legacy_keys(state_dict, prefix, rf"^mask_fcn{i + 1}\.(weight|bias)$", rf"{i}.0.\1")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class MaskRCNNPredictor(nn.Module):
    """2x2 stride-2 transposed conv + ReLU, then 1x1 per-class mask logits."""

    def __init__(self, in_channels: int, dim_reduced: int, num_classes: int):
        super().__init__()
        self.conv5_mask = fnn.ConvTranspose2dCrop(in_channels, dim_reduced, 2, 2)
        self.relu = nn.ReLU(inplace=True)
        self.mask_fcn_logits = nn.Conv2d(dim_reduced, num_classes, 1)
        for m in (self.conv5_mask, self.mask_fcn_logits):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask_fcn_logits(self.relu(self.conv5_mask(x)))

    def class_logits(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """`forward(x)[arange(K), labels][:, None]`, the one class inference keeps per RoI, as a
        dot product per pixel instead of every class's 1x1 convolution (91x fewer multiply-adds
        for COCO; equal up to float rounding)."""
        f = self.relu(self.conv5_mask(x))
        k, c, h, w = f.shape
        weight = self.mask_fcn_logits.weight.reshape(-1, c)[labels]  # [K, C]
        if f.is_contiguous():
            out = torch.bmm(weight.unsqueeze(1), f.reshape(k, c, h * w))  # [K, 1, HW]
        else:  # channels-last: [K, HW, C] is a view
            out = torch.bmm(f.permute(0, 2, 3, 1).reshape(k, h * w, c), weight.unsqueeze(2)).transpose(1, 2)
        if self.mask_fcn_logits.bias is not None:
            # in bmm's dtype (autocast's, as the 1x1 convolution's result would be)
            out = out + self.mask_fcn_logits.bias[labels].reshape(k, 1, 1).to(out.dtype)
        return out.reshape(k, 1, h, w)


class RoIHeads(nn.Module):
    """`forward(features, proposals, image_sizes, targets=None) -> (detections, losses)`."""

    def __init__(self, box_roi_pool: nn.Module, box_head: nn.Module, box_predictor: nn.Module,
                 fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.5, batch_size_per_image: int = 512,
                 positive_fraction: float = 0.25, bbox_reg_weights: Optional[Tuple[float, ...]] = None,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
                 mask_roi_pool: Optional[nn.Module] = None, mask_head: Optional[nn.Module] = None,
                 mask_predictor: Optional[nn.Module] = None):
        super().__init__()
        self.box_roi_pool, self.box_head, self.box_predictor = box_roi_pool, box_head, box_predictor
        self.box_coder = BoxCoder(bbox_reg_weights or (10.0, 10.0, 5.0, 5.0))
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.score_thresh = score_thresh
        self.nms = fnn.BatchedNMS(nms_thresh)
        self.detections_per_img = detections_per_img
        self.mask_roi_pool, self.mask_head, self.mask_predictor = mask_roi_pool, mask_head, mask_predictor
        # Eval: each detection's mask of its class as probabilities ("masks", torchvision's) or as
        # logits ("mask_logits", what the EfficientPS fusion needs: no sigmoid round trip).
        self.mask_output = "masks"

    @property
    def nms_thresh(self) -> float:
        return self.nms.iou_threshold

    def has_mask(self) -> bool:
        return self.mask_roi_pool is not None and self.mask_head is not None and self.mask_predictor is not None

    def select_training_samples(self, proposals: List[torch.Tensor], targets: List[Dict[str, torch.Tensor]]):
        """Add the gt boxes to the proposals, match, sample; returns the sampled proposals, their
        matched gt indices, class labels (0 background) and regression targets."""
        dtype = proposals[0].dtype
        gt_boxes = [t["boxes"].to(dtype) for t in targets]
        proposals = [torch.cat((p, g)) for p, g in zip(proposals, gt_boxes)]
        matched_idxs, labels = [], []
        for p, g, t in zip(proposals, gt_boxes, targets):
            if g.numel() == 0:
                matched_idxs.append(torch.zeros((p.shape[0],), dtype=torch.int64, device=p.device))
                labels.append(torch.zeros((p.shape[0],), dtype=torch.int64, device=p.device))
                continue
            idx = self.proposal_matcher(box_iou(g, p))
            clamped = idx.clamp(min=0)
            lab = t["labels"][clamped].to(torch.int64)
            lab[idx == Matcher.BELOW_LOW_THRESHOLD] = 0
            lab[idx == Matcher.BETWEEN_THRESHOLDS] = -1
            matched_idxs.append(clamped)
            labels.append(lab)
        pos, neg = self.fg_bg_sampler(labels)
        matched_gt = []
        for i in range(len(proposals)):
            keep = torch.where(pos[i] | neg[i])[0]
            proposals[i], labels[i], matched_idxs[i] = proposals[i][keep], labels[i][keep], matched_idxs[i][keep]
            g = gt_boxes[i] if gt_boxes[i].numel() else torch.zeros((1, 4), dtype=dtype, device=proposals[i].device)
            matched_gt.append(g[matched_idxs[i]])
        return proposals, matched_idxs, labels, self.box_coder.encode(matched_gt, proposals)

    def postprocess_detections(self, class_logits: torch.Tensor, box_regression: torch.Tensor,
                               proposals: List[torch.Tensor], image_sizes: List[Tuple[int, int]]):
        """torchvision's post-processing (softmax, decode, clip, score filter, small-box removal,
        per-class NMS, top detections_per_img), in a cheaper order: the score filter first, then
        only the surviving (proposal, class) pairs are decoded. torchvision decodes all
        proposals x classes boxes (91,000 for COCO) and keeps ~1 % of them; the per-box arithmetic
        is the same, and the candidates keep torchvision's (proposal, class) order for NMS ties."""
        num_classes = class_logits.shape[-1]
        counts = [p.shape[0] for p in proposals]
        scores_all = F.softmax(class_logits, -1).split(counts, 0)
        codes_all = box_regression.reshape(box_regression.shape[0], num_classes, 4).split(counts, 0)
        out = []
        for scores, codes, ref, size in zip(scores_all, codes_all, proposals, image_sizes):
            # Background (column 0) is never a candidate.
            rows, cols = torch.where(scores[:, 1:] > self.score_thresh)
            labels = cols + 1
            boxes = clip_boxes_to_image(self.box_coder.decode_single(codes[rows, labels], ref[rows]), size)
            scores = scores[rows, labels]
            keep = remove_small_boxes(boxes, 1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = self.nms(boxes, scores, labels)[:self.detections_per_img]
            out.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]})
        return out

    def forward(self, features: Dict[str, torch.Tensor], proposals: List[torch.Tensor],
                image_sizes: List[Tuple[int, int]], targets: Optional[List[Dict[str, torch.Tensor]]] = None):
        if self.training:
            if targets is None:
                raise ValueError("fastseg.models.MaskRCNN: targets are needed in training mode")
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        x = self.box_head(self.box_roi_pool(features, proposals, image_sizes))
        class_logits, box_regression = self.box_predictor(x)
        losses: Dict[str, torch.Tensor] = {}
        result: List[Dict[str, torch.Tensor]] = []
        if self.training:
            loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        else:
            result = self.postprocess_detections(class_logits, box_regression, proposals, image_sizes)
        if not self.has_mask():
            return result, losses
        if self.training:
            positive = [torch.where(lab > 0)[0] for lab in labels]
            mask_proposals = [p[i] for p, i in zip(proposals, positive)]
            pos_matched = [m[i] for m, i in zip(matched_idxs, positive)]
        else:
            mask_proposals = [r["boxes"] for r in result]
        mask_features = self.mask_head(self.mask_roi_pool(features, mask_proposals, image_sizes))
        if self.training:
            losses["loss_mask"] = maskrcnn_loss(self.mask_predictor(mask_features), mask_proposals,
                                                [t["masks"] for t in targets], [t["labels"] for t in targets],
                                                pos_matched)
        else:
            labels = torch.cat([r["labels"] for r in result])
            if isinstance(self.mask_predictor, MaskRCNNPredictor):  # only the labels' logits
                logits = self.mask_predictor.class_logits(mask_features, labels)
            else:  # a user's predictor: every class, then the labels' channels
                mask_logits = self.mask_predictor(mask_features)
                logits = mask_logits[torch.arange(labels.shape[0], device=labels.device), labels][:, None]
            out = logits if self.mask_output == "mask_logits" else logits.sigmoid()
            for r, p in zip(result, out.split([r["labels"].shape[0] for r in result], 0)):
                r[self.mask_output] = p
        return result, losses
