"""Shared pieces of the unpooling cases: the ops, pooling geometry, input tensors, the random
building blocks of the generated cases (`good_<op>`) and of the bad-input cases (`bad_<op>`,
`named_bad_cases`).

Nothing here calls fastseg's kernels to produce an expectation.
"""
from __future__ import annotations

import random
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from helpers import DTYPES, LAYOUTS, BadCase, make_layout, single_thread, torch_gen

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


def _shape_is(*shapes):
    """allow_result predicate: an empty result (or tuple of results) with exactly these shapes."""
    def pred(result):
        res = result if isinstance(result, tuple) else (result,)
        return len(res) == len(shapes) and all(
            isinstance(r, torch.Tensor) and tuple(r.shape) == tuple(s) and r.numel() == 0 for r, s in zip(res, shapes))
    return pred
