"""Inputs and checks for the unpooling family, shared by test_unpool.py and test_unpool_fuzz.py.

Expected values always come from PyTorch itself (`F.max_unpool2d`, `F.max_pool2d`,
`F.interpolate`, computed on the CPU, whose max_unpool2d writes sequentially so that for
duplicate indices the larger input position wins) and, as a second opinion, from
`fastseg.reference`. Nothing here calls fastseg's kernels to produce an expectation.

`check_<op>(...)` run one case and raise AssertionError with a readable message.
`good_<op>(seed, device)` build one random valid case (a dict of the `check_<op>` arguments
plus "desc", a reproducer). `bad_<op>(device, n, seed)` build BadCase lists for
helpers.run_cases_in_subprocess (a module-level factory, so the child process can rebuild them).
"""
from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Tuple

import pytest
import torch
import torch.nn.functional as F

import fastseg.ops as fops
from fastseg.reference import unpool as R

from helpers import (DTYPES, LAYOUTS, BadCase, assert_close_tol, assert_memory_format, assert_same,
                     make_layout, single_thread, torch_gen)

OPS = ("max_unpool2d", "max_pool2d_compact", "max_unpool2d_compact", "unpool_nearest2d", "unpool_bed_of_nails2d")

# ----------------------------------------------------------------------------- geometry


def norm2(v) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def norm_geometry(kernel_size, stride, padding):
    k = norm2(kernel_size)
    s = k if stride is None else norm2(stride)
    return k, s, norm2(padding)


def default_unpool_hw(h: int, w: int, k, s, p) -> Tuple[int, int]:
    """PyTorch's default max_unpool2d output size: (in - 1) * stride - 2 * pad + kernel."""
    return (h - 1) * s[0] - 2 * p[0] + k[0], (w - 1) * s[1] - 2 * p[1] + k[1]


def unpool_hw(h, w, kernel_size, stride, padding, output_size) -> Tuple[int, int]:
    if output_size is None:
        return default_unpool_hw(h, w, *norm_geometry(kernel_size, stride, padding))
    return int(output_size[-2]), int(output_size[-1])


def pool_hw(H: int, W: int, kernel_size, stride, padding, ceil_mode) -> Tuple[int, int]:
    """Output size of F.max_pool2d, asked of PyTorch itself (meta tensors, no compute)."""
    out = F.max_pool2d(torch.empty(1, 1, H, W, device="meta"), kernel_size, stride, padding, 1, ceil_mode)
    return tuple(out.shape[-2:])


def _as_arg(rng: random.Random, v: Tuple[int, int]):
    """An int when both entries agree (sometimes), else a tuple or a list."""
    if v[0] == v[1] and rng.random() < 0.5:
        return v[0]
    return tuple(v) if rng.random() < 0.7 else list(v)


def random_pool_geometry(rng: random.Random, max_k: int = 4, max_s: int = 4):
    """(kernel_size, stride, padding) as API arguments; padding <= kernel/2 (PyTorch's pooling rule)."""
    if rng.random() < 0.5:
        kh = kw = rng.randint(1, max_k)
    else:
        kh, kw = rng.randint(1, max_k), rng.randint(1, max_k)
    r = rng.random()
    if r < 0.25:
        stride = None
        sh, sw = kh, kw
    elif r < 0.5:
        sh = sw = rng.randint(1, max_s)
        stride = _as_arg(rng, (sh, sw))
    else:
        sh, sw = rng.randint(1, max_s), rng.randint(1, max_s)
        stride = _as_arg(rng, (sh, sw))
    ph, pw = rng.randint(0, kh // 2), rng.randint(0, kw // 2)
    return _as_arg(rng, (kh, kw)), stride, _as_arg(rng, (ph, pw))


#: Hand-picked geometries (kernel_size, stride, padding, ceil_mode): SegNet 2x2/s2, overlapping
#: 3x3/s2/p1 (ResNet stem), k < s, stride 1, asymmetric, and ceil_mode variants.
GEOMETRIES = (
    (2, 2, 0, False),
    (2, 2, 0, True),
    (3, 2, 1, False),
    (3, 2, 1, True),
    (3, 3, 0, False),
    (2, 3, 0, False),
    (1, 2, 0, True),
    (3, 1, 1, False),
    ((2, 3), (1, 2), (1, 0), False),
    ((3, 2), (2, 3), (0, 1), True),
    (4, 2, 1, False),
    (1, 1, 0, False),
)


def geometry_id(g) -> str:
    k, s, p, c = g
    return f"k{k}-s{s}-p{p}" + ("-ceil" if c else "")


# ----------------------------------------------------------------------------- tensors


def randn(shape, dtype, device, gen: torch.Generator) -> torch.Tensor:
    """Standard normal values drawn in float64 on the CPU (same values on every device) then cast."""
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(device)


def tie_heavy(shape, dtype, device, gen: torch.Generator, nan_prob: float = 0.0, inf_prob: float = 0.0):
    """Small integers (many exact ties inside windows), optionally some NaN and -inf/+inf."""
    t = torch.randint(-2, 3, shape, generator=gen).to(torch.float64)
    if nan_prob:
        t = torch.where(torch.rand(shape, generator=gen, dtype=torch.float64) < nan_prob, float("nan"), t)
    if inf_prob:
        r = torch.rand(shape, generator=gen, dtype=torch.float64)
        t = torch.where(r < inf_prob / 2, float("-inf"), torch.where(r > 1 - inf_prob / 2, float("inf"), t))
    return t.to(dtype).to(device)


def pool_indices(x: torch.Tensor, kernel_size, stride, padding, ceil_mode):
    """(values, int64 indices) from PyTorch's max_pool2d, computed on the CPU."""
    v, i = F.max_pool2d(x.detach().cpu(), kernel_size, stride, padding, 1, ceil_mode, return_indices=True)
    return v.to(x.device), i.to(x.device)


def _dtype_layout_desc(t: Optional[torch.Tensor]) -> str:
    if t is None:
        return "None"
    lay = ("channels_last" if (t.dim() == 4 and not t.is_contiguous()
                               and t.is_contiguous(memory_format=torch.channels_last))
           else "contiguous" if t.is_contiguous() else f"strides={t.stride()}")
    return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')} {lay} {t.device}"


def _cotangent(shape, dtype, device, seed=1234):
    return randn(shape, dtype, device, torch_gen(seed))


# ----------------------------------------------------------------------------- checks


def expected_max_unpool2d(x, idx, kernel_size, stride, padding, output_size):
    """PyTorch's CPU result on one thread (sequential writes: the larger input position wins on
    duplicates; with several threads PyTorch's result for duplicates is timing-dependent)."""
    with single_thread():
        return F.max_unpool2d(x.detach().cpu().contiguous(), idx.cpu().contiguous(), kernel_size, stride, padding,
                              output_size)


def check_max_unpool2d(x, idx, kernel_size, stride=None, padding=0, output_size=None, *, grad=True,
                       reference=True, desc=""):
    """fastseg.ops.max_unpool2d == F.max_unpool2d (CPU) bit for bit, == fastseg.reference, output
    in the input's memory format; the gradient equals PyTorch's (a gather) bit for bit."""
    msg = f"max_unpool2d({_dtype_layout_desc(x)}, idx {_dtype_layout_desc(idx)}, kernel_size={kernel_size}, " \
          f"stride={stride}, padding={padding}, output_size={output_size}) {desc}"
    exp = expected_max_unpool2d(x, idx, kernel_size, stride, padding, output_size)
    if exp.shape[-2] * exp.shape[-1] == 0 and idx.numel() > 0:
        # an empty output plane has no valid index: fastseg raises (PyTorch returns the empty
        # tensor without looking at the indices)
        with pytest.raises(RuntimeError, match=r"fastseg\.max_unpool2d: .*indices"):
            fops.max_unpool2d(x, idx, kernel_size, stride, padding, output_size)
        return exp
    out = fops.max_unpool2d(x, idx, kernel_size, stride, padding, output_size)
    assert out.device == x.device, msg
    assert_same(out.cpu(), exp, msg)
    assert_memory_format(out, x)
    if reference:
        ref = R.max_unpool2d(x.detach().cpu(), idx.cpu(), kernel_size, stride, padding, output_size)
        assert_same(out.cpu(), ref, msg + " [vs fastseg.reference]")
    if grad:
        gy = _cotangent(exp.shape, x.dtype, x.device)
        xg = x.detach().requires_grad_(True)
        (gx,) = torch.autograd.grad(fops.max_unpool2d(xg, idx, kernel_size, stride, padding, output_size), xg, gy)
        xc = x.detach().cpu().contiguous().requires_grad_(True)
        F.max_unpool2d(xc, idx.cpu().contiguous(), kernel_size, stride, padding, output_size).backward(gy.cpu())
        assert_same(gx.cpu(), xc.grad, msg + " [gradient vs PyTorch]")
    return out


def check_max_pool2d_compact(x, kernel_size, stride=None, padding=0, ceil_mode=False, *, grad=True, desc=""):
    """values == F.max_pool2d values bit for bit; offsets uint8 and, converted to flat indices,
    == F.max_pool2d's indices (same tie-breaking, same NaN choice); == fastseg.reference;
    gradient == PyTorch's within tolerance."""
    msg = f"max_pool2d_compact({_dtype_layout_desc(x)}, kernel_size={kernel_size}, stride={stride}, " \
          f"padding={padding}, ceil_mode={ceil_mode}) {desc}"
    k, s, p = norm_geometry(kernel_size, stride, padding)
    ev, ei = F.max_pool2d(x.detach().cpu().contiguous(), kernel_size, stride, padding, 1, ceil_mode,
                          return_indices=True)
    values, offsets = fops.max_pool2d_compact(x, kernel_size, stride, padding, ceil_mode)
    assert offsets.dtype == torch.uint8, msg + f": offsets dtype {offsets.dtype}"
    assert values.dtype == x.dtype and values.device == x.device and offsets.device == x.device, msg
    assert values.shape == ev.shape and offsets.shape == ev.shape, (
        msg + f": shapes {values.shape} {offsets.shape} vs {ev.shape}")
    assert_same(values.cpu(), ev, msg + " [values]")
    idx = R.compact_to_indices(offsets.cpu(), k, s, p, x.shape[-1])
    assert_same(idx, ei, msg + " [offsets as flat indices vs F.max_pool2d indices]")
    _, ref_off = R.max_pool2d_compact(x.detach().cpu(), kernel_size, stride, padding, ceil_mode)
    assert_same(offsets.cpu(), ref_off, msg + " [offsets vs fastseg.reference]")
    assert_memory_format(values, x)
    assert_memory_format(offsets, x)
    if grad:
        gy = _cotangent(ev.shape, x.dtype, x.device)
        xg = x.detach().requires_grad_(True)
        (gx,) = torch.autograd.grad(fops.max_pool2d_compact(xg, kernel_size, stride, padding, ceil_mode)[0], xg, gy)
        # float64 expectation cast back (x's values are exact in float64: same argmax, same ties)
        xc = x.detach().cpu().contiguous().to(torch.float64).requires_grad_(True)
        F.max_pool2d(xc, kernel_size, stride, padding, 1, ceil_mode).backward(gy.cpu().to(torch.float64))
        assert_close_tol(gx.cpu(), xc.grad.to(x.dtype), x.dtype, msg + " [gradient vs PyTorch]")
    return values, offsets


def expected_max_unpool2d_compact(values, offsets, kernel_size, stride, padding, output_size):
    H, W = unpool_hw(values.shape[-2], values.shape[-1], kernel_size, stride, padding, output_size)
    idx = R.compact_to_indices(offsets.cpu(), *norm_geometry(kernel_size, stride, padding), W)
    return expected_max_unpool2d(values, idx, kernel_size, stride, padding, output_size), idx


def check_max_unpool2d_compact(values, offsets, kernel_size, stride=None, padding=0, output_size=None, *,
                               grad=True, desc=""):
    """== F.max_unpool2d with the equivalent int64 indices, bit for bit; == fastseg.reference;
    gradient == PyTorch's (gather) bit for bit."""
    msg = f"max_unpool2d_compact({_dtype_layout_desc(values)}, offsets {_dtype_layout_desc(offsets)}, " \
          f"kernel_size={kernel_size}, stride={stride}, padding={padding}, output_size={output_size}) {desc}"
    exp, idx = expected_max_unpool2d_compact(values, offsets, kernel_size, stride, padding, output_size)
    if exp.shape[-2] * exp.shape[-1] == 0 and offsets.numel() > 0:
        with pytest.raises(RuntimeError, match=r"fastseg\.max_unpool2d_compact: .*offsets"):
            fops.max_unpool2d_compact(values, offsets, kernel_size, stride, padding, output_size)
        return exp
    out = fops.max_unpool2d_compact(values, offsets, kernel_size, stride, padding, output_size)
    assert out.device == values.device, msg
    assert_same(out.cpu(), exp, msg)
    ref = R.max_unpool2d_compact(values.detach().cpu(), offsets.cpu(), kernel_size, stride, padding, output_size)
    assert_same(out.cpu(), ref, msg + " [vs fastseg.reference]")
    assert_memory_format(out, values)
    if grad:
        gy = _cotangent(exp.shape, values.dtype, values.device)
        vg = values.detach().requires_grad_(True)
        out2 = fops.max_unpool2d_compact(vg, offsets, kernel_size, stride, padding, output_size)
        (gv,) = torch.autograd.grad(out2, vg, gy)
        vc = values.detach().cpu().contiguous().requires_grad_(True)
        F.max_unpool2d(vc, idx.contiguous(), kernel_size, stride, padding, output_size).backward(gy.cpu())
        assert_same(gv.cpu(), vc.grad, msg + " [gradient vs PyTorch]")
    return out


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


# ----------------------------------------------------------------------------- random valid cases


def _random_dtype(rng):
    return rng.choice(DTYPES)


def _random_layout(rng, t):
    kinds = list(LAYOUTS) if t.dim() == 4 else ["contiguous", "noncontiguous"]
    return make_layout(t, rng.choice(kinds))


def _maybe_unbatch(rng, *ts):
    """With probability 0.15 (and N == 1), drop the batch dim of every tensor (3-D input)."""
    if ts[0].shape[0] == 1 and rng.random() < 0.15:
        return tuple(t[0] for t in ts), True
    return ts, False


def _valid_output_sizes(rng, h, w, k, s, p, N, C, hw_extra=()):
    """None, or an explicit valid output size (2 or 4 entries) in PyTorch's open range."""
    H0, W0 = default_unpool_hw(h, w, k, s, p)
    choices = [None]
    for H in range(max(0, H0 - s[0] + 1), H0 + s[0]):
        for W in range(max(0, W0 - s[1] + 1), W0 + s[1]):
            choices.append((H, W))
    choices += list(hw_extra)
    c = rng.choice(choices)
    if c is not None and rng.random() < 0.3:
        c = [N, C, c[0], c[1]]
    return c


def good_max_unpool2d(seed: int, device: str = "cpu") -> Dict[str, Any]:
    rng = random.Random(f"max_unpool2d/{seed}")
    gen = torch_gen(seed)
    dtype = _random_dtype(rng)
    kind = rng.choice(["pool", "pool", "in_window", "in_window", "random", "perturbed", "duplicates"])
    for _ in range(100):
        kernel_size, stride, padding = random_pool_geometry(rng)
        k, s, p = norm_geometry(kernel_size, stride, padding)
        if kind in ("pool", "perturbed"):
            ceil_mode = rng.random() < 0.3
            N = 0 if rng.random() < 0.04 else rng.randint(1, 3)
            C = rng.randint(1, 3)
            H, W = rng.randint(max(1, k[0] - 2 * p[0]), 9), rng.randint(max(1, k[1] - 2 * p[1]), 9)
            x0 = randn((N, C, H, W), dtype, "cpu", gen)
            v, idx = pool_indices(x0, kernel_size, stride, padding, ceil_mode)
            h, w = v.shape[-2:]
            out = rng.choice([None, (H, W), [N, C, H, W]])
            try:  # PyTorch decides whether (H, W) is a valid output size for this geometry
                F.max_unpool2d(v, idx, kernel_size, stride, padding, out)
            except (ValueError, RuntimeError):
                out = None
            if out is None:
                HH, WW = default_unpool_hw(h, w, k, s, p)
                if (idx.numel() and int(idx.max()) >= HH * WW):
                    continue
            output_size = out
        elif kind == "in_window":
            # every index inside its own window (what the gather path handles), random otherwise:
            # overlapping windows give duplicates with different values
            N = 0 if rng.random() < 0.04 else rng.randint(1, 3)
            C = rng.randint(1, 3)
            h, w = rng.randint(1, 5), rng.randint(1, 5)
            output_size = _valid_output_sizes(rng, h, w, k, s, p, N, C)
            HH, WW = unpool_hw(h, w, kernel_size, stride, padding, output_size)
            if HH <= 0 or WW <= 0:
                continue
            off = random_valid_offsets(rng, gen, (N, C, h, w), k, s, p, HH, WW)
            if off is None:
                continue
            idx = R.compact_to_indices(off, k, s, p, WW).expand(N, C, h, w).contiguous()
            v = randn((N, C, h, w), dtype, "cpu", gen)
        else:
            # any padding (max_unpool2d itself does not require p <= k/2)
            if rng.random() < 0.25:  # even padding >= kernel (whole windows outside the plane)
                padding = (rng.randint(0, k[0] + 1), rng.randint(0, k[1] + 1))
                k, s, p = norm_geometry(kernel_size, stride, padding)
            N = 0 if rng.random() < 0.04 else rng.randint(1, 3)
            C = rng.randint(1, 3)
            h, w = rng.randint(1, 5), rng.randint(1, 5)
            output_size = _valid_output_sizes(rng, h, w, k, s, p, N, C)
            HH, WW = unpool_hw(h, w, kernel_size, stride, padding, output_size)
            if HH <= 0 or WW <= 0:
                continue
            v = randn((N, C, h, w), dtype, "cpu", gen)
            hi = HH * WW if kind == "random" else max(1, min(HH * WW, rng.randint(1, 4)))
            idx = torch.randint(0, hi, (N, C, h, w), generator=gen)
        if kind == "perturbed" and idx.numel() > 1:
            HH, WW = unpool_hw(v.shape[-2], v.shape[-1], kernel_size, stride, padding, output_size)
            flat = idx.view(-1)
            for _ in range(rng.randint(1, 3)):
                a, b = rng.randrange(flat.numel()), rng.randrange(flat.numel())
                r = rng.random()
                if r < 0.4:
                    flat[a] = rng.randrange(HH * WW)  # an index no window of this geometry may hold
                elif r < 0.7:
                    flat[a] = flat[b]  # duplicate with a different value
                else:
                    flat[a], flat[b] = int(flat[b]), int(flat[a])  # swap windows
        break
    else:
        raise AssertionError("could not build a case")
    (v, idx), unbatched = _maybe_unbatch(rng, v, idx)
    if unbatched and isinstance(output_size, list):
        output_size = output_size[-2:]
    v = _random_layout(rng, v.to(device))
    idx = _random_layout(rng, idx.to(device))
    desc = f"[good_max_unpool2d(seed={seed}) kind={kind}]"
    return dict(x=v, idx=idx, kernel_size=kernel_size, stride=stride, padding=padding,
                output_size=output_size, desc=desc)


def good_max_pool2d_compact(seed: int, device: str = "cpu") -> Dict[str, Any]:
    rng = random.Random(f"max_pool2d_compact/{seed}")
    gen = torch_gen(seed)
    dtype = _random_dtype(rng)
    kernel_size, stride, padding = random_pool_geometry(rng, max_k=5)
    if rng.random() < 0.03:  # the largest windows uint8 offsets allow
        kernel_size, stride, padding = rng.choice([((15, 17), 8, 0), ((1, 255), 1, (0, 127)), ((255, 1), (3, 1), 0)])
    k, s, p = norm_geometry(kernel_size, stride, padding)
    ceil_mode = rng.random() < 0.3
    N = 0 if rng.random() < 0.04 else rng.randint(1, 3)
    C = rng.randint(1, 3)
    H = rng.randint(max(1, k[0] - 2 * p[0]), max(1, k[0] - 2 * p[0]) + 7)
    W = rng.randint(max(1, k[1] - 2 * p[1]), max(1, k[1] - 2 * p[1]) + 7)
    vals = rng.choice(["randn", "ties", "ties_nan", "ties_inf", "all_neg_inf"])
    if vals == "randn":
        x = randn((N, C, H, W), dtype, "cpu", gen)
    elif vals == "all_neg_inf":
        x = torch.full((N, C, H, W), float("-inf"), dtype=dtype)
    else:
        x = tie_heavy((N, C, H, W), dtype, "cpu", gen, nan_prob=0.2 if vals == "ties_nan" else 0.0,
                      inf_prob=0.3 if vals == "ties_inf" else 0.0)
    (x,), _ = _maybe_unbatch(rng, x)
    x = _random_layout(rng, x.to(device))
    return dict(x=x, kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                desc=f"[good_max_pool2d_compact(seed={seed}) values={vals}]")


def offsets_in_plane(off: torch.Tensor, k, s, p, H: int, W: int) -> bool:
    """Whether every window offset points inside the H x W output plane."""
    if off.numel() == 0:
        return True
    o = off.to(torch.int64)
    y = torch.arange(off.shape[-2]).view(-1, 1) * s[0] - p[0] + o // k[1]
    x = torch.arange(off.shape[-1]).view(1, -1) * s[1] - p[1] + o % k[1]
    return bool(((y >= 0) & (y < H) & (x >= 0) & (x < W)).all())


def random_valid_offsets(rng, gen, shape, k, s, p, H, W) -> Optional[torch.Tensor]:
    """Random window offsets whose positions lie inside the H x W plane (None if some window has
    no such position)."""
    h, w = shape[-2:]
    choices = []
    for oh in range(h):
        for ow in range(w):
            ok = [dy * k[1] + dx for dy in range(k[0]) for dx in range(k[1])
                  if 0 <= oh * s[0] - p[0] + dy < H and 0 <= ow * s[1] - p[1] + dx < W]
            if not ok:
                return None
            choices.append(ok)
    lead = 1
    for d in shape[:-2]:
        lead *= d
    flat = [rng.choice(choices[j]) for _ in range(lead) for j in range(h * w)]
    return torch.tensor(flat, dtype=torch.uint8).view(shape)


def good_max_unpool2d_compact(seed: int, device: str = "cpu") -> Dict[str, Any]:
    rng = random.Random(f"max_unpool2d_compact/{seed}")
    gen = torch_gen(seed)
    dtype = _random_dtype(rng)
    kind = rng.choice(["pool", "pool", "random"])
    for _ in range(100):
        kernel_size, stride, padding = random_pool_geometry(rng)
        k, s, p = norm_geometry(kernel_size, stride, padding)
        N = 0 if rng.random() < 0.04 else rng.randint(1, 3)
        C = rng.randint(1, 3)
        if kind == "pool":
            ceil_mode = rng.random() < 0.3
            H, W = rng.randint(max(1, k[0] - 2 * p[0]), 9), rng.randint(max(1, k[1] - 2 * p[1]), 9)
            x0 = randn((N, C, H, W), dtype, "cpu", gen)
            v, off = R.max_pool2d_compact(x0, kernel_size, stride, padding, ceil_mode)
            out = rng.choice([None, (H, W), [N, C, H, W]])
            try:
                F.max_unpool2d(v, torch.zeros(v.shape, dtype=torch.int64), kernel_size, stride, padding, out)
            except (ValueError, RuntimeError):
                out = None
            HH, WW = unpool_hw(v.shape[-2], v.shape[-1], kernel_size, stride, padding, out)
            if not offsets_in_plane(off, k, s, p, HH, WW):
                continue  # pooled positions must lie in the (default-sized) output plane
            output_size = out
        else:
            h, w = rng.randint(1, 5), rng.randint(1, 5)
            output_size = _valid_output_sizes(rng, h, w, k, s, p, N, C)
            HH, WW = unpool_hw(h, w, kernel_size, stride, padding, output_size)
            if HH <= 0 or WW <= 0:
                continue
            off = random_valid_offsets(rng, gen, (N, C, h, w), k, s, p, HH, WW)
            if off is None:
                continue
            v = randn((N, C, h, w), dtype, "cpu", gen)
        break
    else:
        raise AssertionError("could not build a case")
    (v, off), unbatched = _maybe_unbatch(rng, v, off)
    if unbatched and isinstance(output_size, list):
        output_size = output_size[-2:]
    v = _random_layout(rng, v.to(device))
    off = _random_layout(rng, off.to(device))
    return dict(values=v, offsets=off, kernel_size=kernel_size, stride=stride, padding=padding,
                output_size=output_size, desc=f"[good_max_unpool2d_compact(seed={seed}) kind={kind}]")


def _good_scale(op: str, seed: int, device: str) -> Dict[str, Any]:
    rng = random.Random(f"{op}/{seed}")
    gen = torch_gen(seed)
    dtype = _random_dtype(rng)
    sh, sw = rng.randint(1, 4), rng.randint(1, 4)
    scale = _as_arg(rng, (sh, sw))
    N = 0 if rng.random() < 0.04 else rng.randint(1, 3)
    shape = (N, rng.randint(1, 4), rng.randint(1, 6), rng.randint(1, 6))
    x = randn(shape, dtype, "cpu", gen)
    if rng.random() < 0.1:
        x[..., 0, 0] = float("nan")
    (x,), _ = _maybe_unbatch(rng, x)
    x = _random_layout(rng, x.to(device))
    return dict(x=x, scale_factor=scale, desc=f"[good_{op}(seed={seed})]")


def good_unpool_nearest2d(seed: int, device: str = "cpu"):
    return _good_scale("unpool_nearest2d", seed, device)


def good_unpool_bed_of_nails2d(seed: int, device: str = "cpu"):
    return _good_scale("unpool_bed_of_nails2d", seed, device)


GOOD = {
    "max_unpool2d": (good_max_unpool2d, check_max_unpool2d),
    "max_pool2d_compact": (good_max_pool2d_compact, check_max_pool2d_compact),
    "max_unpool2d_compact": (good_max_unpool2d_compact, check_max_unpool2d_compact),
    "unpool_nearest2d": (good_unpool_nearest2d, check_unpool_nearest2d),
    "unpool_bed_of_nails2d": (good_unpool_bed_of_nails2d, check_unpool_bed_of_nails2d),
}


def run_good(op: str, seed: int, device: str = "cpu") -> None:
    make, check = GOOD[op]
    case = make(seed, device)
    args = {k: v for k, v in case.items() if k != "desc"}
    check(**args, desc=case["desc"])


# ----------------------------------------------------------------------------- bad inputs


def msg_re(op: str, arg: str) -> str:
    """fastseg's message convention: the message starts with "fastseg.<op>: <argument> " (C++
    and Python; <op> may be the op's backward), or is the dispatcher's own schema error
    "fastseg::<op>() Expected ... for argument '<argument>'"."""
    return (rf"(?s)^(fastseg\.{op}(_backward)?: ({arg})\b"
            rf"|fastseg::{op}(_backward)?\(\) .*argument '({arg})')")


def _bad(cases: List[BadCase], id_: str, fn, op: str, arg: str, exc=None, allow_result=None):
    kw = {}
    if exc is not None:
        kw["exc"] = tuple(exc)
    cases.append(BadCase(id=f"{len(cases):03d}-{id_}", fn=fn, match=msg_re(op, arg), allow_result=allow_result, **kw))


def _dispatch(name):
    """The dispatcher overload, looked up when called (the library may be unbuilt at import)."""
    def call(*args):
        return getattr(torch.ops.fastseg, name).default(*args)
    return call


def _equal_to(expected_fn):
    """allow_result predicate: the result equals expected_fn() bit for bit."""
    def pred(result):
        with single_thread():  # PyTorch's CPU max_unpool2d is only deterministic on one thread
            exp = expected_fn()
        return (isinstance(result, torch.Tensor) and result.shape == exp.shape
                and bool(torch.equal(result.detach().cpu(), exp.cpu())))
    return pred


HUGE = (2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 40, 2 ** 62, 2 ** 63 - 1)


def _int_pair_variants(rng, bad: int):
    """A kernel/stride/padding argument containing the bad value `bad` (int, or in a pair)."""
    return rng.choice([bad, (bad, bad), (bad, 2), (2, bad), [bad, 1]])


def bad_max_unpool2d(device: str = "cpu", n: int = 100, seed: int = 0) -> List[BadCase]:
    op = "max_unpool2d"
    rng = random.Random(f"bad/{op}/{seed}")
    gen = torch_gen(seed)
    cases: List[BadCase] = []
    api, disp = fops.max_unpool2d, _dispatch("max_unpool2d")
    bwd = _dispatch("max_unpool2d_backward")
    while len(cases) < n:
        N, C, h, w = rng.randint(1, 2), rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 4)
        k = (rng.randint(1, 3), rng.randint(1, 3))
        s = (rng.randint(1, 3), rng.randint(1, 3))
        p = (rng.randint(0, k[0] // 2), rng.randint(0, k[1] // 2))
        H, W = default_unpool_hw(h, w, k, s, p)
        if H * W < 1:
            continue
        x = randn((N, C, h, w), torch.float32, device, gen)
        idx = torch.randint(0, H * W, (N, C, h, w), generator=gen).to(device)
        geo = (list(k), list(s), list(p))
        level = rng.choice(["api", "dispatch"])
        call = (lambda *a: api(*a)) if level == "api" else (lambda xx, ii, kk, ss, pp, oo, H=H, W=W: disp(
            xx, ii, kk, ss, pp, [H, W] if oo is None else oo))
        cat = rng.choice(["idx_neg", "idx_big", "idx_dtype", "input_dtype", "shape", "kernel", "stride",
                          "padding", "output_size", "rank", "not_tensor", "backward_idx"])
        tag = f"{level}-{cat}"
        if cat == "idx_neg":
            bad = idx.clone()
            bad.view(-1)[rng.randrange(bad.numel())] = -rng.choice((1, 2, H * W, H * W + 1) + HUGE[:-1] + (2 ** 63,))
            _bad(cases, tag, lambda x=x, b=bad, geo=geo, c=call: c(x, b, *geo, None), op, "indices",
                 exc=["RuntimeError"])
        elif cat == "idx_big":
            bad = idx.clone()
            bad.view(-1)[rng.randrange(bad.numel())] = rng.choice((H * W, H * W + 1, H * W * 2, 2 ** 32 + 1) + HUGE)
            _bad(cases, tag, lambda x=x, b=bad, geo=geo, c=call: c(x, b, *geo, None), op, "indices",
                 exc=["RuntimeError"])
        elif cat == "idx_dtype":
            dt = rng.choice([torch.int32, torch.int16, torch.uint8, torch.float32, torch.float64, torch.bool])
            _bad(cases, f"{tag}-{dt}", lambda x=x, b=idx.to(dt), geo=geo, c=call: c(x, b, *geo, None), op, "indices")
        elif cat == "input_dtype":
            dt = rng.choice([torch.int64, torch.int32, torch.uint8, torch.bool])
            _bad(cases, f"{tag}-{dt}", lambda x=x.to(dt), b=idx, geo=geo, c=call: c(x, b, *geo, None), op, "input")
        elif cat == "shape":
            which = rng.choice(["N", "C", "h", "w", "rank"])
            shp = list(idx.shape)
            if which == "rank":
                b = idx.reshape(N * C, h, w) if level == "dispatch" else idx.reshape(1, N, C, h, w)
            else:
                shp["NChw".index(which)] += rng.choice([1, 2])
                b = torch.zeros(shp, dtype=torch.int64, device=device)
            _bad(cases, f"{tag}-{which}", lambda x=x, b=b, geo=geo, c=call: c(x, b, *geo, None), op, "indices")
        elif cat in ("kernel", "stride", "padding"):
            badv = rng.choice([0, -1, -3]) if cat != "padding" else rng.choice([-1, -2])
            g = list(geo)
            i = ("kernel", "stride", "padding").index(cat)
            g[i] = _int_pair_variants(rng, badv)
            if level == "dispatch" and isinstance(g[i], int):
                g[i] = [g[i], g[i]]
            if level == "dispatch" and rng.random() < 0.3:
                g[i] = [abs(badv) + 1] * rng.choice([1, 3])  # wrong number of entries
            name = {"kernel": "kernel_size"}.get(cat, cat)
            _bad(cases, f"{tag}-{g[i]}", lambda x=x, b=idx, g=g, c=call: c(x, b, *g, None), op, name)
        elif cat == "output_size":
            if level == "api":
                choice = rng.choice(["high", "low", "len", "huge", "neg"])
                if choice == "high":
                    o = (H + s[0], W) if rng.random() < 0.5 else (H, W + s[1] + rng.randint(0, 3))
                elif choice == "low":
                    if H - s[0] < 0 and W - s[1] < 0:
                        continue
                    o = (H - s[0], W) if H - s[0] >= 0 else (H, W - s[1])
                elif choice == "len":
                    o = rng.choice([(H,), (C, H, W), (1, N, C, H, W)])
                elif choice == "huge":
                    o = (2 ** 40, W)
                else:
                    o = (-H - s[0], W)
                if rng.random() < 0.3 and len(o) == 2:
                    o = [N, C, *o]
                _bad(cases, f"{tag}-{choice}-{o}", lambda x=x, b=idx, geo=geo, o=o: api(x, b, *geo, o), op,
                     "output_size")
            else:
                choice = rng.choice(["neg", "len", "inconsistent"])
                if choice == "neg":
                    o = rng.choice([[-1, W], [H, -2], [-H, -W]])
                    _bad(cases, f"{tag}-neg-{o}", lambda x=x, b=idx, geo=geo, o=o: disp(x, b, *geo, o), op,
                         "output_size")
                elif choice == "len":
                    o = rng.choice([[H], [H, W, 1], [N, C, H, W]])
                    _bad(cases, f"{tag}-len-{o}", lambda x=x, b=idx, geo=geo, o=o: disp(x, b, *geo, o), op,
                         "output_size")
                else:
                    # in-range indices, output size far from the geometry's: raising (naming
                    # output_size) and computing PyTorch's answer are both acceptable
                    o = [H + s[0] + rng.randint(0, 3), W + s[1] + rng.randint(0, 3)]
                    _bad(cases, f"{tag}-inconsistent-{o}", lambda x=x, b=idx, geo=geo, o=o: disp(x, b, *geo, o),
                         op, "output_size",
                         allow_result=_equal_to(lambda x=x, b=idx, o=o: torch.ops.aten.max_unpool2d(
                             x.cpu(), b.cpu(), o)))
        elif cat == "rank":
            r = rng.choice([1, 2, 5] if level == "api" else [2, 3, 5])
            xr = x.reshape(-1) if r == 1 else x.reshape(N * C, h * w) if r == 2 else \
                x.reshape(N * C, h, w) if r == 3 else x.reshape(1, N, C, h, w)
            ir = idx.reshape(xr.shape)
            _bad(cases, f"{tag}-{r}d", lambda x=xr, b=ir, geo=geo, c=call: c(x, b, *geo, None), op, "input")
        elif cat == "not_tensor":
            if level != "api":
                continue
            if rng.random() < 0.5:
                _bad(cases, f"{tag}-input", lambda x=x.tolist(), b=idx, geo=geo: api(x, b, *geo), op, "input",
                     exc=["TypeError", "ValueError"])
            else:
                _bad(cases, f"{tag}-indices", lambda x=x, b=idx.tolist(), geo=geo: api(x, b, *geo), op, "indices",
                     exc=["TypeError", "ValueError"])
        elif cat == "backward_idx":
            # the backward op is a public dispatcher op too: a gather with a bad index must raise
            g = randn((N, C, H, W), torch.float32, device, gen)
            bad = idx.clone()
            bad.view(-1)[rng.randrange(bad.numel())] = rng.choice([-1, H * W, 2 ** 40, -(2 ** 40)])
            _bad(cases, "dispatch-backward-idx", lambda g=g, b=bad: bwd(g, b), op, "indices", exc=["RuntimeError"])
    if device == "cuda":
        x = torch.randn(1, 1, 2, 2, device="cuda")
        idx = torch.zeros(1, 1, 2, 2, dtype=torch.int64)
        _bad(cases, "device-mismatch", lambda: api(x, idx, 2), op, "(indices|device)")
    return cases


def bad_max_pool2d_compact(device: str = "cpu", n: int = 100, seed: int = 0) -> List[BadCase]:
    op = "max_pool2d_compact"
    rng = random.Random(f"bad/{op}/{seed}")
    gen = torch_gen(seed)
    cases: List[BadCase] = []
    api, disp = fops.max_pool2d_compact, _dispatch("max_pool2d_compact")
    bwd = _dispatch("max_pool2d_compact_backward")
    while len(cases) < n:
        level = rng.choice(["api", "dispatch"])
        N, C = rng.randint(1, 2), rng.randint(1, 3)
        H, W = rng.randint(4, 8), rng.randint(4, 8)
        x = randn((N, C, H, W), torch.float32, device, gen)
        k, s, p = [2, 2], [2, 2], [0, 0]
        call = (lambda xx, kk, ss, pp, cm=False: api(xx, kk, ss, pp, cm)) if level == "api" else (
            lambda xx, kk, ss, pp, cm=False: disp(xx, kk, ss, pp, cm))
        cat = rng.choice(["big_kernel", "padding_gt_half", "kernel", "stride", "padding", "input_dtype", "rank",
                          "too_small", "not_tensor", "backward_offsets"])
        tag = f"{level}-{cat}"
        if cat == "big_kernel":
            kk = rng.choice([[16, 16], [1, 256], [256, 1], [17, 16], [128, 2], [300, 300]])
            xb = randn((1, 1, kk[0], kk[1]), torch.float32, device, gen)
            _bad(cases, f"{tag}-{kk}", lambda x=xb, kk=kk, c=call: c(x, kk, [1, 1], [0, 0]), op, "kernel_size",
                 exc=["ValueError", "RuntimeError"])
        elif cat == "padding_gt_half":
            kk = rng.choice([[2, 2], [3, 3], [1, 1], [4, 3]])
            pp = [kk[0] // 2 + 1, 0] if rng.random() < 0.5 else [0, kk[1] // 2 + 1]
            _bad(cases, f"{tag}-k{kk}-p{pp}", lambda x=x, kk=kk, pp=pp, c=call: c(x, kk, [1, 1], pp), op, "padding")
        elif cat in ("kernel", "stride", "padding"):
            badv = rng.choice([0, -1, -4]) if cat != "padding" else rng.choice([-1, -2])
            g = [k, s, p]
            i = ("kernel", "stride", "padding").index(cat)
            g[i] = _int_pair_variants(rng, badv)
            if level == "dispatch" and isinstance(g[i], int):
                g[i] = [g[i], g[i]]
            if level == "dispatch" and rng.random() < 0.3:
                g[i] = [1] * rng.choice([1, 3])  # wrong number of entries
            name = {"kernel": "kernel_size"}.get(cat, cat)
            _bad(cases, f"{tag}-{g[i]}", lambda x=x, g=g, c=call: c(x, *g), op, name)
        elif cat == "input_dtype":
            dt = rng.choice([torch.int64, torch.int32, torch.uint8, torch.bool])
            _bad(cases, f"{tag}-{dt}", lambda x=x.to(dt), c=call: c(x, k, s, p), op, "input")
        elif cat == "rank":
            r = rng.choice([1, 2, 5] if level == "api" else [2, 3, 5])
            xr = x.reshape(-1) if r == 1 else x.reshape(N * C * H, W) if r == 2 else \
                x.reshape(N * C, H, W) if r == 3 else x.reshape(1, N, C, H, W)
            _bad(cases, f"{tag}-{r}d", lambda x=xr, c=call: c(x, k, s, p), op, "input")
        elif cat == "too_small":
            # the window does not fit: PyTorch raises "Output size is too small"
            xs = randn((N, C, rng.randint(1, 2), rng.randint(1, 2)), torch.float32, device, gen)
            _bad(cases, f"{tag}-{tuple(xs.shape)}", lambda x=xs, c=call: c(x, [5, 5], [1, 1], [0, 0]), op,
                 "(input|kernel_size|output)")
        elif cat == "not_tensor":
            if level != "api":
                continue
            _bad(cases, tag, lambda x=x.tolist(): api(x, 2), op, "input", exc=["TypeError", "ValueError"])
        elif cat == "backward_offsets":
            h, w = H // 2, W // 2
            g = randn((N, C, h, w), torch.float32, device, gen)
            off = torch.randint(0, 4, (N, C, h, w), generator=gen).to(torch.uint8)
            off.view(-1)[rng.randrange(off.numel())] = rng.choice([4, 5, 200, 255])
            off = off.to(device)
            _bad(cases, "dispatch-backward-offsets", lambda g=g, o=off: bwd(g, o, [H, W], k, s, p), op, "offsets",
                 exc=["RuntimeError"])
    return cases


def bad_max_unpool2d_compact(device: str = "cpu", n: int = 100, seed: int = 0) -> List[BadCase]:
    op = "max_unpool2d_compact"
    rng = random.Random(f"bad/{op}/{seed}")
    gen = torch_gen(seed)
    cases: List[BadCase] = []
    api, disp = fops.max_unpool2d_compact, _dispatch("max_unpool2d_compact")
    bwd = _dispatch("max_unpool2d_compact_backward")
    while len(cases) < n:
        level = rng.choice(["api", "dispatch"])
        N, C, h, w = rng.randint(1, 2), rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 4)
        k = (rng.randint(1, 3), rng.randint(2, 3))
        s = (rng.randint(1, 3), rng.randint(1, 3))
        p = (rng.randint(0, k[0] // 2), rng.randint(0, k[1] // 2))
        H, W = default_unpool_hw(h, w, k, s, p)
        off = random_valid_offsets(rng, gen, (N, C, h, w), k, s, p, H, W)
        if off is None:
            continue
        v = randn((N, C, h, w), torch.float32, device, gen)
        off = off.to(device)
        geo = (list(k), list(s), list(p))
        call = (lambda *a: api(*a)) if level == "api" else (lambda vv, oo, kk, ss, pp, os_, H=H, W=W: disp(
            vv, oo, kk, ss, pp, [H, W] if os_ is None else os_))
        cat = rng.choice(["off_window", "off_outside", "off_dtype", "values_dtype", "shape", "kernel", "stride",
                          "padding", "big_kernel", "output_size", "rank", "backward_offsets"])
        tag = f"{level}-{cat}"
        if cat == "off_window":
            bad = off.clone()
            bad.view(-1)[rng.randrange(bad.numel())] = rng.choice([k[0] * k[1], k[0] * k[1] + 1, 200, 255])
            _bad(cases, tag, lambda v=v, b=bad, geo=geo, c=call: c(v, b, *geo, None), op, "offsets",
                 exc=["RuntimeError"])
        elif cat == "off_outside":
            # an offset inside its window whose position lies outside the output plane
            outside = []
            for oh in range(h):
                for ow in range(w):
                    for dy in range(k[0]):
                        for dx in range(k[1]):
                            y, xx = oh * s[0] - p[0] + dy, ow * s[1] - p[1] + dx
                            if not (0 <= y < H and 0 <= xx < W):
                                outside.append((oh, ow, dy * k[1] + dx))
            if not outside:
                continue
            oh, ow, o = rng.choice(outside)
            bad = off.clone()
            bad[rng.randrange(N), rng.randrange(C), oh, ow] = o
            _bad(cases, f"{tag}-({oh},{ow})={o}", lambda v=v, b=bad, geo=geo, c=call: c(v, b, *geo, None), op,
                 "offsets", exc=["RuntimeError"])
        elif cat == "off_dtype":
            dt = rng.choice([torch.int64, torch.int32, torch.int8, torch.float32, torch.bool])
            _bad(cases, f"{tag}-{dt}", lambda v=v, b=off.to(dt), geo=geo, c=call: c(v, b, *geo, None), op,
                 "offsets")
        elif cat == "values_dtype":
            dt = rng.choice([torch.int64, torch.int32, torch.uint8])
            _bad(cases, f"{tag}-{dt}", lambda v=v.to(dt), b=off, geo=geo, c=call: c(v, b, *geo, None), op,
                 "values")
        elif cat == "shape":
            which = rng.choice(["N", "C", "h", "w"])
            shp = list(off.shape)
            shp["NChw".index(which)] += 1
            b = torch.zeros(shp, dtype=torch.uint8, device=device)
            _bad(cases, f"{tag}-{which}", lambda v=v, b=b, geo=geo, c=call: c(v, b, *geo, None), op, "offsets")
        elif cat in ("kernel", "stride", "padding"):
            badv = rng.choice([0, -1]) if cat != "padding" else -1
            g = list(geo)
            i = ("kernel", "stride", "padding").index(cat)
            g[i] = _int_pair_variants(rng, badv)
            if level == "dispatch" and isinstance(g[i], int):
                g[i] = [g[i], g[i]]
            if level == "dispatch" and rng.random() < 0.3:
                g[i] = [2] * rng.choice([1, 3])
            name = {"kernel": "kernel_size"}.get(cat, cat)
            _bad(cases, f"{tag}-{g[i]}", lambda v=v, b=off, g=g, c=call: c(v, b, *g, None), op, name)
        elif cat == "big_kernel":
            kk = rng.choice([[16, 16], [1, 256], [256, 1], [20, 20]])
            o = None if level == "api" else [(h - 1) * kk[0] + kk[0], (w - 1) * kk[1] + kk[1]]
            _bad(cases, f"{tag}-{kk}", lambda v=v, b=off, kk=kk, o=o, c=call: c(v, b, kk, kk, [0, 0], o), op,
                 "kernel_size", exc=["ValueError", "RuntimeError"])
        elif cat == "output_size":
            if level == "api":
                o = rng.choice([(H + s[0], W), (H, W + s[1] + 2), (2 ** 40, W), (H,), (1, C, H, W, 1)])
                _bad(cases, f"{tag}-{o}", lambda v=v, b=off, geo=geo, o=o: api(v, b, *geo, o), op, "output_size")
            else:
                o = rng.choice([[-1, W], [H, -1], [H], [H, W, 1]])
                _bad(cases, f"{tag}-{o}", lambda v=v, b=off, geo=geo, o=o: disp(v, b, *geo, o), op, "output_size")
        elif cat == "rank":
            r = rng.choice([2, 5] if level == "api" else [2, 3, 5])
            vr = v.reshape(N * C * h, w) if r == 2 else v.reshape(N * C, h, w) if r == 3 else v.reshape(1, N, C, h, w)
            _bad(cases, f"{tag}-{r}d", lambda v=vr, b=off.reshape(vr.shape), geo=geo, c=call: c(v, b, *geo, None),
                 op, "values")
        elif cat == "backward_offsets":
            g = randn((N, C, H, W), torch.float32, device, gen)
            bad = off.clone()
            bad.view(-1)[rng.randrange(bad.numel())] = rng.choice([k[0] * k[1], 255])
            _bad(cases, "dispatch-backward-offsets", lambda g=g, b=bad, geo=geo: bwd(g, b, *geo), op, "offsets",
                 exc=["RuntimeError"])
    return cases


def _bad_scale(op: str, device: str, n: int, seed: int) -> List[BadCase]:
    rng = random.Random(f"bad/{op}/{seed}")
    gen = torch_gen(seed)
    cases: List[BadCase] = []
    api, disp = getattr(fops, op), _dispatch(op)
    ref = getattr(R, op)
    bwd = _dispatch(op + "_backward")
    while len(cases) < n:
        level = rng.choice(["api", "dispatch"])
        N, C, h, w = rng.randint(1, 2), rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 4)
        x = randn((N, C, h, w), torch.float32, device, gen)
        call = api if level == "api" else disp
        cat = rng.choice(["scale", "scale_len", "scale_float", "rank", "input_dtype", "not_tensor", "backward"])
        tag = f"{level}-{cat}"
        if cat == "scale":
            sc = rng.choice([0, -1, -2, (0, 2), (2, 0), (-1, -1), (3, -2)])
            if level == "dispatch":
                sc = [sc, sc] if isinstance(sc, int) else list(sc)
            _bad(cases, f"{tag}-{sc}", lambda x=x, sc=sc, c=call: c(x, sc), op, "scale_factor")
        elif cat == "scale_len":
            sc = rng.choice([[2], [2, 2, 2], []])
            if level == "dispatch" and not sc:
                continue
            _bad(cases, f"{tag}-{sc}", lambda x=x, sc=sc, c=call: c(x, sc), op, "scale_factor")
        elif cat == "scale_float":
            if level != "api":
                continue
            sc = rng.choice([1.5, 0.5, (2, 1.5)])
            _bad(cases, f"{tag}-{sc}", lambda x=x, sc=sc: api(x, sc), op, "scale_factor")
        elif cat == "rank":
            r = rng.choice([1, 2, 5] if level == "api" else [2, 3, 5])
            xr = x.reshape(-1) if r == 1 else x.reshape(N * C * h, w) if r == 2 else \
                x.reshape(N * C, h, w) if r == 3 else x.reshape(1, N, C, h, w)
            sc = 2 if level == "api" else [2, 2]
            _bad(cases, f"{tag}-{r}d", lambda x=xr, sc=sc, c=call: c(x, sc), op, "input")
        elif cat == "input_dtype":
            # integer images: raising (naming input) and moving the values correctly are both fine
            dt = rng.choice([torch.int64, torch.int32, torch.uint8])
            xi = torch.randint(0, 100, (N, C, h, w), generator=gen).to(dt).to(device)
            sc = 2 if level == "api" else [2, 2]
            _bad(cases, f"{tag}-{dt}", lambda x=xi, sc=sc, c=call: c(x, sc), op, "input",
                 allow_result=_equal_to(lambda x=xi: ref(x.cpu(), 2)))
        elif cat == "not_tensor":
            if level != "api":
                continue
            _bad(cases, tag, lambda x=x.tolist(): api(x, 2), op, "input", exc=["TypeError", "ValueError"])
        elif cat == "backward":
            choice = rng.choice(["scale", "rank"])
            if choice == "scale":
                g = randn((N, C, 2 * h, 2 * w), torch.float32, device, gen)
                sc = rng.choice([[0, 2], [-1, -1], [2, 0]])
                _bad(cases, f"dispatch-backward-scale-{sc}", lambda g=g, sc=sc: bwd(g, sc), op, "scale_factor")
            else:
                g = randn((N * C, 2 * h, 2 * w), torch.float32, device, gen)
                _bad(cases, "dispatch-backward-rank", lambda g=g: bwd(g, [2, 2]), op, "grad_output")
    return cases


def bad_unpool_nearest2d(device: str = "cpu", n: int = 100, seed: int = 0) -> List[BadCase]:
    return _bad_scale("unpool_nearest2d", device, n, seed)


def bad_unpool_bed_of_nails2d(device: str = "cpu", n: int = 100, seed: int = 0) -> List[BadCase]:
    return _bad_scale("unpool_bed_of_nails2d", device, n, seed)


BAD = {op: f"unpool_cases:bad_{op}" for op in OPS}


# ----------------------------------------------------------------------------- named cases (test_unpool.py)


def _shape_is(*shapes):
    """allow_result predicate: an empty result (or tuple of results) with exactly these shapes."""
    def pred(result):
        res = result if isinstance(result, tuple) else (result,)
        return len(res) == len(shapes) and all(
            isinstance(r, torch.Tensor) and tuple(r.shape) == tuple(s) and r.numel() == 0 for r, s in zip(res, shapes))
    return pred


def zero_channel_cases(device: str = "cpu", op: str = "max_unpool2d", start: int = 0) -> List[BadCase]:
    """C == 0: an empty result of the right shape, or an error naming the input."""
    v = torch.zeros(2, 0, 3, 3, device=device)
    i = torch.zeros(2, 0, 3, 3, dtype=torch.int64, device=device)
    o = torch.zeros(2, 0, 3, 3, dtype=torch.uint8, device=device)
    x = torch.zeros(2, 0, 4, 4, device=device)
    fns = {
        "max_unpool2d": (lambda: fops.max_unpool2d(v, i, 2), [(2, 0, 6, 6)]),
        "max_pool2d_compact": (lambda: fops.max_pool2d_compact(x, 2), [(2, 0, 2, 2), (2, 0, 2, 2)]),
        "max_unpool2d_compact": (lambda: fops.max_unpool2d_compact(v, o, 2), [(2, 0, 6, 6)]),
        "unpool_nearest2d": (lambda: fops.unpool_nearest2d(v, 2), [(2, 0, 6, 6)]),
        "unpool_bed_of_nails2d": (lambda: fops.unpool_bed_of_nails2d(v, (2, 1)), [(2, 0, 6, 3)]),
    }
    fn, shapes = fns[op]
    cases: List[BadCase] = [None] * start  # keeps the case numbering of the caller
    _bad(cases, f"api-{op}-C=0", fn, op, "(input|values)", allow_result=_shape_is(*shapes))
    return cases[start:]


def named_bad_cases(device: str = "cpu") -> List[BadCase]:
    """Each documented precondition once, with a readable id, at the Python API ("api") and at
    the dispatcher op ("disp")."""
    D = _dispatch
    MU, MUB = D("max_unpool2d"), D("max_unpool2d_backward")
    PC, PCB = D("max_pool2d_compact"), D("max_pool2d_compact_backward")
    MUC, MUCB = D("max_unpool2d_compact"), D("max_unpool2d_compact_backward")
    c: List[BadCase] = []
    dev = device
    v = torch.randn(1, 2, 3, 3, device=dev)
    i = torch.zeros(1, 2, 3, 3, dtype=torch.int64, device=dev)  # k=2: 6x6 plane

    def with_index(val):
        b = i.clone()
        b[0, 1, 2, 1] = val
        return b

    op = "max_unpool2d"
    for name, val in (("-1", -1), ("H*W", 36), ("H*W+1", 37), ("2^31", 2 ** 31), ("2^32", 2 ** 32),
                      ("2^32+5", 2 ** 32 + 5), ("2^40", 2 ** 40), ("int64_max", 2 ** 63 - 1),
                      ("int64_min", -(2 ** 63)), ("-2^32", -(2 ** 32))):
        b = with_index(val)
        _bad(c, f"api-{op}-index={name}", lambda b=b: fops.max_unpool2d(v, b, 2), op, "indices", exc=["RuntimeError"])
        _bad(c, f"disp-{op}-index={name}", lambda b=b: MU(v, b, [2, 2], [2, 2], [0, 0], [6, 6]), op, "indices",
             exc=["RuntimeError"])
    b = i.clone()
    b.fill_(36)  # out of range in the explicit, smaller plane (5x5 = 25 < 36)... and larger index
    _bad(c, f"api-{op}-index-out-of-smaller-output", lambda: fops.max_unpool2d(v, with_index(25), 2, 2, 0, (5, 5)),
         op, "indices", exc=["RuntimeError"])
    for dt in (torch.int32, torch.float32, torch.uint8):
        _bad(c, f"api-{op}-indices-{dt}", lambda dt=dt: fops.max_unpool2d(v, i.to(dt), 2), op, "indices")
        _bad(c, f"disp-{op}-indices-{dt}", lambda dt=dt: MU(v, i.to(dt), [2, 2], [2, 2], [0, 0], [6, 6]), op,
             "indices")
    for dt in (torch.int64, torch.int32):
        _bad(c, f"api-{op}-input-{dt}", lambda dt=dt: fops.max_unpool2d(v.to(dt), i, 2), op, "input")
        _bad(c, f"disp-{op}-input-{dt}", lambda dt=dt: MU(v.to(dt), i, [2, 2], [2, 2], [0, 0], [6, 6]), op, "input")
    for name, b in (("C", i[:, :1]), ("H", i[:, :, :2]), ("N", i.expand(2, 2, 3, 3)), ("3d", i[0])):
        _bad(c, f"api-{op}-indices-shape-{name}", lambda b=b: fops.max_unpool2d(v, b, 2), op, "indices")
        _bad(c, f"disp-{op}-indices-shape-{name}", lambda b=b: MU(v, b, [2, 2], [2, 2], [0, 0], [6, 6]), op,
             "indices")
    for arg, bad in (("kernel_size", 0), ("kernel_size", -2), ("kernel_size", (2, 0)), ("stride", 0),
                     ("stride", (-1, 2)), ("padding", -1), ("padding", (0, -1))):
        kw = dict(kernel_size=2, stride=None, padding=0)
        kw[arg] = bad
        _bad(c, f"api-{op}-{arg}={bad}", lambda kw=kw: fops.max_unpool2d(v, i, **kw), op, arg)
        geo = {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]}
        geo[arg] = [bad, bad] if isinstance(bad, int) else list(bad)
        _bad(c, f"disp-{op}-{arg}={bad}", lambda geo=geo: MU(v, i, geo["kernel_size"], geo["stride"],
                                                               geo["padding"], [6, 6]), op, arg)
    for arg in ("kernel_size", "stride", "padding"):
        geo = {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]}
        geo[arg] = [2, 2, 2]
        _bad(c, f"disp-{op}-{arg}-3-entries", lambda geo=geo: MU(v, i, geo["kernel_size"], geo["stride"],
                                                                   geo["padding"], [6, 6]), op, arg)
    for out in ((8, 6), (4, 6), (6, 8), (6, 4), (6,), (1, 2, 6, 6, 1), (-6, 6)):
        _bad(c, f"api-{op}-output_size={out}", lambda out=out: fops.max_unpool2d(v, i, 2, output_size=out), op,
             "output_size")
    for out in ([-1, 6], [6, -1], [6], [6, 6, 6]):
        _bad(c, f"disp-{op}-output_size={out}", lambda out=out: MU(v, i, [2, 2], [2, 2], [0, 0], out), op,
             "output_size")
    for name, t, b in (("2d", v[0, 0], i[0, 0]), ("5d", v[None], i[None])):
        _bad(c, f"api-{op}-input-{name}", lambda t=t, b=b: fops.max_unpool2d(t, b, 2), op, "input")
    _bad(c, f"disp-{op}-input-3d", lambda: MU(v[0], i[0], [2, 2], [2, 2], [0, 0], [6, 6]), op, "input")
    _bad(c, f"api-{op}-indices-list", lambda: fops.max_unpool2d(v, i.tolist(), 2), op, "indices",
         exc=["TypeError", "ValueError"])
    g = torch.randn(1, 2, 6, 6, device=dev)
    _bad(c, f"disp-{op}_backward-index=36", lambda: MUB(g, with_index(36)), op, "indices",
         exc=["RuntimeError"])
    _bad(c, f"disp-{op}_backward-index=-1", lambda: MUB(g, with_index(-1)), op, "indices",
         exc=["RuntimeError"])
    _bad(c, f"disp-{op}_backward-indices-int32", lambda: MUB(g, i.int()), op, "indices")

    op = "max_pool2d_compact"
    x = torch.randn(1, 2, 16, 16, device=dev)
    for k in ((16, 16), (1, 256), (17, 16)):
        xk = torch.randn(1, 1, max(k[0], 2), max(k[1], 2), device=dev)
        _bad(c, f"api-{op}-kernel_size={k}", lambda xk=xk, k=k: fops.max_pool2d_compact(xk, k), op, "kernel_size",
             exc=["ValueError"])
        _bad(c, f"disp-{op}-kernel_size={k}", lambda xk=xk, k=k: PC(xk, list(k), [1, 1], [0, 0], False), op,
             "kernel_size", exc=["RuntimeError", "ValueError"])
    for k, p in ((2, 2), (3, 2), ((4, 2), (0, 2))):
        _bad(c, f"api-{op}-padding={p}-kernel={k}", lambda k=k, p=p: fops.max_pool2d_compact(x, k, 1, p), op,
             "padding")
        kk = [k, k] if isinstance(k, int) else list(k)
        pp = [p, p] if isinstance(p, int) else list(p)
        _bad(c, f"disp-{op}-padding={p}-kernel={k}", lambda kk=kk, pp=pp: PC(x, kk, [1, 1], pp, False), op,
             "padding")
    for arg, bad in (("kernel_size", 0), ("stride", 0), ("stride", -2), ("padding", -1)):
        kw = dict(kernel_size=2, stride=2, padding=0)
        kw[arg] = bad
        _bad(c, f"api-{op}-{arg}={bad}", lambda kw=kw: fops.max_pool2d_compact(x, **kw), op, arg)
        geo = {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]}
        geo[arg] = [bad, bad]
        _bad(c, f"disp-{op}-{arg}={bad}", lambda geo=geo: PC(x, geo["kernel_size"], geo["stride"],
                                                               geo["padding"], False), op, arg)
    _bad(c, f"disp-{op}-kernel_size-1-entry", lambda: PC(x, [2], [2, 2], [0, 0], False), op, "kernel_size")
    for dt in (torch.int64, torch.uint8):
        _bad(c, f"api-{op}-input-{dt}", lambda dt=dt: fops.max_pool2d_compact(x.to(dt), 2), op, "input")
        _bad(c, f"disp-{op}-input-{dt}", lambda dt=dt: PC(x.to(dt), [2, 2], [2, 2], [0, 0], False), op, "input")
    _bad(c, f"api-{op}-input-5d", lambda: fops.max_pool2d_compact(x[None], 2), op, "input")
    _bad(c, f"disp-{op}-input-3d", lambda: PC(x[0], [2, 2], [2, 2], [0, 0], False), op, "input")
    _bad(c, f"api-{op}-window-larger-than-input", lambda: fops.max_pool2d_compact(x[..., :2, :2], 5), op,
         "(input|kernel_size)")
    _bad(c, f"disp-{op}-window-larger-than-input", lambda: PC(x[..., :2, :2], [5, 5], [1, 1], [0, 0], False), op,
         "(input|kernel_size)")
    gv = torch.randn(1, 2, 8, 8, device=dev)
    badoff = torch.zeros(1, 2, 8, 8, dtype=torch.uint8, device=dev)
    badoff[0, 0, 3, 3] = 4
    _bad(c, f"disp-{op}_backward-offset=k*k", lambda: PCB(gv, badoff, [16, 16], [2, 2], [2, 2], [0, 0]),
         op, "offsets", exc=["RuntimeError"])

    op = "max_unpool2d_compact"
    vv = torch.randn(1, 2, 3, 3, device=dev)
    off = torch.zeros(1, 2, 3, 3, dtype=torch.uint8, device=dev)
    for val in (4, 5, 255):
        b = off.clone()
        b[0, 1, 1, 2] = val
        _bad(c, f"api-{op}-offset={val}", lambda b=b: fops.max_unpool2d_compact(vv, b, 2), op, "offsets",
             exc=["RuntimeError"])
        _bad(c, f"disp-{op}-offset={val}", lambda b=b: MUC(vv, b, [2, 2], [2, 2], [0, 0], [6, 6]), op, "offsets",
             exc=["RuntimeError"])
    # 3x3 s2 p1: window (0, 0) starts at (-1, -1); offset 0 is in the padding
    _bad(c, f"api-{op}-offset-in-padding", lambda: fops.max_unpool2d_compact(vv, off, 3, 2, 1), op, "offsets",
         exc=["RuntimeError"])
    _bad(c, f"disp-{op}-offset-in-padding", lambda: MUC(vv, off, [3, 3], [2, 2], [1, 1], [5, 5]), op, "offsets",
         exc=["RuntimeError"])
    # output 5x6 < default 6x6: offset 2 of window row 2 points at row 5
    b = off.clone()
    b[0, 0, 2, 0] = 2
    _bad(c, f"api-{op}-offset-past-smaller-output", lambda: fops.max_unpool2d_compact(vv, b, 2, 2, 0, (5, 6)), op,
         "offsets", exc=["RuntimeError"])
    _bad(c, f"disp-{op}-offset-past-smaller-output", lambda: MUC(vv, b, [2, 2], [2, 2], [0, 0], [5, 6]), op,
         "offsets", exc=["RuntimeError"])
    for dt in (torch.int64, torch.int8, torch.float32):
        _bad(c, f"api-{op}-offsets-{dt}", lambda dt=dt: fops.max_unpool2d_compact(vv, off.to(dt), 2), op, "offsets")
        _bad(c, f"disp-{op}-offsets-{dt}", lambda dt=dt: MUC(vv, off.to(dt), [2, 2], [2, 2], [0, 0], [6, 6]), op,
             "offsets")
    _bad(c, f"api-{op}-values-int64", lambda: fops.max_unpool2d_compact(vv.long(), off, 2), op, "values")
    _bad(c, f"disp-{op}-values-int64", lambda: MUC(vv.long(), off, [2, 2], [2, 2], [0, 0], [6, 6]), op, "values")
    _bad(c, f"api-{op}-offsets-shape", lambda: fops.max_unpool2d_compact(vv, off[:, :1], 2), op, "offsets")
    _bad(c, f"disp-{op}-offsets-shape", lambda: MUC(vv, off[:, :, :2], [2, 2], [2, 2], [0, 0], [6, 6]), op,
         "offsets")
    _bad(c, f"api-{op}-kernel_size=16x16", lambda: fops.max_unpool2d_compact(vv, off, 16), op, "kernel_size",
         exc=["ValueError"])
    _bad(c, f"disp-{op}-kernel_size=16x16", lambda: MUC(vv, off, [16, 16], [16, 16], [0, 0], [48, 48]), op,
         "kernel_size", exc=["RuntimeError", "ValueError"])
    for arg, bad in (("kernel_size", 0), ("stride", 0), ("padding", -1)):
        kw = dict(kernel_size=2, stride=2, padding=0)
        kw[arg] = bad
        _bad(c, f"api-{op}-{arg}={bad}", lambda kw=kw: fops.max_unpool2d_compact(vv, off, **kw), op, arg)
        geo = {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]}
        geo[arg] = [bad, bad]
        _bad(c, f"disp-{op}-{arg}={bad}", lambda geo=geo: MUC(vv, off, geo["kernel_size"], geo["stride"],
                                                               geo["padding"], [6, 6]), op, arg)
    for out in ((8, 6), (4, 6), (6,)):
        _bad(c, f"api-{op}-output_size={out}", lambda out=out: fops.max_unpool2d_compact(vv, off, 2, output_size=out),
             op, "output_size")
    _bad(c, f"disp-{op}-output_size=[-1,6]", lambda: MUC(vv, off, [2, 2], [2, 2], [0, 0], [-1, 6]), op,
         "output_size")
    _bad(c, f"api-{op}-values-2d", lambda: fops.max_unpool2d_compact(vv[0, 0], off[0, 0], 2), op, "values")
    _bad(c, f"disp-{op}-values-3d", lambda: MUC(vv[0], off[0], [2, 2], [2, 2], [0, 0], [6, 6]), op, "values")
    g = torch.randn(1, 2, 6, 6, device=dev)
    b = off.clone()
    b[0, 0, 0, 0] = 4
    _bad(c, f"disp-{op}_backward-offset=k*k", lambda: MUCB(g, b, [2, 2], [2, 2], [0, 0]), op,
         "offsets", exc=["RuntimeError"])

    for op in ("unpool_nearest2d", "unpool_bed_of_nails2d"):
        fn = getattr(fops, op)
        for bad in (0, -1, (2, 0), (0, 2), (-2, 3), 1.5, (2, 2, 2), [2]):
            _bad(c, f"api-{op}-scale_factor={bad}", lambda fn=fn, bad=bad: fn(v, bad), op, "scale_factor")
        for bad in ([0, 0], [-1, 2], [2, 0], [2], [2, 2, 2]):
            _bad(c, f"disp-{op}-scale_factor={bad}", lambda op=op, bad=bad: D(op)(v, bad), op, "scale_factor")
            _bad(c, f"disp-{op}_backward-scale_factor={bad}", lambda op=op, bad=bad: D(op + "_backward")(g, bad), op,
                 "scale_factor")
        _bad(c, f"api-{op}-input-2d", lambda fn=fn: fn(v[0, 0], 2), op, "input")
        _bad(c, f"api-{op}-input-5d", lambda fn=fn: fn(v[None], 2), op, "input")
        _bad(c, f"disp-{op}-input-3d", lambda op=op: D(op)(v[0], [2, 2]), op, "input")
        _bad(c, f"api-{op}-input-list", lambda fn=fn: fn(v.tolist(), 2), op, "input", exc=["TypeError", "ValueError"])
        # a grad_output whose size is not a multiple of the scale factor
        _bad(c, f"disp-{op}_backward-grad_output-7x6-scale-2", lambda op=op: D(op + "_backward")(
            torch.randn(1, 2, 7, 6, device=dev), [2, 2]), op, "grad_output")
    for op in OPS:
        c += zero_channel_cases(device, op, start=len(c))
    if device == "cuda":
        for op, fn in (("max_unpool2d", lambda: fops.max_unpool2d(v, i.cpu(), 2)),
                       ("max_unpool2d_compact", lambda: fops.max_unpool2d_compact(vv, off.cpu(), 2))):
            _bad(c, f"api-{op}-device-mismatch", fn, op, "(indices|offsets|device)")
    return c


def overflow_bad_cases(device: str = "cpu") -> List[BadCase]:
    """Arguments so large that int64 arithmetic on them wraps around: the checks must not be
    fooled (a wrapped product or output size must not pass a check or make an empty output),
    and the message names the argument that is too large."""
    dev = device
    PC, MUC = _dispatch("max_pool2d_compact"), _dispatch("max_unpool2d_compact")
    c: List[BadCase] = []
    x4 = torch.randn(1, 1, 4, 4, device=dev)
    vv = torch.randn(1, 2, 3, 3, device=dev)
    off = torch.zeros(1, 2, 3, 3, dtype=torch.uint8, device=dev)
    for op, bad in (("unpool_nearest2d", 2 ** 62), ("unpool_nearest2d", (1, 2 ** 62)),
                    ("unpool_bed_of_nails2d", (2 ** 62, 1)), ("unpool_bed_of_nails2d", 2 ** 63 - 1)):
        fn = getattr(fops, op)
        _bad(c, f"api-{op}-scale_factor={bad}-output-size-overflows", lambda fn=fn, bad=bad: fn(x4, bad), op,
             "scale_factor")
    op = "max_pool2d_compact"
    for pad in ([2 ** 62, 2 ** 62], [2 ** 62 + 1, 0]):
        _bad(c, f"disp-{op}-padding={pad}-2p-overflows", lambda pad=pad: PC(x4, [2, 2], [1, 1], pad, False), op,
             "padding")
    _bad(c, f"disp-{op}-kernel_size=[2^32,2^32]-product-overflows",
         lambda: PC(x4, [2 ** 32, 2 ** 32], [1, 1], [0, 0], False), op, "kernel_size")
    op = "max_unpool2d_compact"
    _bad(c, f"disp-{op}-kernel_size=[2^32,2^32]-product-overflows",
         lambda: MUC(vv, off, [2 ** 32, 2 ** 32], [1, 1], [0, 0], [6, 6]), op, "kernel_size")
    return c
