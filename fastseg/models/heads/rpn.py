"""Region Proposal Network (Ren et al. 2015) over FPN levels, torchvision's parameter names and
behaviour: anchors per level, a shared 3x3 conv head, top-n per level, clip, small-box removal,
per-level NMS (fastseg's `BatchedNMS`, the levels as categories), post-NMS top-n.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ... import nn as fnn
from ..backbones.fpn import rename_legacy_keys
from ..detection.box_coder import BoxCoder, clip_boxes_to_image, remove_small_boxes
from ..detection.losses import rpn_losses
from ..detection.matching import BalancedPositiveNegativeSampler, Matcher, box_iou
from ..detection.transform import ImageList


class AnchorGenerator(nn.Module):
    """Anchors of every level: `sizes[l]` x `aspect_ratios[l]` (h / w) cell anchors, rounded,
    centred on each feature cell's top-left corner in image coordinates."""

    def __init__(self, sizes: Sequence[Sequence[int]] = ((32,), (64,), (128,), (256,), (512,)),
                 aspect_ratios: Sequence[Sequence[float]] = ((0.5, 1.0, 2.0),) * 5):
        super().__init__()
        if len(sizes) != len(aspect_ratios):
            raise ValueError(f"fastseg.models.AnchorGenerator: sizes and aspect_ratios need one entry per level, "
                             f"got {len(sizes)} and {len(aspect_ratios)}")
        self.sizes, self.aspect_ratios = tuple(map(tuple, sizes)), tuple(map(tuple, aspect_ratios))

    def num_anchors_per_location(self) -> List[int]:
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios)]

    @staticmethod
    def cell_anchors(sizes, aspect_ratios, dtype, device) -> torch.Tensor:
        scales = torch.as_tensor(sizes, dtype=dtype, device=device)
        h_ratios = torch.sqrt(torch.as_tensor(aspect_ratios, dtype=dtype, device=device))
        ws = (1 / h_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()

    def forward(self, images: ImageList, features: List[torch.Tensor]) -> List[torch.Tensor]:
        ih, iw = images.tensors.shape[-2:]
        dtype, device = features[0].dtype, features[0].device
        levels = []
        for f, sizes, ratios in zip(features, self.sizes, self.aspect_ratios):
            gh, gw = f.shape[-2:]
            sy, sx = ih // gh, iw // gw
            shift_y, shift_x = torch.meshgrid(torch.arange(gh, device=device) * sy,
                                              torch.arange(gw, device=device) * sx, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            base = self.cell_anchors(sizes, ratios, dtype, device)
            levels.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))
        anchors = torch.cat(levels)
        return [anchors for _ in images.image_sizes]


class RPNHead(nn.Module):
    """3x3 conv + ReLU shared by all levels, then 1x1 objectness (A) and box deltas (4A)."""

    def __init__(self, in_channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1),
                                                nn.ReLU(inplace=True)))
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        rename_legacy_keys(state_dict, prefix, r"^conv\.(weight|bias)$", r"conv.0.0.\1")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, features: List[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        logits, deltas = [], []
        for f in features:
            t = self.conv(f)
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


def flatten_levels(logits: List[torch.Tensor], deltas: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-level [N, A*C, H, W] maps -> [N * sum(H W A), C] and [N * sum(H W A), 4], anchors in
    (level, y, x, a) order like the AnchorGenerator's."""
    out_logits, out_deltas = [], []
    for lg, dl in zip(logits, deltas):
        n, ac, h, w = lg.shape
        a = dl.shape[1] // 4
        out_logits.append(lg.view(n, a, ac // a, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, ac // a))
        out_deltas.append(dl.view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
    return torch.cat(out_logits, 1).flatten(0, -2), torch.cat(out_deltas, 1).reshape(-1, 4)


class RegionProposalNetwork(nn.Module):
    """`forward(images: ImageList, features: OrderedDict, targets=None) -> (proposals, losses)`;
    proposals a list of [P_i, 4] boxes; losses `loss_objectness`, `loss_rpn_box_reg` in
    training. `pre_nms_top_n` / `post_nms_top_n` are dicts {"training": n, "testing": n}."""

    def __init__(self, anchor_generator: AnchorGenerator, head: nn.Module, fg_iou_thresh: float = 0.7,
                 bg_iou_thresh: float = 0.3, batch_size_per_image: int = 256, positive_fraction: float = 0.5,
                 pre_nms_top_n: Optional[Dict[str, int]] = None, post_nms_top_n: Optional[Dict[str, int]] = None,
                 nms_thresh: float = 0.7, score_thresh: float = 0.0):
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self._pre_nms_top_n = dict(pre_nms_top_n or {"training": 2000, "testing": 1000})
        self._post_nms_top_n = dict(post_nms_top_n or {"training": 2000, "testing": 1000})
        self.nms = fnn.BatchedNMS(nms_thresh)
        self.score_thresh = score_thresh
        self.min_size = 1e-3

    def pre_nms_top_n(self) -> int:
        return self._pre_nms_top_n["training" if self.training else "testing"]

    def post_nms_top_n(self) -> int:
        return self._post_nms_top_n["training" if self.training else "testing"]

    def filter_proposals(self, proposals: torch.Tensor, objectness: torch.Tensor, image_sizes, per_level: List[int]):
        n = proposals.shape[0]
        objectness = objectness.detach().reshape(n, -1)
        levels = torch.cat([torch.full((k,), i, dtype=torch.int64, device=proposals.device)
                            for i, k in enumerate(per_level)])
        top, offset = [], 0
        for ob in objectness.split(per_level, 1):
            top.append(ob.topk(min(self.pre_nms_top_n(), ob.shape[1]), dim=1)[1] + offset)
            offset += ob.shape[1]
        top_idx = torch.cat(top, 1)
        batch_idx = torch.arange(n, device=proposals.device)[:, None]
        scores = torch.sigmoid(objectness[batch_idx, top_idx])
        levels, proposals = levels[top_idx], proposals[batch_idx, top_idx]
        out_boxes, out_scores = [], []
        for boxes, sc, lvl, size in zip(proposals, scores, levels, image_sizes):
            boxes = clip_boxes_to_image(boxes, size)
            keep = remove_small_boxes(boxes, self.min_size)
            boxes, sc, lvl = boxes[keep], sc[keep], lvl[keep]
            keep = torch.where(sc >= self.score_thresh)[0]
            boxes, sc, lvl = boxes[keep], sc[keep], lvl[keep]
            keep = self.nms(boxes, sc, lvl)[:self.post_nms_top_n()]
            out_boxes.append(boxes[keep])
            out_scores.append(sc[keep])
        return out_boxes, out_scores

    def assign_targets(self, anchors: List[torch.Tensor], targets: List[Dict[str, torch.Tensor]]):
        """Per image: anchor labels (1 object, 0 background, -1 ignored) and matched gt boxes."""
        labels, matched = [], []
        for a, t in zip(anchors, targets):
            gt = t["boxes"]
            if gt.numel() == 0:
                matched.append(torch.zeros(a.shape, dtype=torch.float32, device=a.device))
                labels.append(torch.zeros((a.shape[0],), dtype=torch.float32, device=a.device))
                continue
            idx = self.proposal_matcher(box_iou(gt, a))
            matched.append(gt[idx.clamp(min=0)])
            lab = (idx >= 0).to(torch.float32)
            lab[idx == Matcher.BELOW_LOW_THRESHOLD] = 0.0
            lab[idx == Matcher.BETWEEN_THRESHOLDS] = -1.0
            labels.append(lab)
        return labels, matched

    def forward(self, images: ImageList, features: Dict[str, torch.Tensor],
                targets: Optional[List[Dict[str, torch.Tensor]]] = None):
        feats = list(features.values())
        logits, deltas = self.head(feats)
        anchors = self.anchor_generator(images, feats)
        per_level = [int(lg.shape[1] * lg.shape[2] * lg.shape[3]) for lg in logits]
        objectness, deltas = flatten_levels(logits, deltas)
        proposals = self.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
        boxes, _ = self.filter_proposals(proposals, objectness, images.image_sizes, per_level)
        losses: Dict[str, torch.Tensor] = {}
        if self.training:
            if targets is None:
                raise ValueError("fastseg.models.MaskRCNN: targets are needed in training mode")
            labels, matched = self.assign_targets(anchors, targets)
            regression_targets = self.box_coder.encode(matched, anchors)
            loss_obj, loss_box = rpn_losses(objectness, deltas, labels, regression_targets, self.fg_bg_sampler)
            losses = {"loss_objectness": loss_obj, "loss_rpn_box_reg": loss_box}
        return boxes, losses
