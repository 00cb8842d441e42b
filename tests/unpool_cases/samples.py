"""Parametrisations and small input builders shared by the test_unpool_*.py files."""
from __future__ import annotations

import pytest
import torch

import fastseg.ops as fops
from fastseg.reference import unpool as R

import helpers
from helpers import LAYOUTS, torch_gen

from .common import GEOMETRIES, geometry_id, pool_hw, pool_indices, randn, tie_heavy

GEOM_PARAMS = [pytest.param(g, id=geometry_id(g)) for g in GEOMETRIES]
DTYPE_PARAMS = [pytest.param(d, id=helpers.dtype_id(d)) for d in helpers.DTYPES]



def pool_fits(shape, k, s, p, ceil_mode) -> bool:
    try:
        pool_hw(shape[2], shape[3], k, s, p, ceil_mode)
        return True
    except RuntimeError:
        return False


def pooled(shape, geometry, dtype, device, seed, values="randn"):
    """x, then PyTorch's (values, indices) for it; None if the window does not fit."""
    k, s, p, ceil_mode = geometry
    if not pool_fits(shape, k, s, p, ceil_mode):
        return None
    gen = torch_gen(seed)
    x = randn(shape, dtype, "cpu", gen) if values == "randn" else tie_heavy(shape, dtype, "cpu", gen, 0.1, 0.1)
    v, i = pool_indices(x, k, s, p, ceil_mode)
    return x.to(device), v.to(device), i.to(device)


def other_layout(kind):
    return LAYOUTS[(LAYOUTS.index(kind) + 1) % len(LAYOUTS)]


def distinct(shape, device, seed):
    """float64 values that are all distinct and at least 1e-2 apart (no ties for finite differences)."""
    n = 1
    for d in shape:
        n *= d
    perm = torch.randperm(n, generator=torch_gen(seed)).to(torch.float64)
    return (perm / 100.0).view(shape).to(device)


def op_calls(device):
    """(name, fn(x) -> differentiable output, x) for every op."""
    gen = torch_gen(25)
    x = randn((1, 2, 4, 4), torch.float64, device, gen)
    v, idx = pool_indices(x, 2, 2, 0, False)
    _, off = R.max_pool2d_compact(x.cpu(), 2)
    off = off.to(device)
    return [
        ("max_unpool2d", lambda t: fops.max_unpool2d(t, idx, 2), v),
        ("max_pool2d_compact", lambda t: fops.max_pool2d_compact(t, 2)[0], x),
        ("max_unpool2d_compact", lambda t: fops.max_unpool2d_compact(t, off, 2), v),
        ("unpool_nearest2d", lambda t: fops.unpool_nearest2d(t, 2), v),
        ("unpool_bed_of_nails2d", lambda t: fops.unpool_bed_of_nails2d(t, 2), v),
    ]


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor (integer tensors as they are)."""
    t = t.detach().cpu().contiguous()
    ints = {8: torch.int64, 4: torch.int32, 2: torch.int16}
    return t.view(ints[t.element_size()]) if t.is_floating_point() else t
