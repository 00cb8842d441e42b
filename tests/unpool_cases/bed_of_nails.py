"""unpool_bed_of_nails2d: the check against F.max_unpool2d with each value at the top-left of its
block and fastseg.reference, and generated bad inputs (`bad_unpool_bed_of_nails2d`; the generated
valid cases are in scale.py)."""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F

import fastseg.ops as fops
from fastseg.reference import unpool as R

from helpers import BadCase, assert_memory_format, assert_same

from .common import _cotangent, _dtype_layout_desc, norm2
from .scale import _bad_scale


def bed_of_nails_indices(x: torch.Tensor, scale_factor) -> torch.Tensor:
    """Flat top-left positions of each sh x sw block, as max_unpool2d indices."""
    sh, sw = norm2(scale_factor)
    h, w = x.shape[-2:]
    W = w * sw
    rows = torch.arange(h).view(-1, 1) * sh
    cols = torch.arange(w).view(1, -1) * sw
    return (rows * W + cols).expand(x.shape).contiguous()


def check_unpool_bed_of_nails2d(x, scale_factor, *, grad=True, desc=""):
    """== F.max_unpool2d with each value's index at the top-left of its block (kernel = stride =
    scale) bit for bit; == fastseg.reference; gradient == PyTorch's bit for bit."""
    msg = f"unpool_bed_of_nails2d({_dtype_layout_desc(x)}, scale_factor={scale_factor}) {desc}"
    sf = norm2(scale_factor)
    idx = bed_of_nails_indices(x, sf)
    exp = F.max_unpool2d(x.detach().cpu().contiguous(), idx, sf, sf)
    out = fops.unpool_bed_of_nails2d(x, scale_factor)
    assert out.device == x.device, msg
    assert_same(out.cpu(), exp, msg)
    assert_same(out.cpu(), R.unpool_bed_of_nails2d(x.detach().cpu(), scale_factor), msg + " [vs fastseg.reference]")
    assert_memory_format(out, x)
    if grad:
        gy = _cotangent(exp.shape, x.dtype, x.device)
        xg = x.detach().requires_grad_(True)
        (gx,) = torch.autograd.grad(fops.unpool_bed_of_nails2d(xg, scale_factor), xg, gy)
        xc = x.detach().cpu().contiguous().requires_grad_(True)
        F.max_unpool2d(xc, idx, sf, sf).backward(gy.cpu())
        assert_same(gx.cpu(), xc.grad, msg + " [gradient vs PyTorch]")
    return out


def bad_unpool_bed_of_nails2d(device: str = "cpu", n: int = 100, seed: int = 0) -> List[BadCase]:
    return _bad_scale("unpool_bed_of_nails2d", device, n, seed)
