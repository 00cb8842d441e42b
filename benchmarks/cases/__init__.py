"""Benchmark cases, one module per op family. Importing this package registers them all.

To add a family: write `benchmarks/cases/<family>.py` that builds `Case`s (see `unpool.py`) and
calls `harness.register` on each, then import it below.
"""
from . import conv_transpose, networks, nms, panoptic, paste_masks, roi_align, unpool  # noqa: F401
