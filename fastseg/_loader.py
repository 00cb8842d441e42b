"""Loads the compiled op library. A source tree whose extension is not built still imports
(`fastseg.reference` works without it); calling an op then raises a clear error."""
import importlib

import torch

load_error = None
try:
    importlib.import_module("fastseg._C")
    HAS_OPS = True
except ImportError as e:  # not built, or built against another torch
    HAS_OPS = False
    load_error = e


def _has_cuda_kernels() -> bool:
    if not HAS_OPS:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key("fastseg::max_unpool2d", "CUDA")


HAS_CUDA_KERNELS = _has_cuda_kernels()


def require_ops():
    if not HAS_OPS:
        raise RuntimeError(
            "fastseg: the compiled extension fastseg._C is not available "
            f"({load_error}); build it with `pip install --no-build-isolation -e .`"
        )
