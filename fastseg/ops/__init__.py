"""Functional API: `fastseg.ops.<op>(...)`, one module per op family."""
from .unpool import (  # noqa: F401
    max_pool2d_compact,
    max_unpool2d,
    max_unpool2d_compact,
    unpool_bed_of_nails2d,
    unpool_nearest2d,
)
