"""The two scale-factor ops (unpool_nearest2d, unpool_bed_of_nails2d): generated valid cases,
drawn by hypothesis (`scale_specs()`, built into tensors by `scale_case`), and generated bad
inputs (`_bad_scale`, behind `bad_unpool_nearest2d` / `bad_unpool_bed_of_nails2d`)."""
from __future__ import annotations

import dataclasses
import random
from typing import Any, Dict, List, Tuple

import torch
from hypothesis import strategies as st

import fastseg.ops as fops
from fastseg.reference import unpool as R

from helpers import DTYPES, LAYOUTS, BadCase, make_layout, torch_gen

from .common import _bad, _dispatch, _equal_to, randn

SCALE_OPS = ("unpool_nearest2d", "unpool_bed_of_nails2d")

# ----------------------------------------------------------------------------- random valid cases


@dataclasses.dataclass(frozen=True)
class ScaleSpec:
    """One valid input of a scale-factor op, as plain values (its repr is the reproducer:
    `unpool_cases.run_scale_case(op, ScaleSpec(...))`). The input is `shape` (NCHW) standard
    normal values drawn from torch_gen(seed) in `dtype`, with a NaN at (0, 0) of every plane
    when `nan`, without its batch dim when `unbatched` (N == 1), in the layout `layout`."""
    dtype: torch.dtype
    scale_factor: Any  # int, tuple or list, as the API takes it
    shape: Tuple[int, int, int, int]
    nan: bool
    unbatched: bool
    layout: str
    seed: int


#: Every scale factor 1..4 x 1..4 as the API takes it: an int when both entries agree, a tuple, a
#: list.
SCALE_FACTORS: Tuple[Any, ...] = tuple(
    f for sh in range(1, 5) for sw in range(1, 5) for f in ([sh] if sh == sw else []) + [(sh, sw), [sh, sw]])

# built once: hypothesis draws from them for every example
_DTYPE = st.sampled_from(DTYPES)
_SCALE = st.sampled_from(SCALE_FACTORS)
_N = st.sampled_from((1, 2, 3) * 8 + (0,))  # N == 0 about once in 25
_C = st.integers(1, 4)
_HW = st.integers(1, 6)
_TENTH = st.integers(0, 9)
_SEVENTH = st.integers(0, 6)
_LAYOUT_4D = st.sampled_from(LAYOUTS)
_LAYOUT_3D = st.sampled_from(("contiguous", "noncontiguous"))
_SEED = st.integers(0, 2 ** 32 - 1)


@st.composite
def scale_specs(draw) -> ScaleSpec:
    """Random dtype, scale factor, small odd shapes (1x1 planes; an empty batch now and then),
    NaN in some planes (about 1 in 10), 3-D (unbatched) inputs (about 1 in 7 of N == 1) and every
    layout."""
    dtype, scale, n = draw(_DTYPE), draw(_SCALE), draw(_N)
    shape = (n, draw(_C), draw(_HW), draw(_HW))
    nan = draw(_TENTH) == 9
    unbatched = n == 1 and draw(_SEVENTH) == 6
    layout = draw(_LAYOUT_3D if unbatched else _LAYOUT_4D)
    return ScaleSpec(dtype, scale, shape, nan, unbatched, layout, draw(_SEED))


def scale_case(op: str, spec: ScaleSpec, device: str = "cpu") -> Dict[str, Any]:
    """The check_<op> arguments of `spec` (plus "desc", the reproducer)."""
    x = randn(spec.shape, spec.dtype, "cpu", torch_gen(spec.seed))
    if spec.nan:
        x[..., 0, 0] = float("nan")
    if spec.unbatched:
        x = x[0]
    x = make_layout(x.to(device), spec.layout)
    return dict(x=x, scale_factor=spec.scale_factor, desc=f"[{op} {spec!r}]")


# ----------------------------------------------------------------------------- bad inputs


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
