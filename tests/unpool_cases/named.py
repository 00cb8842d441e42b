"""Named bad-input cases of the whole family (test_unpool_errors.py): each documented
precondition once, with a readable id, at the Python API and at the dispatcher op; C == 0; and
arguments so large that int64 arithmetic on them would wrap around."""
from __future__ import annotations

from typing import List

import torch

import fastseg.ops as fops

from helpers import BadCase

from .common import OPS, _bad, _dispatch, _shape_is


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
