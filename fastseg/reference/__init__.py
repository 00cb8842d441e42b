"""Plain-PyTorch implementations of every fastseg op: the independent reference for tests,
the baseline for benchmarks, and executable documentation of the semantics."""
from .unpool import (  # noqa: F401
    max_pool2d_compact,
    max_unpool2d,
    max_unpool2d_compact,
    unpool_bed_of_nails2d,
    unpool_nearest2d,
)
from .conv_transpose import conv_transpose2d_crop, conv_transpose2d_crop_cat  # noqa: F401
from .nms import batched_nms, nms  # noqa: F401
from .roi_align import multi_scale_roi_align, roi_align  # noqa: F401
from .paste_masks import paste_masks, paste_masks_in_image  # noqa: F401
from .panoptic_fusion import panoptic_fusion_efficientps, panoptic_fusion_heuristic  # noqa: F401
from .panoptic_quality import pq_compute_single, pq_from_stats  # noqa: F401
