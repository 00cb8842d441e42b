"""Test helpers for tensors: dtypes and tolerances, shapes, memory layouts, comparison.

- dtypes: `DTYPES`, `LOW_PRECISION`, `tol(dtype)`, `dtype_id`.
- shapes and layouts: `random_nchw`, `SHAPES`, `torch_gen`, `LAYOUTS`, `make_layout`,
  `is_channels_last`, `assert_memory_format`.
- comparison: `assert_same` (bit-exact, NaN == NaN), `assert_close_tol`.

Re-exported by helpers.py.
"""
from __future__ import annotations

import random
from typing import Dict, Optional, Tuple

import torch

# ----------------------------------------------------------------------------- dtypes

DTYPES: Tuple[torch.dtype, ...] = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
LOW_PRECISION: Tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)

_TOL = {
    torch.float64: dict(atol=1e-10, rtol=1e-7),
    torch.float32: dict(atol=1e-5, rtol=1.3e-6),
    torch.float16: dict(atol=1e-3, rtol=1e-3),
    torch.bfloat16: dict(atol=1e-2, rtol=1.6e-2),
}


def tol(dtype: torch.dtype) -> Dict[str, float]:
    """Tolerances for values computed in `dtype` (compared against a float64 computation cast back)."""
    return dict(_TOL[dtype])


def dtype_id(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


# ----------------------------------------------------------------------------- shapes and layouts

#: Hand-picked NCHW shapes: odd sizes, 1x1 planes, single channel, empty batch.
SHAPES: Tuple[Tuple[int, int, int, int], ...] = (
    (2, 3, 7, 9),
    (1, 1, 1, 1),
    (1, 2, 1, 5),
    (3, 1, 6, 1),
    (0, 3, 5, 5),
    (2, 4, 8, 8),
    (1, 5, 11, 4),
)


def random_nchw(rng: random.Random, *, min_hw: int = 1, max_hw: int = 9, max_n: int = 3, max_c: int = 4,
                empty_batch_prob: float = 0.05) -> Tuple[int, int, int, int]:
    """A small random NCHW shape (odd sizes, 1x1 planes, occasionally N=0)."""
    n = 0 if rng.random() < empty_batch_prob else rng.randint(1, max_n)
    c = rng.randint(1, max_c)
    return n, c, rng.randint(min_hw, max_hw), rng.randint(min_hw, max_hw)


def torch_gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


LAYOUTS: Tuple[str, ...] = ("contiguous", "noncontiguous", "channels_last")


def make_layout(t: torch.Tensor, kind: str) -> torch.Tensor:
    """The same values as `t` (detached) in the layout `kind`.

    - "contiguous": row-major.
    - "noncontiguous": a strided view into a buffer twice as wide (stride 2 in the last dim, and
      a transposed (C, N) order of the first two dims for 4-D): neither contiguous nor
      channels-last.
    - "channels_last": `torch.channels_last` strides (4-D only).
    """
    t = t.detach()
    if kind == "contiguous":
        return t.contiguous().clone()
    if kind == "channels_last":
        if t.dim() != 4:
            raise ValueError("channels_last needs a 4-D tensor")
        return t.clone().contiguous(memory_format=torch.channels_last)
    if kind == "noncontiguous":
        shape = list(t.shape)
        if t.dim() == 4:
            # storage order (C, N, H, 2W+1); viewed back as (N, C, H, W) with stride 2 in W
            big = torch.zeros(shape[1], shape[0], shape[2], 2 * shape[3] + 1, dtype=t.dtype, device=t.device)
            big = big.transpose(0, 1)
        else:
            big = torch.zeros(*shape[:-1], 2 * shape[-1] + 1, dtype=t.dtype, device=t.device)
        view = big[..., 1::2]
        view.copy_(t)
        assert view.shape == t.shape
        return view
    raise ValueError(f"unknown layout {kind!r}")


def is_channels_last(t: torch.Tensor) -> bool:
    """True when `t` is channels-last and that is distinguishable from contiguous."""
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def assert_memory_format(out: torch.Tensor, inp: torch.Tensor) -> None:
    """Channels-last in -> channels-last out; a contiguous input gives a contiguous output; any
    input gives a dense (contiguous or channels-last) output."""
    if out.dim() != 4:
        assert out.is_contiguous(), f"3-D output should be contiguous, strides {out.stride()}"
        return
    if is_channels_last(inp):
        assert out.is_contiguous(memory_format=torch.channels_last), (
            f"channels-last input gave strides {out.stride()} for shape {tuple(out.shape)}")
    elif inp.is_contiguous():
        assert out.is_contiguous(), f"contiguous input gave strides {out.stride()} for shape {tuple(out.shape)}"
    else:
        assert out.is_contiguous() or out.is_contiguous(memory_format=torch.channels_last), (
            f"output is not dense: strides {out.stride()} for shape {tuple(out.shape)}")


# ----------------------------------------------------------------------------- comparison

def assert_same(actual: torch.Tensor, expected: torch.Tensor, msg: str = "") -> None:
    """Bit-exact comparison (shape, dtype, device and values; NaN equals NaN)."""
    torch.testing.assert_close(actual, expected, atol=0, rtol=0, equal_nan=True,
                               msg=(lambda m: f"{msg}\n{m}") if msg else None)


def assert_close_tol(actual: torch.Tensor, expected: torch.Tensor, dtype: Optional[torch.dtype] = None,
                     msg: str = "") -> None:
    """Comparison within `tol(dtype)` (dtype defaults to actual's)."""
    torch.testing.assert_close(actual, expected, equal_nan=True, **tol(dtype or actual.dtype),
                               msg=(lambda m: f"{msg}\n{m}") if msg else None)
