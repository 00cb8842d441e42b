"""Inputs and checks for the transpose-convolution family, shared by test_conv_transpose.py and
test_conv_transpose_fuzz.py.

Expected values come from PyTorch itself (`F.conv_transpose2d` in float64 on the CPU, then the
slice) and, as a second opinion, from `fastseg.reference` (einsum + F.fold, independent of any
conv kernel). Nothing here calls fastseg's kernels to produce an expectation.
"""
from __future__ import annotations

import math
import random
from typing import Any, Dict, List, Tuple

import torch
import torch.nn.functional as F

import fastseg.ops as fops
import fastseg.testing
from fastseg.reference import conv_transpose as R

from helpers import LAYOUTS, BadCase, assert_memory_format, make_layout, strategy, torch_gen

#: Kernel strategies of fastseg::conv_transpose2d_crop (csrc/ops/conv_transpose/conv_transpose_ops.h),
#: forced with strategy(conv_transpose=name): "auto" picks by shape; the others force one (phase
#: GEMM needs dilation 1, else direct runs).
STRATEGIES = fastseg.testing.SETTINGS["conv_transpose"]


def full_size(hw, k, s, p, d) -> Tuple[int, int]:
    return tuple((hw[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1 for i in range(2))


def expected(x, w, b, s, p, d, g, crop, size) -> torch.Tensor:
    """PyTorch's transpose conv in float64 on the CPU, cropped (no input channels: the bias,
    which PyTorch's conv refuses to compute)."""
    if x.shape[1] == 0:
        full = full_size(x.shape[-2:], w.shape[-2:], s, p, d)
        y = torch.zeros(x.shape[0], w.shape[1] * g, *full, dtype=torch.float64)
        if b is not None:
            y += b.detach().double().cpu().view(1, -1, 1, 1)
        return y[:, :, crop[0]:crop[0] + size[0], crop[1]:crop[1] + size[1]]
    y = F.conv_transpose2d(x.detach().double().cpu(), w.detach().double().cpu(),
                           None if b is None else b.detach().double().cpu(), s, p, 0, g, d)
    return y[:, :, crop[0]:crop[0] + size[0], crop[1]:crop[1] + size[1]]


def magnitude(x, w, b, s, p, d, g, crop, size) -> torch.Tensor:
    """sum |x| |w| + |b| per output element: the scale of the rounding error of a sum of products."""
    return expected(x.abs(), w.abs(), None if b is None else b.abs(), s, p, d, g, crop, size)


def assert_close_sum(got: torch.Tensor, exp: torch.Tensor, mag: torch.Tensor, dtype, nterms: int, what=""):
    """|got - exp| <= (4 + sqrt(nterms)) * eps(dtype) * magnitude + tiny: exact up to the rounding
    of a sum of `nterms` products (accumulated in float32 or better) and the final rounding."""
    eps = torch.finfo(dtype).eps
    if dtype == torch.float64:
        eps = 1e-13
    bound = (4 + math.sqrt(max(nterms, 1))) * eps * mag + 1e-30
    err = (got.detach().double().cpu() - exp).abs()
    bad = err > bound
    if bad.any():
        i = int(bad.flatten().nonzero()[0])
        raise AssertionError(f"{what}: {int(bad.sum())} of {err.numel()} elements off; first at flat {i}: got "
                             f"{got.flatten()[i].item()}, expected {exp.flatten()[i].item()} (bound "
                             f"{bound.flatten()[i].item():.3g}), max err {err.max().item():.3g}")


def check(x, w, b, s, p, d, g, crop, size, *, grad: bool = True, reference: bool = True, desc: str = ""):
    """Runs fops.conv_transpose2d_crop and compares it (and, for float32/64, its gradients for
    input, weight and bias) with PyTorch; returns the output."""
    s, p, d, crop = (tuple(v) for v in (s, p, d, crop))
    got = fops.conv_transpose2d_crop(x, w, b, s, p, d, g, crop, size)
    full = full_size(x.shape[-2:], w.shape[-2:], s, p, d)
    size = tuple(size) if size is not None else (full[0] - crop[0], full[1] - crop[1])
    exp = expected(x, w, b, s, p, d, g, crop, size)
    assert got.shape == exp.shape, f"{desc}: shape {tuple(got.shape)} != {tuple(exp.shape)}"
    assert got.dtype == x.dtype and got.device == x.device, desc
    assert_memory_format(got, x)
    nterms = (x.shape[1] // g) * math.ceil(w.shape[2] / s[0]) * math.ceil(w.shape[3] / s[1]) + 1
    assert_close_sum(got, exp, magnitude(x, w, b, s, p, d, g, crop, size), x.dtype, nterms, desc)
    if reference and x.dtype == torch.float64 and x.shape[1] > 0:
        ref = R.conv_transpose2d_crop(x.cpu(), w.cpu(), None if b is None else b.cpu(), s, p, d, g, crop, size)
        torch.testing.assert_close(ref, exp, msg=lambda m: f"{desc}: reference disagrees with PyTorch\n{m}")
    if grad and x.dtype in (torch.float32, torch.float64) and got.numel() > 0 and x.shape[1] > 0:
        check_grads(x, w, b, s, p, d, g, crop, size, desc)
    return got


def check_grads(x, w, b, s, p, d, g, crop, size, desc=""):
    leaves = [t.detach().clone().requires_grad_() for t in (x, w, b) if t is not None]
    xx, ww = leaves[0], leaves[1]
    bb = leaves[2] if b is not None else None
    out = fops.conv_transpose2d_crop(xx, ww, bb, s, p, d, g, crop, size)
    cot = torch.randn(out.shape, generator=torch_gen(7), dtype=torch.float64).to(out.dtype).to(out.device)
    got = torch.autograd.grad(out, leaves, cot)
    ref_leaves = [t.detach().double().cpu().requires_grad_() for t in leaves]
    rb = ref_leaves[2] if b is not None else None
    full = F.conv_transpose2d(ref_leaves[0], ref_leaves[1], rb, s, p, 0, g, d)
    ref_out = full[:, :, crop[0]:crop[0] + size[0], crop[1]:crop[1] + size[1]]
    exp = torch.autograd.grad(ref_out, ref_leaves, cot.double().cpu())
    for name, a, e in zip(("input", "weight", "bias"), got, exp):
        tol = dict(atol=1e-9, rtol=1e-7) if a.dtype == torch.float64 else dict(atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(a.double().cpu(), e, **tol, msg=lambda m: f"{desc}: grad of {name}\n{m}")


# ----------------------------------------------------------------------------- generated inputs

DTYPE_WEIGHTS = ((torch.float32, 4), (torch.float64, 3), (torch.float16, 1), (torch.bfloat16, 1))


def good(seed: int, device: str = "cpu") -> Dict[str, Any]:
    """One random valid case: geometry (stride 1-4, kernel 1-7 or FCN's 16/32/64, padding,
    dilation, groups, crop anywhere inside), shape (odd, 1x1, empty batch), layout, dtype."""
    rng = random.Random(f"good/conv_transpose/{seed}")
    gen = torch_gen(seed)
    while True:
        g = rng.choice((1, 1, 1, 2, 3))
        cin, cout_g = g * rng.randint(0 if rng.random() < 0.03 else 1, 4), rng.randint(1, 4)
        if rng.random() < 0.1:  # FCN's score upsampling kernels
            s1 = rng.choice((8, 16, 32))
            k, s = (2 * s1, 2 * s1), (s1, s1)
            d, p = (1, 1), (rng.randint(0, 3),) * 2
            h, w = rng.randint(1, 3), rng.randint(1, 3)
        else:
            k = (rng.randint(1, 7), rng.randint(1, 7))
            s = (rng.randint(1, 4), rng.randint(1, 4))
            if rng.random() < 0.3:
                k = s  # U-Net's k == s
            d = (rng.choice((1, 1, 1, 2, 3)), rng.choice((1, 1, 2)))
            p = (rng.randint(0, 3), rng.randint(0, 3))
            h, w = rng.randint(1, 9), rng.randint(1, 9)
        full = full_size((h, w), k, s, p, d)
        if min(full) >= 1:
            break
    crop = (rng.randint(0, full[0] - 1), rng.randint(0, full[1] - 1))
    size = (rng.randint(0 if rng.random() < 0.05 else 1, full[0] - crop[0]),
            rng.randint(0 if rng.random() < 0.05 else 1, full[1] - crop[1]))
    n = 0 if rng.random() < 0.05 else rng.randint(1, 3)
    dtype = rng.choices([dt for dt, _ in DTYPE_WEIGHTS], [wt for _, wt in DTYPE_WEIGHTS])[0]
    x = torch.randn(n, cin, h, w, generator=gen, dtype=torch.float64).to(dtype)
    wt = torch.randn(cin, cout_g, *k, generator=gen, dtype=torch.float64).to(dtype)
    b = torch.randn(cout_g * g, generator=gen, dtype=torch.float64).to(dtype) if rng.random() < 0.7 else None
    x = make_layout(x, rng.choice(LAYOUTS)).to(device)
    wt = make_layout(wt, rng.choice(("contiguous", "noncontiguous"))).to(device)
    b = None if b is None else b.to(device)
    crop_arg = crop if rng.random() < 0.8 else list(crop)
    size_arg = None if (size[0] == full[0] - crop[0] and size[1] == full[1] - crop[1] and rng.random() < 0.5) else size
    return dict(x=x, w=wt, b=b, s=s, p=p, d=d, g=g, crop=crop_arg, size=size_arg,
                strategy=STRATEGIES[seed % len(STRATEGIES)],
                desc=f"seed={seed}: x{tuple(x.shape)} {dtype} w{tuple(wt.shape)} bias={b is not None} s={s} p={p} "
                     f"d={d} g={g} crop={crop} size={size} strategy={STRATEGIES[seed % len(STRATEGIES)]}")


def run_good(seed: int, device: str = "cpu"):
    """Runs case `seed`; on the CPU every other group of four seeds uses the per-element kernel
    form (the code the GPU runs) instead of the row form."""
    c = good(seed, device)
    form = "element" if device == "cpu" and (seed // len(STRATEGIES)) % 2 else "row"
    with strategy(conv_transpose=c["strategy"], cpu_row_kernels=form == "row"):
        check(c["x"], c["w"], c["b"], c["s"], c["p"], c["d"], c["g"], c["crop"], c["size"],
              grad=seed % 3 == 0, reference=seed % 5 == 0, desc=c["desc"])


# ----------------------------------------------------------------------------- bad inputs

def msg_re(arg: str) -> str:
    """The message starts "fastseg.conv_transpose2d_crop[_cat]: <argument>", or is the
    dispatcher's own schema error naming the argument."""
    return (rf"(?s)^(fastseg\.conv_transpose2d_crop(_cat)?: ({arg})\b"
            rf"|fastseg::conv_transpose2d_crop(_out|_cat)?\(\) .*argument '({arg})')")


def _op(name):
    def call(*args):
        return getattr(torch.ops.fastseg, name).default(*args)
    return call


HUGE = (2 ** 31 + 1, 2 ** 40, 2 ** 62)


def bad(device: str = "cpu", n: int = 100, seed: int = 0) -> List[BadCase]:
    """Bad inputs at the Python API and straight at the dispatcher ops: each must raise an
    error naming the argument."""
    rng = random.Random(f"bad/conv_transpose/{seed}")
    gen = torch_gen(seed)
    cases: List[BadCase] = []

    def add(tag, fn, arg, exc=("RuntimeError", "ValueError", "TypeError")):
        cases.append(BadCase(id=f"{len(cases):03d}-{tag}", fn=fn, match=msg_re(arg), exc=tuple(exc)))

    api, disp, disp_out, disp_cat = fops.conv_transpose2d_crop, _op("conv_transpose2d_crop"), \
        _op("conv_transpose2d_crop_out"), _op("conv_transpose2d_crop_cat")
    while len(cases) < n:
        g = rng.choice((1, 2))
        cin, cout_g = g * rng.randint(1, 3), rng.randint(1, 3)
        k, s = (rng.randint(1, 4), rng.randint(1, 4)), (rng.randint(1, 3), rng.randint(1, 3))
        p, d = (rng.randint(0, 1), rng.randint(0, 1)), (1, 1)
        h, w = rng.randint(1, 5), rng.randint(1, 5)
        full = full_size((h, w), k, s, p, d)
        if min(full) < 1:
            continue
        x = torch.randn(rng.randint(1, 2), cin, h, w, generator=gen).to(device)
        wt = torch.randn(cin, cout_g, *k, generator=gen).to(device)
        b = torch.randn(cout_g * g, generator=gen).to(device)
        geo = [list(s), list(p), list(d), g]
        size = [full[0], full[1]]
        level = rng.choice(("api", "dispatch"))

        def call(xx=x, ww=wt, bb=b, geo=geo, crop=(0, 0), size=size, level=level):
            if level == "api":
                return api(xx, ww, bb, *geo, crop, size)
            return disp(xx, ww, bb, *geo, list(crop), list(size))

        cat = rng.choice(("crop", "size", "groups", "channels", "bias", "dtype", "input", "geometry", "padding",
                          "out", "skip", "huge"))
        tag = f"{level}-{cat}"
        if cat == "crop":
            crop = (full[0] - size[0] + rng.randint(1, 3), 0) if rng.random() < 0.5 else (0, full[1] + rng.randint(0, 2))
            add(tag, lambda c=call, crop=crop, full=full, size=size: c(crop=crop, size=[1, 1] if crop[1] >= full[1]
                                                                       else size), "crop")
        elif cat == "size":
            big = [full[0] + rng.randint(1, 3), full[1]]
            add(tag, lambda c=call, big=big: c(size=big), "crop|output_size")
        elif cat == "groups":
            if cin % 2 == 1:
                add(tag, lambda c=call, gg=[list(s), list(p), list(d), 2]: c(geo=gg),
                    "input|weight|groups")
            else:
                add(tag, lambda c=call, gg=[list(s), list(p), list(d), rng.choice((0, -1))]: c(geo=gg), "groups")
        elif cat == "channels":
            bad_w = torch.randn(cin + rng.randint(1, 2), cout_g, *k, generator=gen).to(device)
            add(tag, lambda c=call, ww=bad_w: c(ww=ww), "weight")
        elif cat == "bias":
            which = rng.choice(("size", "dtype", "rank"))
            bb = {"size": torch.randn(cout_g * g + 1).to(device), "dtype": b.double(), "rank": b.view(1, -1)}[which]
            add(f"{tag}-{which}", lambda c=call, bb=bb: c(bb=bb), "bias")
        elif cat == "dtype":
            which = rng.choice(("weight", "input"))
            if which == "weight":
                add(f"{tag}-weight", lambda c=call, ww=wt.double(): c(ww=ww), "weight")
            else:
                add(f"{tag}-input", lambda c=call, xx=x.to(rng.choice((torch.int64, torch.uint8, torch.bool))), bb=None,
                    ww=wt.long(): c(xx=xx, ww=ww, bb=bb), "input")
        elif cat == "input":
            which = rng.choice(("rank", "empty_hw"))
            xx = x.reshape(-1) if which == "rank" else x[:, :, :0]
            add(f"{tag}-{which}", lambda c=call, xx=xx: c(xx=xx), "input")
        elif cat == "geometry":
            name = rng.choice(("stride", "padding", "dilation", "crop"))
            badv = [-1, 1] if name != "stride" and name != "dilation" else [rng.choice((0, -1)), 1]
            if name == "crop":
                add(f"{tag}-crop", lambda c=call: c(crop=(-1, 0)), "crop")
            else:
                gg = list(geo)
                gg[("stride", "padding", "dilation").index(name)] = badv
                add(f"{tag}-{name}", lambda c=call, gg=gg: c(geo=gg), name)
        elif cat == "padding":
            pp = [max(full) + k[0] * 4, 0]
            add(tag, lambda c=call, gg=[list(s), pp, list(d), g]: c(geo=gg, size=[1, 1]), "padding")
        elif cat == "out":
            which = rng.choice(("shape", "dtype", "overlap", "expanded", "rank"))
            shape = [x.shape[0], cout_g * g, size[0], size[1]]
            if which == "shape":
                shape[rng.randrange(4)] += 1
                o = torch.empty(shape, device=device)
            elif which == "dtype":
                o = torch.empty(shape, device=device, dtype=torch.float64)
            elif which == "overlap":
                buf = torch.zeros(x.numel() + int(torch.Size(shape).numel()), device=device)
                xx = buf[:x.numel()].view(x.shape).copy_(x)
                o = buf[x.numel() // 2:][:int(torch.Size(shape).numel())].view(shape)
                if level == "api":
                    add(f"{tag}-{which}", lambda xx=xx, o=o, wt=wt, b=b, geo=geo, size=size: fops.conv_transpose2d_crop(
                        xx, wt, b, *geo, (0, 0), size, out=o), "out")
                else:
                    add(f"{tag}-{which}", lambda xx=xx, o=o, wt=wt, b=b, geo=geo: disp_out(xx, wt, b, *geo, [0, 0], o),
                        "out")
                continue
            elif which == "expanded":
                o = torch.empty(1, device=device).expand(shape)
            else:
                o = torch.empty(shape[1:], device=device)
            if level == "api":
                add(f"{tag}-{which}", lambda o=o, x=x, wt=wt, b=b, geo=geo, size=size: fops.conv_transpose2d_crop(
                    x, wt, b, *geo, (0, 0), size, out=o), "out")
            else:
                add(f"{tag}-{which}", lambda o=o, x=x, wt=wt, b=b, geo=geo: disp_out(x, wt, b, *geo, [0, 0], o), "out")
        elif cat == "skip":
            which = rng.choice(("batch", "small", "dtype", "crop"))
            sk = torch.randn(x.shape[0], 2, size[0], size[1]).to(device)
            sc = [0, 0]
            if which == "batch":
                sk = torch.randn(x.shape[0] + 1, 2, size[0], size[1]).to(device)
            elif which == "small":
                sk = torch.randn(x.shape[0], 2, size[0] - 1, size[1]).to(device) if size[0] > 1 else \
                    torch.randn(x.shape[0], 2, size[0], 0).to(device)
                sc = None
            elif which == "dtype":
                sk = sk.double()
            else:
                sc = [1, 0]
            if level == "api":
                add(f"{tag}-{which}", lambda sk=sk, sc=sc, x=x, wt=wt, b=b, geo=geo, size=size:
                    fops.conv_transpose2d_crop_cat(x, wt, b, sk, *geo, (0, 0), size, sc), "skip|skip_crop")
            else:
                add(f"{tag}-{which}", lambda sk=sk, sc=sc, x=x, wt=wt, b=b, geo=geo, size=size:
                    disp_cat(x, wt, b, sk, *geo, [0, 0], size, sc or [0, 0]), "skip|skip_crop")
        elif cat == "huge":
            name = rng.choice(("stride", "padding", "dilation"))
            gg = list(geo)
            gg[("stride", "padding", "dilation").index(name)] = [rng.choice(HUGE), 1]
            add(f"{tag}-{name}", lambda c=call, gg=gg: c(geo=gg, size=[1, 1]), f"{name}|crop|padding")
    return cases
