"""max_unpool2d_compact (uint8 window offsets): the check against F.max_unpool2d with the
equivalent int64 indices and fastseg.reference, generated valid cases
(`good_max_unpool2d_compact(seed)`) and generated bad inputs (`bad_max_unpool2d_compact`)."""
from __future__ import annotations

import random
from typing import Any, Dict, List

import pytest
import torch
import torch.nn.functional as F

import fastseg.ops as fops
from fastseg.reference import unpool as R

from helpers import BadCase, assert_memory_format, assert_same, torch_gen

from .common import (_bad, _cotangent, _dispatch, _dtype_layout_desc, _int_pair_variants, _maybe_unbatch,
                     _random_dtype, _random_layout, _valid_output_sizes, default_unpool_hw, norm_geometry,
                     offsets_in_plane, random_pool_geometry, random_valid_offsets, randn, unpool_hw)
from .max_unpool import expected_max_unpool2d

# ----------------------------------------------------------------------------- check


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


# ----------------------------------------------------------------------------- random valid cases


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


# ----------------------------------------------------------------------------- bad inputs


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
