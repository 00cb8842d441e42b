"""EfficientPS (Mohan & Valada, "EfficientPS: Efficient Panoptic Segmentation", IJCV 2021) on
fastseg's layers: an EfficientNet backbone (no squeeze-and-excitation, BN + leaky ReLU), the
2-way FPN, the semantic head (DPC, LSFE, MC), a Mask R-CNN instance head with separable
convolutions in the RPN and mask head, and the EfficientPS fusion.

Classes are numbered stuff first (0 .. num_stuff - 1), then things. Input: a list of [3, H, W]
float images in [0, 1], any size (padded to a multiple of 32 inside, outputs cropped back; no
resizing). Training targets: one dict per image with `boxes`, `labels` (class ids, things only),
`masks` [K, H, W] and `semantic` [H, W] (255 ignored): `SyntheticScenes`' format. Training
returns the loss dict (`loss_semantic` and Mask R-CNN's five losses, every head always reaching
the loss); eval returns one `(panoptic [H, W] int32, segments_info)` per image (fastseg's
panoptic conventions: 0 void, `category_id` the class id).

Where the paper and the official code differ, this implementation follows the paper: separable
3x3 output convolutions in the 2-way FPN, mask logits fused unscaled (`mask_logit_scale=1`; the
official code multiplies them by 4), and stuff segments under `stuff_area_threshold` = 2048
pixels become void (the official default; detectron2 uses 4096).
"""
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from .. import nn as fnn
from ..data.collate import semantic_batch
from ..losses import ohem_cross_entropy
from .backbones.efficientnet import EfficientNetBackbone
from .backbones.two_way_fpn import TwoWayFPN
from .blocks import RoIBatchNorm2d, SeparableConvBNAct
from .detection.transform import DetectionTransform
from .heads.roi_heads import FastRCNNPredictor, MaskRCNNPredictor, RoIHeads, TwoMLPHead
from .heads.rpn import AnchorGenerator, RegionProposalNetwork, RPNHead
from .heads.semantic_head import SemanticHead

SEGMENTS_FORMATS = ("info", "tensor")


class PadTransform(DetectionTransform):
    """Normalise each image and pad the batch to a multiple of `size_divisible`; no resizing."""

    def __init__(self, image_mean: Sequence[float] = (0.485, 0.456, 0.406),
                 image_std: Sequence[float] = (0.229, 0.224, 0.225), size_divisible: int = 32):
        super().__init__(1, 1, image_mean, image_std, size_divisible)

    def resize(self, image: torch.Tensor, target: Optional[Dict[str, torch.Tensor]]):
        return image, target

    def extra_repr(self) -> str:
        return f"mean={self.image_mean}, std={self.image_std}, size_divisible={self.size_divisible}"


class SeparableRPNHead(RPNHead):
    """torchvision's RPN head (parameter names `conv`, `cls_logits`, `bbox_pred`) with a 3x3
    separable convolution + BN + leaky ReLU as the shared convolution."""

    def __init__(self, in_channels: int, num_anchors: int):
        super().__init__(in_channels, num_anchors)
        self.conv = SeparableConvBNAct(in_channels, in_channels, 3)


class SeparableMaskHead(nn.Sequential):
    """Mask R-CNN's four 3x3 convolutions as separable convolutions + BN + leaky ReLU (the BN in
    the export-friendly form for a data-dependent number of RoIs)."""

    def __init__(self, in_channels: int, layers: Sequence[int] = (256, 256, 256, 256)):
        blocks = []
        for width in layers:
            blocks.append(SeparableConvBNAct(in_channels, width, 3, norm_layer=RoIBatchNorm2d))
            in_channels = width
        super().__init__(*blocks)


class EfficientPS(nn.Module):
    """`EfficientPS(backbone, num_stuff, num_things, *, fpn=None, semantic_head=None, rpn=None,
    roi_heads=None, fusion=None, ...)`: `backbone` returns an OrderedDict of four feature maps
    (strides 4, 8, 16, 32) and has `out_channels_list`; parts not given are built as the paper's.
    The fusion's thresholds (`score_threshold`, `overlap_threshold`, `stuff_area_threshold`) and
    `mask_logit_scale` are the paper's by default; `segments_format="tensor"` makes eval return
    `(panoptic, segments [S, 3])` instead of segments_info (for torch.export). The RPN and box
    head take torchvision's keyword names (`rpn_pre_nms_top_n_test`, `box_detections_per_img`, ...).
    """

    def __init__(self, backbone: nn.Module, num_stuff: int, num_things: int, *, fpn: Optional[nn.Module] = None,
                 semantic_head: Optional[nn.Module] = None, rpn: Optional[nn.Module] = None,
                 roi_heads: Optional[nn.Module] = None, fusion: Optional[nn.Module] = None,
                 transform: Optional[nn.Module] = None, fpn_channels: int = 256, semantic_channels: int = 128,
                 representation_size: int = 1024, score_threshold: float = 0.5, overlap_threshold: float = 0.5,
                 stuff_area_threshold: int = 2048, mask_logit_scale: float = 1.0, ignore_index: int = 255,
                 ohem_fraction: float = 0.25, rpn_pre_nms_top_n_train: int = 2000, rpn_pre_nms_top_n_test: int = 1000,
                 rpn_post_nms_top_n_train: int = 2000, rpn_post_nms_top_n_test: int = 1000,
                 rpn_nms_thresh: float = 0.7, box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5,
                 box_detections_per_img: int = 100, box_batch_size_per_image: int = 512,
                 rpn_batch_size_per_image: int = 256, segments_format: str = "info"):
        super().__init__()
        for name, v, lo in (("num_stuff", num_stuff, 0), ("num_things", num_things, 1)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"fastseg.models.EfficientPS: {name} must be an int >= {lo}, got {v!r}")
        if not hasattr(backbone, "out_channels_list"):
            raise ValueError("fastseg.models.EfficientPS: backbone must have an out_channels_list attribute")
        if segments_format not in SEGMENTS_FORMATS:
            raise ValueError(f"fastseg.models.EfficientPS: segments_format must be one of {SEGMENTS_FORMATS}, "
                             f"got {segments_format!r}")
        self.num_stuff, self.num_things = num_stuff, num_things
        self.ignore_index, self.ohem_fraction = ignore_index, ohem_fraction
        self.mask_logit_scale = float(mask_logit_scale)
        c = fpn_channels
        self.transform = transform or PadTransform()
        self.backbone = backbone
        self.fpn = fpn or TwoWayFPN(backbone.out_channels_list, c)
        self.semantic_head = semantic_head or SemanticHead(num_stuff + num_things, c, semantic_channels)
        if rpn is None:
            anchors = AnchorGenerator(((32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 4)
            rpn = RegionProposalNetwork(
                anchors, SeparableRPNHead(c, anchors.num_anchors_per_location()[0]), 0.7, 0.3,
                rpn_batch_size_per_image, 0.5,
                {"training": rpn_pre_nms_top_n_train, "testing": rpn_pre_nms_top_n_test},
                {"training": rpn_post_nms_top_n_train, "testing": rpn_post_nms_top_n_test}, rpn_nms_thresh)
        self.rpn = rpn
        if roi_heads is None:
            levels = ["0", "1", "2", "3"]
            roi_heads = RoIHeads(
                fnn.MultiScaleRoIAlign(levels, 7, 2), TwoMLPHead(c * 7 * 7, representation_size),
                FastRCNNPredictor(representation_size, num_things + 1), 0.5, 0.5, box_batch_size_per_image, 0.25,
                None, box_score_thresh, box_nms_thresh, box_detections_per_img,
                fnn.MultiScaleRoIAlign(levels, 14, 2), SeparableMaskHead(c, (c,) * 4),
                MaskRCNNPredictor(c, c, num_things + 1))
        roi_heads.mask_output = "mask_logits"
        self.roi_heads = roi_heads
        self.fusion = fusion or fnn.PanopticFusionEfficientPS(range(num_stuff), score_threshold, overlap_threshold,
                                                              stuff_area_threshold, segments_format)

    # ------------------------------------------------------------------ inputs
    def _check(self, images, targets) -> None:
        name = "fastseg.models.EfficientPS"
        if not isinstance(images, (list, tuple)) or not images or \
                not all(isinstance(im, torch.Tensor) for im in images):
            raise TypeError(f"{name}: images must be a non-empty list of [3, H, W] tensors")
        for i, im in enumerate(images):
            if im.dim() != 3 or not im.is_floating_point() or im.shape[-1] == 0 or im.shape[-2] == 0:
                raise ValueError(f"{name}: images[{i}] must be a non-empty float [C, H, W] tensor, got "
                                 f"{im.dtype} {tuple(im.shape)}")
        if not self.training:
            return
        if targets is None or len(targets) != len(images):
            raise ValueError(f"{name}: training needs one target dict per image")
        for i, (im, t) in enumerate(zip(images, targets)):
            for key in ("boxes", "labels", "masks", "semantic"):
                if key not in t:
                    raise ValueError(f"{name}: targets[{i}] has no {key!r}")
            if tuple(t["semantic"].shape) != tuple(im.shape[-2:]):
                raise ValueError(f"{name}: targets[{i}]['semantic'] must be [H, W] = {tuple(im.shape[-2:])}, got "
                                 f"{tuple(t['semantic'].shape)}")
            labels = t["labels"]
            if labels.numel() and not bool(((labels >= self.num_stuff) &
                                            (labels < self.num_stuff + self.num_things)).all()):
                raise ValueError(f"{name}: targets[{i}]['labels'] must be thing class ids in "
                                 f"[{self.num_stuff}, {self.num_stuff + self.num_things}), got {labels.tolist()}")
            b = t["boxes"]
            if b.dim() != 2 or b.shape[-1] != 4 or not b.is_floating_point() or b.shape[0] != labels.shape[0]:
                raise ValueError(f"{name}: targets[{i}]['boxes'] must be float [K, 4] with K = len(labels), got "
                                 f"{b.dtype} {tuple(b.shape)}")

    def _instance_targets(self, targets: List[Dict[str, torch.Tensor]]) -> List[Dict[str, torch.Tensor]]:
        """Things renumbered 1..T for the detector (0 is its background), uint8 masks."""
        return [{"boxes": t["boxes"], "labels": t["labels"].long() - self.num_stuff + 1,
                 "masks": t["masks"].to(torch.uint8)} for t in targets]

    # ------------------------------------------------------------------ forward
    def forward(self, images: List[torch.Tensor], targets: Optional[List[Dict[str, torch.Tensor]]] = None,
                return_extras: bool = False):
        """Training: the loss dict. Eval: one `(panoptic, segments_info)` per image (with
        `segments_format="tensor"`, `(panoptic, segments [S, 3] int64)`: instance index into the
        detections or -1, category id, area; what `torch.export` takes); with `return_extras=True` also a list of per-image
        dicts with the cropped `semantic_logits` [C, H, W] and the detections (`boxes`, `labels`
        (class ids), `scores`, `mask_logits` [K, 1, 28, 28])."""
        self._check(images, targets)
        batch, _ = self.transform(images, None)
        features = self.fpn(self.backbone(batch.tensors))
        semantic = self.semantic_head(features, batch.tensors.shape[-2:])
        det_targets = self._instance_targets(targets) if self.training else None
        proposals, rpn_losses = self.rpn(batch, features, det_targets)
        detections, head_losses = self.roi_heads(features, proposals, batch.image_sizes, det_targets)
        if self.training:
            target = semantic_batch(targets, tuple(semantic.shape[-2:])).to(semantic.device)
            loss = ohem_cross_entropy(semantic, target, self.ignore_index, self.ohem_fraction)
            return {"loss_semantic": loss, **head_losses, **rpn_losses}
        results, extras = [], []
        for i, (h, w) in enumerate(batch.image_sizes):
            logits = semantic[i, :, :h, :w]
            d = detections[i]
            labels = d["labels"] + (self.num_stuff - 1)  # detector classes -> semantic channels
            mask_logits = d["mask_logits"][:, 0] * self.mask_logit_scale
            results.append(self.fusion(logits, mask_logits, d["boxes"], d["scores"], labels))
            extras.append({"semantic_logits": logits, "boxes": d["boxes"], "labels": labels, "scores": d["scores"],
                           "mask_logits": d["mask_logits"]})
        return (results, extras) if return_extras else results


def _backbone(backbone) -> nn.Module:
    if isinstance(backbone, nn.Module):
        return backbone
    if isinstance(backbone, str) and backbone.startswith("efficientnet_"):
        return EfficientNetBackbone(backbone[len("efficientnet_"):])
    raise ValueError(f"fastseg.models.efficientps: backbone must be 'efficientnet_b0' .. 'efficientnet_b7' or a "
                     f"module, got {backbone!r}")


def efficientps(*, num_stuff: int, num_things: int, backbone="efficientnet_b0", weights=None,
                backbone_weights=None, reference: bool = False, **kwargs) -> EfficientPS:
    """EfficientPS with an EfficientNet backbone (B0 by default, for CPUs; `"efficientnet_b5"` as
    in the paper). `weights`: a state dict of this model (or a path to one); `backbone_weights`:
    a torchvision EfficientNet state dict (or path), loaded into the backbone with the
    squeeze-and-excitation and classifier parameters skipped (nothing downloads). `kwargs` go to
    `EfficientPS` (`fpn_channels`, `semantic_channels`, `representation_size` shrink it for tests
    and CPU training)."""
    if not isinstance(reference, bool):
        raise TypeError(f"fastseg.models.efficientps: reference must be a bool, got {type(reference).__name__}")
    model = EfficientPS(_backbone(backbone), num_stuff, num_things, **kwargs)
    if backbone_weights is not None:
        model.backbone.load_torchvision_state_dict(_state_dict(backbone_weights))
    if weights is not None:
        model.load_state_dict(_state_dict(weights), strict=True)
    return fnn.set_reference(model, reference)


def _state_dict(weights) -> Dict[str, torch.Tensor]:
    if isinstance(weights, (str, bytes)) or hasattr(weights, "__fspath__"):
        weights = torch.load(weights, map_location="cpu", weights_only=True)
    if not isinstance(weights, dict):
        raise TypeError(f"fastseg.models.efficientps: weights must be a path or a state dict, got "
                        f"{type(weights).__name__}")
    return weights
