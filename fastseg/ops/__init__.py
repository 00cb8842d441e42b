"""Functional API: `fastseg.ops.<op>(...)`, one module per op family."""
from .unpool import (  # noqa: F401
    max_pool2d_compact,
    max_unpool2d,
    max_unpool2d_compact,
    unpool_bed_of_nails2d,
    unpool_nearest2d,
)
from .conv_transpose import (  # noqa: F401
    bilinear_upsample_weight,
    conv_transpose2d_crop,
    conv_transpose2d_crop_cat,
    conv_transpose_full_size,
)
from .nms import batched_nms, nms  # noqa: F401
from .roi_align import multi_scale_roi_align, roi_align  # noqa: F401
from .paste_masks import paste_masks, paste_masks_in_image  # noqa: F401
from .panoptic import panoptic_fusion_efficientps, panoptic_fusion_heuristic  # noqa: F401

# The public ops. Not here: the backward ops (torch.ops.fastseg.*_backward, reached through
# autograd), shape helpers (conv_transpose_full_size, which the layers use) and the testing
# switches (fastseg.testing).
__all__ = [
    "max_unpool2d",
    "max_pool2d_compact",
    "max_unpool2d_compact",
    "unpool_nearest2d",
    "unpool_bed_of_nails2d",
    "conv_transpose2d_crop",
    "conv_transpose2d_crop_cat",
    "bilinear_upsample_weight",
    "nms",
    "batched_nms",
    "roi_align",
    "multi_scale_roi_align",
    "paste_masks",
    "paste_masks_in_image",
    "panoptic_fusion_heuristic",
    "panoptic_fusion_efficientps",
]
