"""max_unpool2d (int64 indices): the check against PyTorch and fastseg.reference, generated valid
cases (`good_max_unpool2d(seed)`) and generated bad inputs (`bad_max_unpool2d`)."""
from __future__ import annotations

import random
from typing import Any, Dict, List

import pytest
import torch
import torch.nn.functional as F

import fastseg.ops as fops
from fastseg.reference import unpool as R

from helpers import BadCase, assert_memory_format, assert_same, single_thread, torch_gen

from .common import (HUGE, _bad, _cotangent, _dispatch, _dtype_layout_desc, _equal_to, _int_pair_variants,
                     _maybe_unbatch, _random_dtype, _random_layout, _valid_output_sizes, default_unpool_hw,
                     norm_geometry, pool_indices, random_pool_geometry, random_valid_offsets, randn, unpool_hw)

# ----------------------------------------------------------------------------- check


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


# ----------------------------------------------------------------------------- random valid cases


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


# ----------------------------------------------------------------------------- bad inputs


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
