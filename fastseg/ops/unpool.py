"""Unpooling family: max_unpool2d, max_pool2d_compact / max_unpool2d_compact, unpool_nearest2d,
unpool_bed_of_nails2d.

Each public function checks and normalises its arguments, infers the output shape, and calls the
dispatcher op `torch.ops.fastseg.<name>`; the kernels live in csrc/ops/unpool/. Fake kernels and
autograd are registered below. Double backward is not supported (it raises).
"""
from typing import Optional, Sequence, Tuple

import torch

from .. import _loader
from ._utils import (IntPair, as_batched, check_bool, check_numel, check_same_device, empty_4d, fake_same_device,
                     no_double_backward, pair)

__all__ = [
    "max_unpool2d",
    "max_pool2d_compact",
    "max_unpool2d_compact",
    "unpool_nearest2d",
    "unpool_bed_of_nails2d",
]  # unpool_output_size and pool_output_size are shape helpers, not public API

MAX_COMPACT_WINDOW = 255  # offsets are uint8: windows of at most 255 elements (docs/design.md §5.1)

_FAKES = []


def _fake(name):
    """Collects fake kernels; they are registered only when the compiled ops exist."""
    def deco(fn):
        _FAKES.append((name, fn))
        return fn
    return deco


# ----------------------------------------------------------------------------- geometry

def _geometry(op, kernel_size, stride, padding):
    k = pair(kernel_size, op, "kernel_size", minimum=1)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) else pair(
        stride, op, "stride", minimum=1)
    p = pair(padding, op, "padding", minimum=0)
    return k, s, p


def unpool_output_size(input_hw: Sequence[int], kernel_size, stride, padding,
                       output_size=None, op: str = "max_unpool2d") -> Tuple[int, int]:
    """Output (H, W) of max unpooling, with PyTorch's rules (`F.max_unpool2d`).

    Default `(h - 1) * stride - 2 * padding + kernel_size`; an explicit `output_size` ([H, W] or
    [N, C, H, W]) must lie strictly within `stride` of the default.
    """
    default = tuple((input_hw[d] - 1) * stride[d] - 2 * padding[d] + kernel_size[d] for d in range(2))
    if output_size is None:
        size = default
    else:
        try:
            size = tuple(output_size)
        except TypeError:
            raise ValueError(f"fastseg.{op}: output_size must be a sequence of 2 or 4 ints, got {output_size!r}")
        if len(size) == 4:
            size = size[2:]
        if len(size) != 2 or not all(isinstance(v, (int, torch.SymInt)) and not isinstance(v, bool) for v in size):
            raise ValueError(f"fastseg.{op}: output_size must be a sequence of 2 or 4 ints, got {output_size!r}")
        for d in range(2):
            lo, hi = default[d] - stride[d], default[d] + stride[d]
            if isinstance(size[d], torch.SymInt) or isinstance(default[d], torch.SymInt):
                # Symbolic (export / compile with dynamic shapes): checking here would specialise
                # the sizes; the kernel checks the same rule at run time (check_unpool_size).
                continue
            if not (lo < size[d] < hi):
                raise ValueError(
                    f"fastseg.{op}: output_size {tuple(size)} is inconsistent with the pooling geometry: "
                    f"dimension {d} must be in ({lo}, {hi}) exclusive (default {default[d]})")
    if any(v < 0 for v in size):
        raise ValueError(f"fastseg.{op}: output size {tuple(size)} is negative for input {tuple(input_hw)}")
    return tuple(size)


def pool_output_size(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """PyTorch's pooling_output_shape (dilation 1)."""
    num = size + 2 * p - (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = num // s + 1
    # The last window must start inside the input (or its left padding). Without padding and
    # with k >= s it always does; skipping the test then keeps symbolic sizes (torch.export with
    # dynamic shapes) free of a guard that the shape solver cannot prove.
    if ceil_mode and (p > 0 or k < s) and (out - 1) * s >= size + p:
        out -= 1
    return out


def _check_floating(x, op, name):
    if not x.is_floating_point():
        raise TypeError(f"fastseg.{op}: {name} must be a floating-point tensor, got {x.dtype}")


# ----------------------------------------------------------------------------- max_unpool2d

def max_unpool2d(input: torch.Tensor, indices: torch.Tensor, kernel_size: IntPair,
                 stride: Optional[IntPair] = None, padding: IntPair = 0,
                 output_size: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Drop-in for `torch.nn.functional.max_unpool2d`.

    `indices` are flat positions in each output H*W plane (as returned by
    `F.max_pool2d(..., return_indices=True)`). Indices outside the plane raise. Duplicate indices
    are resolved deterministically: the value at the larger input position wins (PyTorch's CPU
    result; its CUDA result is undefined). The kernel gathers over the output (each output pixel
    reads the few windows that can cover it), with a scatter fallback for planes whose indices
    no pooling window of this geometry could produce.
    """
    op = "max_unpool2d"
    _loader.require_ops()
    x, unbatched = as_batched(input, op, "input")
    if not isinstance(indices, torch.Tensor):
        raise TypeError(f"fastseg.{op}: indices must be a Tensor, got {type(indices).__name__}")
    check_same_device(op, "input", x, ("indices", indices))
    idx = indices.unsqueeze(0) if unbatched and indices.dim() == 3 else indices
    k, s, p = _geometry(op, kernel_size, stride, padding)
    H, W = unpool_output_size(x.shape[-2:], k, s, p, output_size, op)
    check_numel((x.shape[0], x.shape[1], H, W), op, "kernel_size" if output_size is None else "output_size")
    out = torch.ops.fastseg.max_unpool2d.default(x, idx, list(k), list(s), list(p), [H, W])
    return out.squeeze(0) if unbatched else out


@_fake("fastseg::max_unpool2d")
def _max_unpool2d_fake(input, indices, kernel_size, stride, padding, output_size):
    torch._check(input.dim() == 4, lambda: f"fastseg.max_unpool2d: input must be 4-D, got {input.dim()}-D")
    fake_same_device("max_unpool2d", "input", input, ("indices", indices))
    torch._check(indices.dtype == torch.int64, lambda: f"fastseg.max_unpool2d: indices must be int64, got {indices.dtype}")
    torch._check(indices.shape == input.shape,
                 lambda: f"fastseg.max_unpool2d: indices must have the shape of input {tuple(input.shape)}, got {tuple(indices.shape)}")
    N, C = input.shape[:2]
    return empty_4d((N, C, output_size[0], output_size[1]), input, layout_of=input)


@_fake("fastseg::max_unpool2d_backward")
def _max_unpool2d_backward_fake(grad_output, indices):
    fake_same_device("max_unpool2d", "grad_output", grad_output, ("indices", indices))
    return empty_4d(indices.shape, grad_output, layout_of=indices)


def _max_unpool2d_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])


def _max_unpool2d_backward(ctx, grad):
    (indices,) = ctx.saved_tensors
    return torch.ops.fastseg.max_unpool2d_backward.default(grad, indices), None, None, None, None, None


# ----------------------------------------------------------------------------- compact pair

def max_pool2d_compact(input: torch.Tensor, kernel_size: IntPair, stride: Optional[IntPair] = None,
                       padding: IntPair = 0, ceil_mode: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """`F.max_pool2d(..., return_indices=True)` with 1-byte indices.

    Returns `(values, offsets)`: `values` identical to `F.max_pool2d` (ties go to the first
    maximum, NaN propagates), `offsets` uint8, the argmax's position inside its window, row-major
    over the full window including padding: `(ih - (oh*sh - ph)) * kw + (iw - (ow*sw - pw))`.
    8x less index memory than int64 indices. Windows of more than 255 elements raise.
    """
    op = "max_pool2d_compact"
    _loader.require_ops()
    x, unbatched = as_batched(input, op, "input")
    k, s, p = _geometry(op, kernel_size, stride, padding)
    _check_pool_args(op, x.shape[-2:], k, s, p)
    ceil_mode = check_bool(ceil_mode, op, "ceil_mode")
    values, offsets = torch.ops.fastseg.max_pool2d_compact.default(x, list(k), list(s), list(p), ceil_mode)
    if unbatched:
        return values.squeeze(0), offsets.squeeze(0)
    return values, offsets


def _check_pool_args(op, hw, k, s, p):
    if k[0] * k[1] > MAX_COMPACT_WINDOW:
        raise ValueError(f"fastseg.{op}: kernel_size {k} has {k[0] * k[1]} elements; "
                         f"uint8 offsets allow at most {MAX_COMPACT_WINDOW}")
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f"fastseg.{op}: padding must be at most half of kernel_size, got padding {p} "
                         f"for kernel_size {k}")


@_fake("fastseg::max_pool2d_compact")
def _max_pool2d_compact_fake(input, kernel_size, stride, padding, ceil_mode):
    torch._check(input.dim() == 4, lambda: f"fastseg.max_pool2d_compact: input must be 4-D, got {input.dim()}-D")
    N, C, H, W = input.shape
    oh = pool_output_size(H, kernel_size[0], stride[0], padding[0], ceil_mode)
    ow = pool_output_size(W, kernel_size[1], stride[1], padding[1], ceil_mode)
    torch._check(oh >= 1 and ow >= 1, lambda: "fastseg.max_pool2d_compact: input is too small for kernel_size")
    return empty_4d((N, C, oh, ow), input), empty_4d((N, C, oh, ow), input, dtype=torch.uint8)


@_fake("fastseg::max_pool2d_compact_backward")
def _max_pool2d_compact_backward_fake(grad_values, offsets, input_size, kernel_size, stride, padding):
    fake_same_device("max_pool2d_compact", "grad_values", grad_values, ("offsets", offsets))
    N, C = grad_values.shape[:2]
    return empty_4d((N, C, input_size[0], input_size[1]), grad_values, layout_of=grad_values)


def _max_pool2d_compact_setup(ctx, inputs, output):
    x, k, s, p, _ = inputs
    ctx.geometry = (list(x.shape[-2:]), k, s, p)
    ctx.save_for_backward(output[1])


def _max_pool2d_compact_backward(ctx, grad_values, grad_offsets):
    (offsets,) = ctx.saved_tensors
    size, k, s, p = ctx.geometry
    grad = torch.ops.fastseg.max_pool2d_compact_backward.default(grad_values, offsets, size, k, s, p)
    return grad, None, None, None, None


def max_unpool2d_compact(values: torch.Tensor, offsets: torch.Tensor, kernel_size: IntPair,
                         stride: Optional[IntPair] = None, padding: IntPair = 0,
                         output_size: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Inverse of `max_pool2d_compact`: identical to `F.max_unpool2d` with the int64 indices.

    An offset that lies outside its window (>= kh*kw) or points outside the output plane raises.
    """
    op = "max_unpool2d_compact"
    _loader.require_ops()
    x, unbatched = as_batched(values, op, "values")
    if not isinstance(offsets, torch.Tensor):
        raise TypeError(f"fastseg.{op}: offsets must be a Tensor, got {type(offsets).__name__}")
    check_same_device(op, "values", x, ("offsets", offsets))
    off = offsets.unsqueeze(0) if unbatched and offsets.dim() == 3 else offsets
    k, s, p = _geometry(op, kernel_size, stride, padding)
    if k[0] * k[1] > MAX_COMPACT_WINDOW:
        raise ValueError(f"fastseg.{op}: kernel_size {k} has {k[0] * k[1]} elements; "
                         f"uint8 offsets allow at most {MAX_COMPACT_WINDOW}")
    H, W = unpool_output_size(x.shape[-2:], k, s, p, output_size, op)
    check_numel((x.shape[0], x.shape[1], H, W), op, "kernel_size" if output_size is None else "output_size")
    out = torch.ops.fastseg.max_unpool2d_compact.default(x, off, list(k), list(s), list(p), [H, W])
    return out.squeeze(0) if unbatched else out


@_fake("fastseg::max_unpool2d_compact")
def _max_unpool2d_compact_fake(values, offsets, kernel_size, stride, padding, output_size):
    torch._check(values.dim() == 4, lambda: f"fastseg.max_unpool2d_compact: values must be 4-D, got {values.dim()}-D")
    fake_same_device("max_unpool2d_compact", "values", values, ("offsets", offsets))
    torch._check(offsets.dtype == torch.uint8,
                 lambda: f"fastseg.max_unpool2d_compact: offsets must be uint8, got {offsets.dtype}")
    torch._check(offsets.shape == values.shape,
                 lambda: f"fastseg.max_unpool2d_compact: offsets must have the shape of values {tuple(values.shape)}, got {tuple(offsets.shape)}")
    N, C = values.shape[:2]
    return empty_4d((N, C, output_size[0], output_size[1]), values, layout_of=values)


@_fake("fastseg::max_unpool2d_compact_backward")
def _max_unpool2d_compact_backward_fake(grad_output, offsets, kernel_size, stride, padding):
    fake_same_device("max_unpool2d_compact", "grad_output", grad_output, ("offsets", offsets))
    return empty_4d(offsets.shape, grad_output, layout_of=offsets)


def _max_unpool2d_compact_setup(ctx, inputs, output):
    ctx.geometry = inputs[2:5]
    ctx.save_for_backward(inputs[1])


def _max_unpool2d_compact_backward(ctx, grad):
    (offsets,) = ctx.saved_tensors
    k, s, p = ctx.geometry
    return torch.ops.fastseg.max_unpool2d_compact_backward.default(grad, offsets, k, s, p), None, None, None, None, None


# ----------------------------------------------------------------------------- nearest, bed of nails

def _scale(op, scale_factor, x):
    """scale_factor as a pair of ints >= 1 whose output size N*C*(H*sh)*(W*sw) fits int64."""
    sh, sw = pair(scale_factor, op, "scale_factor", minimum=1)
    N, C, H, W = x.shape
    check_numel((N, C, H, sh, W, sw), op, "scale_factor")
    return sh, sw


def unpool_nearest2d(input: torch.Tensor, scale_factor: IntPair) -> torch.Tensor:
    """Repeats every value over an sh x sw block; equals `F.interpolate(mode="nearest")` for
    integer scale factors."""
    op = "unpool_nearest2d"
    _loader.require_ops()
    x, unbatched = as_batched(input, op, "input")
    out = torch.ops.fastseg.unpool_nearest2d.default(x, list(_scale(op, scale_factor, x)))
    return out.squeeze(0) if unbatched else out


def unpool_bed_of_nails2d(input: torch.Tensor, scale_factor: IntPair) -> torch.Tensor:
    """Puts every value at the top-left of its sh x sw block, zeros elsewhere."""
    op = "unpool_bed_of_nails2d"
    _loader.require_ops()
    x, unbatched = as_batched(input, op, "input")
    out = torch.ops.fastseg.unpool_bed_of_nails2d.default(x, list(_scale(op, scale_factor, x)))
    return out.squeeze(0) if unbatched else out


def _register_scale_op(name):
    @torch.library.register_fake(f"fastseg::{name}")
    def _fake_forward(input, scale_factor):
        torch._check(input.dim() == 4, lambda: f"fastseg.{name}: input must be 4-D, got {input.dim()}-D")
        N, C, h, w = input.shape
        return empty_4d((N, C, h * scale_factor[0], w * scale_factor[1]), input, layout_of=input)

    @torch.library.register_fake(f"fastseg::{name}_backward")
    def _fake_backward(grad_output, scale_factor):
        N, C, H, W = grad_output.shape
        return empty_4d((N, C, H // scale_factor[0], W // scale_factor[1]), grad_output)

    backward_op = getattr(torch.ops.fastseg, f"{name}_backward").default

    def _setup(ctx, inputs, output):
        ctx.scale_factor = inputs[1]

    def _backward(ctx, grad):
        return backward_op(grad, ctx.scale_factor), None

    torch.library.register_autograd(f"fastseg::{name}", _backward, setup_context=_setup)
    torch.library.register_autograd(f"fastseg::{name}_backward", no_double_backward(name))


# ----------------------------------------------------------------------------- registration

if _loader.HAS_OPS:
    for _name, _fn in _FAKES:
        torch.library.register_fake(_name)(_fn)
    torch.library.register_autograd("fastseg::max_unpool2d", _max_unpool2d_backward, setup_context=_max_unpool2d_setup)
    torch.library.register_autograd("fastseg::max_unpool2d_backward", no_double_backward("max_unpool2d"))
    torch.library.register_autograd("fastseg::max_pool2d_compact", _max_pool2d_compact_backward,
                                    setup_context=_max_pool2d_compact_setup)
    torch.library.register_autograd("fastseg::max_pool2d_compact_backward", no_double_backward("max_pool2d_compact"))
    torch.library.register_autograd("fastseg::max_unpool2d_compact", _max_unpool2d_compact_backward,
                                    setup_context=_max_unpool2d_compact_setup)
    torch.library.register_autograd("fastseg::max_unpool2d_compact_backward", no_double_backward("max_unpool2d_compact"))
    _register_scale_op("unpool_nearest2d")
    _register_scale_op("unpool_bed_of_nails2d")
