"""Test helpers: what this build and machine have (the extension, CUDA kernels, torchvision),
the devices the tests run on, and the skip markers.

- `HAS_OPS`, `HAS_CUDA_KERNELS`, `HAS_TORCHVISION`; `needs_ops`, `needs_torchvision`, `needs_cuda`.
- `devices()`, `DEVICES`, `device_params()`; the `device` fixture in conftest.py.
- `TESTS_DIR`, `REPO_ROOT`.

Re-exported by helpers.py; must import on every CI leg (no torchvision, no built extension).
"""
from __future__ import annotations

import importlib
import os
from typing import Any, List

import pytest
import torch

import fastseg

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)

# ----------------------------------------------------------------------------- availability

HAS_OPS: bool = bool(fastseg.HAS_OPS)
HAS_CUDA_KERNELS: bool = bool(fastseg.HAS_CUDA_KERNELS)


def _has_torchvision() -> bool:
    try:
        importlib.import_module("torchvision")
    except Exception:  # not installed, or built against another torch
        return False
    return True


HAS_TORCHVISION: bool = _has_torchvision()

needs_ops = pytest.mark.skipif(
    not HAS_OPS, reason=f"fastseg._C is not built ({fastseg.load_error}); tests/test_build.py fails in CI"
)
needs_torchvision = pytest.mark.skipif(not HAS_TORCHVISION, reason="torchvision is not importable")
needs_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and HAS_CUDA_KERNELS), reason="needs a GPU and fastseg's CUDA kernels"
)


def devices() -> List[str]:
    """cpu, plus cuda when a GPU is present and the extension has CUDA kernels."""
    out = ["cpu"]
    if torch.cuda.is_available() and HAS_CUDA_KERNELS:
        out.append("cuda")
    return out


DEVICES: List[str] = devices()


def device_params() -> List[Any]:
    """For `@pytest.mark.parametrize("device", device_params())`."""
    return [pytest.param(d, id=d) for d in DEVICES]
