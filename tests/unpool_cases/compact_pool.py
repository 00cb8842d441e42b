"""max_pool2d_compact (values + uint8 window offsets): the check against F.max_pool2d and
fastseg.reference, generated valid cases (`good_max_pool2d_compact(seed)`) and generated bad
inputs (`bad_max_pool2d_compact`)."""
from __future__ import annotations

import random
from typing import Any, Dict, List

import torch
import torch.nn.functional as F

import fastseg.ops as fops
from fastseg.reference import unpool as R

from helpers import BadCase, assert_close_tol, assert_memory_format, assert_same, torch_gen

from .common import (_bad, _cotangent, _dispatch, _dtype_layout_desc, _int_pair_variants, _maybe_unbatch,
                     _random_dtype, _random_layout, norm_geometry, random_pool_geometry, randn, tie_heavy)

# ----------------------------------------------------------------------------- check


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


# ----------------------------------------------------------------------------- random valid cases


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


# ----------------------------------------------------------------------------- bad inputs


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
