"""unpool_nearest2d: the check against F.interpolate(mode="nearest") and fastseg.reference, and
generated bad inputs (`bad_unpool_nearest2d`; the generated valid cases are in scale.py)."""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F

import fastseg.ops as fops
from fastseg.reference import unpool as R

from helpers import BadCase, assert_close_tol, assert_memory_format, assert_same

from .common import _cotangent, _dtype_layout_desc, norm2
from .scale import _bad_scale


def _interp_nearest(x, sf):
    """F.interpolate(mode="nearest") on the CPU; 3-D input is an unbatched image here."""
    xc = x.cpu()
    sh, sw = norm2(sf)
    if xc.dim() == 3:
        return F.interpolate(xc.unsqueeze(0), scale_factor=(sh, sw), mode="nearest").squeeze(0)
    return F.interpolate(xc, scale_factor=(sh, sw), mode="nearest")


def check_unpool_nearest2d(x, scale_factor, *, grad=True, desc=""):
    """== F.interpolate(mode="nearest", integer scale) bit for bit; == fastseg.reference; gradient
    == PyTorch's within tolerance (it sums each block)."""
    msg = f"unpool_nearest2d({_dtype_layout_desc(x)}, scale_factor={scale_factor}) {desc}"
    exp = _interp_nearest(x.detach(), scale_factor)
    out = fops.unpool_nearest2d(x, scale_factor)
    assert out.device == x.device, msg
    assert_same(out.cpu(), exp, msg)
    assert_same(out.cpu(), R.unpool_nearest2d(x.detach().cpu(), scale_factor), msg + " [vs fastseg.reference]")
    assert_memory_format(out, x)
    if grad:
        gy = _cotangent(exp.shape, x.dtype, x.device)
        xg = x.detach().requires_grad_(True)
        (gx,) = torch.autograd.grad(fops.unpool_nearest2d(xg, scale_factor), xg, gy)
        # float64 expectation cast back: the sum of sh*sw cotangents
        xc = x.detach().cpu().to(torch.float64).requires_grad_(True)
        _interp_nearest(xc, scale_factor).backward(gy.cpu().to(torch.float64))
        assert_close_tol(gx.cpu(), xc.grad.to(x.dtype), x.dtype, msg + " [gradient vs PyTorch]")
    return out


def bad_unpool_nearest2d(device: str = "cpu", n: int = 100, seed: int = 0) -> List[BadCase]:
    return _bad_scale("unpool_nearest2d", device, n, seed)
