"""Mask R-CNN (He et al. 2017) on fastseg's layers, composed and named like torchvision's
`MaskRCNN(backbone, num_classes, ...)`: its state dicts load with `strict=True` and, on the same
weights and image, eval outputs equal torchvision's to float rounding.

RoI features go through `fastseg.nn.MultiScaleRoIAlign`, proposals and detections through
`fastseg.nn.BatchedNMS`, masks through `fastseg.nn.PasteMasksInImage` (or `PasteMasks`), the mask
head's upsampling through `ConvTranspose2dCrop`; `reference=True` runs those layers' plain-PyTorch
forms (the twin). Input: a list of [3, H, W] float images in [0, 1]. Output in training: the loss
dict (`loss_classifier`, `loss_box_reg`, `loss_mask`, `loss_objectness`, `loss_rpn_box_reg`); in
eval: one dict per image with `boxes` [N, 4], `labels` [N], `scores` [N] and `masks`:
- `mask_format="float"` (torchvision's): [N, 1, H, W] probabilities pasted into the image;
- `mask_format="bool"`: [N, 1, H, W] bool, pasted and thresholded at 0.5 in one kernel (no float
  image-sized temporary; detectron2's sub-pixel paste, so a few border pixels can differ from
  torchvision's `masks > 0.5`);
- `mask_format="per_box"`: the [N, 1, 28, 28] probabilities in each box, for the user to paste.
In eval on CPU the forward runs inside `fastseg.memory.cpu_pool()` (large feature maps reuse the
last call's memory; `cpu_pool=False`, or the attribute, turns that off for this model).
"""
from typing import Dict, List, Optional

import torch
from torch import nn

from .. import memory, nn as fnn
from .backbones.fpn import BackboneWithFPN
from .backbones.resnet import FrozenBatchNorm2d, ResNet
from .detection.transform import DetectionTransform
from .heads.roi_heads import FastRCNNPredictor, MaskRCNNHeads, MaskRCNNPredictor, RoIHeads, TwoMLPHead
from .heads.rpn import AnchorGenerator, RegionProposalNetwork, RPNHead

MASK_FORMATS = ("float", "bool", "per_box")


class MaskRCNN(nn.Module):
    """`MaskRCNN(backbone, num_classes, *, rpn=None, roi_heads=None, transform=None, **kwargs)`:
    `backbone` returns an OrderedDict of feature maps and has `out_channels`; parts not given are
    built from torchvision's keyword arguments (`min_size`, `rpn_pre_nms_top_n_test`,
    `box_score_thresh`, `rpn_head`, `box_predictor`, `mask_head`, ...; same defaults)."""

    def __init__(self, backbone: nn.Module, num_classes: Optional[int] = None, *, rpn: Optional[nn.Module] = None,
                 roi_heads: Optional[nn.Module] = None, transform: Optional[nn.Module] = None,
                 mask_format: str = "float", cpu_pool: bool = True,
                 min_size=800, max_size: int = 1333, image_mean=None, image_std=None,
                 rpn_anchor_generator=None, rpn_head=None, rpn_pre_nms_top_n_train: int = 2000,
                 rpn_pre_nms_top_n_test: int = 1000, rpn_post_nms_top_n_train: int = 2000,
                 rpn_post_nms_top_n_test: int = 1000, rpn_nms_thresh: float = 0.7, rpn_fg_iou_thresh: float = 0.7,
                 rpn_bg_iou_thresh: float = 0.3, rpn_batch_size_per_image: int = 256,
                 rpn_positive_fraction: float = 0.5, rpn_score_thresh: float = 0.0,
                 box_roi_pool=None, box_head=None, box_predictor=None, box_score_thresh: float = 0.05,
                 box_nms_thresh: float = 0.5, box_detections_per_img: int = 100, box_fg_iou_thresh: float = 0.5,
                 box_bg_iou_thresh: float = 0.5, box_batch_size_per_image: int = 512,
                 box_positive_fraction: float = 0.25, bbox_reg_weights=None,
                 mask_roi_pool=None, mask_head=None, mask_predictor=None, representation_size: int = 1024,
                 size_divisible: int = 32, fixed_size=None):
        super().__init__()
        if not hasattr(backbone, "out_channels"):
            raise ValueError("fastseg.models.MaskRCNN: backbone must have an out_channels attribute")
        if mask_format not in MASK_FORMATS:
            raise ValueError(f"fastseg.models.MaskRCNN: mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
        if (num_classes is None) == (box_predictor is None and roi_heads is None):
            raise ValueError("fastseg.models.MaskRCNN: give num_classes, or box_predictor/roi_heads, not both")
        c = backbone.out_channels
        self.backbone = backbone
        if rpn is None:
            anchors = rpn_anchor_generator or AnchorGenerator()
            rpn = RegionProposalNetwork(
                anchors, rpn_head or RPNHead(c, anchors.num_anchors_per_location()[0]), rpn_fg_iou_thresh,
                rpn_bg_iou_thresh, rpn_batch_size_per_image, rpn_positive_fraction,
                {"training": rpn_pre_nms_top_n_train, "testing": rpn_pre_nms_top_n_test},
                {"training": rpn_post_nms_top_n_train, "testing": rpn_post_nms_top_n_test}, rpn_nms_thresh,
                rpn_score_thresh)
        self.rpn = rpn
        if roi_heads is None:
            levels = ["0", "1", "2", "3"]
            roi_heads = RoIHeads(
                box_roi_pool or fnn.MultiScaleRoIAlign(levels, 7, 2),
                box_head or TwoMLPHead(c * 7 * 7, representation_size),
                box_predictor or FastRCNNPredictor(representation_size, num_classes),
                box_fg_iou_thresh, box_bg_iou_thresh, box_batch_size_per_image, box_positive_fraction,
                bbox_reg_weights, box_score_thresh, box_nms_thresh, box_detections_per_img,
                mask_roi_pool or fnn.MultiScaleRoIAlign(levels, 14, 2),
                mask_head or MaskRCNNHeads(c, (c,) * 4),
                mask_predictor or MaskRCNNPredictor(c, c, num_classes))
        self.roi_heads = roi_heads
        self.transform = transform or DetectionTransform(
            min_size, max_size, image_mean or (0.485, 0.456, 0.406), image_std or (0.229, 0.224, 0.225),
            size_divisible, fixed_size)
        self.mask_format = mask_format
        self.cpu_pool = cpu_pool
        self.paste = fnn.PasteMasksInImage(1)
        self.paste_bool = fnn.PasteMasks(0.5)

    def _paste(self, masks: torch.Tensor, boxes: torch.Tensor, size) -> torch.Tensor:
        if self.mask_format not in MASK_FORMATS:
            raise ValueError(f"fastseg.models.MaskRCNN: mask_format must be one of {MASK_FORMATS}, "
                             f"got {self.mask_format!r}")
        if self.mask_format == "per_box":
            return masks
        if self.mask_format == "bool":
            return self.paste_bool(masks, boxes, size)[:, None]
        return self.paste(masks, boxes, size)

    @staticmethod
    def _check(images, targets, training: bool) -> None:
        if not isinstance(images, (list, tuple)) or not all(isinstance(im, torch.Tensor) for im in images):
            raise TypeError("fastseg.models.MaskRCNN: images must be a list of [3, H, W] tensors")
        for i, im in enumerate(images):
            if im.dim() != 3 or not im.is_floating_point():
                raise ValueError(f"fastseg.models.MaskRCNN: images[{i}] must be a float [C, H, W] tensor, got "
                                 f"{im.dtype} {tuple(im.shape)}")
            if im.shape[-1] == 0 or im.shape[-2] == 0:
                raise ValueError(f"fastseg.models.MaskRCNN: images[{i}] is empty ({tuple(im.shape)})")
        if not training:
            return
        if targets is None or len(targets) != len(images):
            raise ValueError("fastseg.models.MaskRCNN: training needs one target dict per image")
        for i, t in enumerate(targets):
            for key in ("boxes", "labels", "masks"):
                if key not in t:
                    raise ValueError(f"fastseg.models.MaskRCNN: targets[{i}] has no {key!r}")
            b = t["boxes"]
            if b.dim() != 2 or b.shape[-1] != 4 or not b.is_floating_point():
                raise ValueError(f"fastseg.models.MaskRCNN: targets[{i}]['boxes'] must be float [N, 4], "
                                 f"got {b.dtype} {tuple(b.shape)}")
            if b.numel() and not bool(((b[:, 2:] > b[:, :2]).all())):
                raise ValueError(f"fastseg.models.MaskRCNN: targets[{i}]['boxes'] need positive width and height "
                                 "(x2 > x1, y2 > y1)")

    def forward(self, images: List[torch.Tensor], targets: Optional[List[Dict[str, torch.Tensor]]] = None):
        self._check(images, targets, self.training)
        if self.cpu_pool and not self.training and memory.pool_applies(images):
            # Eager CPU inference: feature maps reuse the pages of the last call's (fastseg.memory).
            with memory.cpu_pool():
                return self._forward(images, targets)
        return self._forward(images, targets)

    def _forward(self, images: List[torch.Tensor], targets: Optional[List[Dict[str, torch.Tensor]]]):
        original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        batch, targets = self.transform(images, targets)
        features = self.backbone(batch.tensors)
        proposals, rpn_losses = self.rpn(batch, features, targets)
        detections, head_losses = self.roi_heads(features, proposals, batch.image_sizes, targets)
        if self.training:
            return {**head_losses, **rpn_losses}
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes, self._paste)


def _load(model: nn.Module, weights) -> None:
    if weights is None:
        return
    if isinstance(weights, (str, bytes)) or hasattr(weights, "__fspath__"):
        weights = torch.load(weights, map_location="cpu", weights_only=True)
    if not isinstance(weights, dict):
        raise TypeError(f"fastseg.models.maskrcnn: weights must be a path or a state dict, got {type(weights).__name__}")
    model.load_state_dict(weights, strict=True)


def maskrcnn_resnet_fpn(*, num_classes: int = 91, depth: int = 50, width: int = 64, fpn_channels: int = 256,
                        representation_size: int = 1024, weights=None, trainable_backbone_layers: Optional[int] = None,
                        norm_layer=None, fast_backbone: bool = False, reference: bool = False, **kwargs) -> MaskRCNN:
    """Mask R-CNN with a ResNet-`depth` + FPN backbone; `width`, `fpn_channels` and
    `representation_size` shrink it (tests and CPU training use e.g. depth=18, width=16,
    fpn_channels=32, representation_size=128, min_size=128). `weights`: a torchvision-layout
    state dict or a path to one (nothing downloads). Like torchvision, with weights the backbone
    uses FrozenBatchNorm2d and trains its last 3 stages; without, BatchNorm2d and all 5.
    Default: torchvision's arithmetic operation for operation up to the masks (equal boxes,
    scores and labels); the mask logits are computed for each detection's label only (a
    per-pixel dot product instead of all classes' 1x1 convolution), equal up to float rounding.
    `fast_backbone=True` folds frozen / eval-mode batch norms into the convolutions and runs the
    backbone channels-last: about 1.4x end to end on a 2-core CPU, with float rounding differences
    (~1e-6 relative; a detection whose score or IoU sits within rounding of a threshold can
    differ)."""
    if not isinstance(reference, bool):
        raise TypeError(f"fastseg.models.maskrcnn: reference must be a bool, got {type(reference).__name__}")
    trained = weights is not None
    norm = norm_layer or (FrozenBatchNorm2d if trained else nn.BatchNorm2d)
    body = ResNet(depth, norm_layer=norm, width=width, channels_last=fast_backbone, fold_bn=fast_backbone)
    body.freeze(trainable_backbone_layers if trainable_backbone_layers is not None else (3 if trained else 5))
    model = MaskRCNN(BackboneWithFPN(body, fpn_channels), num_classes, representation_size=representation_size,
                     **kwargs)
    _load(model, weights)
    return fnn.set_reference(model, reference)


def maskrcnn_resnet50_fpn(*, num_classes: int = 91, weights=None, trainable_backbone_layers: Optional[int] = None,
                          reference: bool = False, **kwargs) -> MaskRCNN:
    """torchvision's `maskrcnn_resnet50_fpn` architecture (ResNet-50, FPN 256, COCO's 91 classes);
    load torchvision's checkpoint with `weights=torch.load(path)` or `weights=path`."""
    return maskrcnn_resnet_fpn(num_classes=num_classes, depth=50, weights=weights,
                               trainable_backbone_layers=trainable_backbone_layers, reference=reference, **kwargs)


