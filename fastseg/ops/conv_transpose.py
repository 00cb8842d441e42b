"""Transpose convolution + crop: conv_transpose2d_crop (functional and out=),
conv_transpose2d_crop_cat (the U-Net concat write), bilinear_upsample_weight.

`conv_transpose2d_crop(x, w, b, stride, padding, dilation, groups, crop=(top, left),
output_size=(OH, OW))` equals `F.conv_transpose2d(x, w, b, stride, padding, 0, groups,
dilation)[:, :, top:top+OH, left:left+OW]`; only the crop is computed. Kernels in
csrc/ops/conv_transpose/ (the strategy is picked by shape there).

Autograd (registered in C++, csrc/ops/conv_transpose/conv_transpose_autograd.cpp, so no Python
runs per call): the backward is ATen's `convolution_backward` of the transposed convolution, over
the crop's frame; double backward works too.

The out= rule: without autograd recording (inference, `torch.no_grad()`, or no operand that
requires grad) the result is written straight into `out`. When autograd records, the
functional op runs and `out.copy_(result)` writes it (a copy autograd tracks, so gradients flow
through `out` and its base). For training without that copy, use `conv_transpose2d_crop_cat`
(or `fastseg.nn.UpConcat`), which produces the concatenated buffer functionally.
"""
from typing import Optional, Sequence, Tuple

import torch

from .. import _loader
from ._utils import (IntPair, as_batched, check_int, check_numel, check_same_device, empty_4d, fake_same_device,
                     pair, register_autocast)

__all__ = [
    "conv_transpose2d_crop",
    "conv_transpose2d_crop_cat",
    "bilinear_upsample_weight",
]  # conv_transpose_full_size is a shape helper (of the layers), not public API


def conv_transpose_full_size(input_hw: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
                             padding: Sequence[int], dilation: Sequence[int]) -> Tuple[int, int]:
    """Size of the full (uncropped) output: (n - 1) * s - 2p + d * (k - 1) + 1 per axis."""
    return tuple((input_hw[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel_size[i] - 1) + 1
                 for i in range(2))


def _check_tensor(t, op, name, dim=None):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"fastseg.{op}: {name} must be a Tensor, got {type(t).__name__}")
    if dim is not None and t.dim() != dim:
        raise ValueError(f"fastseg.{op}: {name} must be {dim}-D, got shape {tuple(t.shape)}")


def _arguments(op, input, weight, bias, stride, padding, dilation, groups, crop, output_size):
    """Normalised arguments: (x [N,C,H,W], unbatched, s, p, d, groups, crop, (OH, OW))."""
    x, unbatched = as_batched(input, op, "input")
    _check_tensor(weight, op, "weight", 4)
    if bias is not None:
        _check_tensor(bias, op, "bias", 1)
    check_same_device(op, "input", x, ("weight", weight), ("bias", bias))
    s = pair(stride, op, "stride", minimum=1)
    p = pair(padding, op, "padding", minimum=0)
    d = pair(dilation, op, "dilation", minimum=1)
    c = pair(crop, op, "crop", minimum=0)
    # groups <= 2**31: the kernels' bound on every geometry argument (kMaxGeometry)
    groups = check_int(groups, op, "groups", minimum=1, maximum=2 ** 31)
    full = conv_transpose_full_size(x.shape[-2:], weight.shape[-2:], s, p, d)
    concrete = all(type(v) is int for v in (*full, *c))
    # The rule of the kernels (csrc/ops/conv_transpose/conv_transpose_ops.h), checked here with
    # Python ints (which cannot wrap) and naming what is wrong: a padding that leaves no full
    # output is the padding's fault, not the crop's.
    if concrete and (x.shape[-2] < 1 or x.shape[-1] < 1):
        raise ValueError(f"fastseg.{op}: input must have non-zero height and width, got shape {tuple(input.shape)}")
    if concrete and (full[0] < 1 or full[1] < 1):
        raise ValueError(f"fastseg.{op}: padding {p} is too large: the full output of input "
                         f"{x.shape[-2]}x{x.shape[-1]} (kernel {weight.shape[-2]}x{weight.shape[-1]}, stride {s}, "
                         f"dilation {d}) would be {full[0]}x{full[1]}")
    if output_size is None:
        size = (full[0] - c[0], full[1] - c[1])
        if size[0] < 0 or size[1] < 0:
            raise ValueError(f"fastseg.{op}: crop {c} must lie inside the full output of {full[0]}x{full[1]}")
    else:
        if isinstance(output_size, (str, bytes)):
            raise TypeError(f"fastseg.{op}: output_size must be a pair of ints (or [N, C, H, W]), got {output_size!r}")
        try:
            size = tuple(output_size)
        except TypeError:
            raise TypeError(f"fastseg.{op}: output_size must be a pair of ints (or [N, C, H, W]), got {output_size!r}")
        if len(size) == 4:
            size = size[2:]
        size = pair(size, op, "output_size", minimum=0)
        if concrete and all(type(v) is int for v in size) and (
                c[0] + size[0] > full[0] or c[1] + size[1] > full[1]):
            raise ValueError(f"fastseg.{op}: crop {c} with output_size {size} must lie inside the full output of "
                             f"{full[0]}x{full[1]}")
    check_numel((x.shape[0], weight.shape[1] * groups, size[0], size[1]), op, "output_size")
    return x, unbatched, s, p, d, groups, c, size


def conv_transpose2d_crop(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                          stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1,
                          crop: IntPair = (0, 0), output_size: Optional[Sequence[int]] = None,
                          out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """`F.conv_transpose2d(input, weight, bias, stride, padding, 0, groups, dilation)` cropped to
    `[top:top+OH, left:left+OW]` with `crop=(top, left)`, `output_size=(OH, OW)` (None: the rest
    of the full output). A crop outside the full output raises.

    `out`: any strided [N, Cout, OH, OW] view (e.g. a channel slice of a U-Net concat buffer);
    the result is written there, nothing else is touched, and `out` is returned (see the module
    docstring for the autograd rule). Accepts unbatched [C, H, W] input like PyTorch.
    """
    op = "conv_transpose2d_crop"
    _loader.require_ops()
    x, unbatched, s, p, d, g, c, size = _arguments(op, input, weight, bias, stride, padding, dilation, groups,
                                                   crop, output_size)
    if out is None:
        y = torch.ops.fastseg.conv_transpose2d_crop.default(x, weight, bias, s, p, d, g, c, size)
        return y.squeeze(0) if unbatched else y
    _check_tensor(out, op, "out")
    check_same_device(op, "input", x, ("out", out))
    out4 = out.unsqueeze(0) if unbatched else out
    expected = (x.shape[0], weight.shape[1] * g, size[0], size[1])
    if tuple(out4.shape) != expected:
        raise ValueError(f"fastseg.{op}: out must have shape {expected if not unbatched else expected[1:]}, "
                         f"got {tuple(out.shape)}")
    operands = [t for t in (x, weight, bias, out4) if t is not None]
    if torch.is_grad_enabled() and any(t.requires_grad for t in operands):
        out4.copy_(torch.ops.fastseg.conv_transpose2d_crop.default(x, weight, bias, s, p, d, g, c, size))
    else:
        torch.ops.fastseg.conv_transpose2d_crop_out.default(x, weight, bias, s, p, d, g, c, out4)
    return out


def conv_transpose2d_crop_cat(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                              skip: torch.Tensor, stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                              groups: int = 1, crop: IntPair = (0, 0), output_size: Optional[Sequence[int]] = None,
                              skip_crop: Optional[IntPair] = None) -> torch.Tensor:
    """`torch.cat([skip_cropped, conv_transpose2d_crop(input, ...)], dim=1)` written into one
    buffer: the U-Net decoder's "copy and crop" + up-convolution, without a cat copy of the
    up-convolution. `skip_crop=(top, left)` places the OHxOW window in `skip`; None centres it
    (floor), as the original U-Net does. Differentiable in input, weight, bias and skip.
    """
    op = "conv_transpose2d_crop_cat"
    _loader.require_ops()
    x, unbatched, s, p, d, g, c, size = _arguments(op, input, weight, bias, stride, padding, dilation, groups,
                                                   crop, output_size)
    _check_tensor(skip, op, "skip")
    check_same_device(op, "input", x, ("skip", skip))
    sk = skip.unsqueeze(0) if unbatched and skip.dim() == 3 else skip
    if sk.dim() != 4:
        raise ValueError(f"fastseg.{op}: skip must be {3 if unbatched else 4}-D, got shape {tuple(skip.shape)}")
    if skip_crop is None:
        if sk.shape[2] < size[0] or sk.shape[3] < size[1]:
            raise ValueError(f"fastseg.{op}: skip ({sk.shape[2]}x{sk.shape[3]}) must be at least as large as the "
                             f"up-convolution output ({size[0]}x{size[1]})")
        sc = [(sk.shape[2] - size[0]) // 2, (sk.shape[3] - size[1]) // 2]
    else:
        sc = list(pair(skip_crop, op, "skip_crop", minimum=0))
        # Python ints: skip_crop + size cannot wrap here, as it does in the kernel's int64 check
        if all(type(v) is int for v in (*sc, *size, sk.shape[2], sk.shape[3])) and (
                sc[0] + size[0] > sk.shape[2] or sc[1] + size[1] > sk.shape[3]):
            raise ValueError(f"fastseg.{op}: skip_crop {tuple(sc)} with the up-convolution output "
                             f"{size[0]}x{size[1]} must lie inside skip ({sk.shape[2]}x{sk.shape[3]})")
    check_numel((x.shape[0], sk.shape[1] + weight.shape[1] * g, size[0], size[1]), op, "output_size")
    y = torch.ops.fastseg.conv_transpose2d_crop_cat.default(x, weight, bias, sk, s, p, d, g, c, size, sc)
    return y.squeeze(0) if unbatched else y


def bilinear_upsample_weight(channels: int, factor: int, dtype: torch.dtype = torch.float32,
                             device=None, depthwise: bool = False) -> torch.Tensor:
    """FCN's fixed bilinear upsampling filter for a transpose conv with stride `factor` and
    kernel 2*factor - factor % 2: [C, C, k, k] with the filter on the channel diagonal (FCN's
    `upscore` initialisation), or [C, 1, k, k] for groups=C when `depthwise`."""
    channels = check_int(channels, "bilinear_upsample_weight", "channels", minimum=0)
    factor = check_int(factor, "bilinear_upsample_weight", "factor", minimum=1)
    k = 2 * factor - factor % 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float64)
    filt1d = 1 - (og - center).abs() / factor
    filt = (filt1d[:, None] * filt1d[None, :]).to(dtype=dtype, device=device)
    if depthwise:
        return filt.expand(channels, 1, k, k).clone()
    weight = torch.zeros(channels, channels, k, k, dtype=dtype, device=device)
    idx = torch.arange(channels, device=device)
    weight[idx, idx] = filt
    return weight


# ----------------------------------------------------------------------------- fake kernels

def _fake_output(input, weight, groups, output_size, extra_channels=0, bias=None, skip=None,
                 op="conv_transpose2d_crop"):
    fake_same_device(op, "input", input, ("weight", weight), ("bias", bias), ("skip", skip))
    torch._check(input.dim() == 4, lambda: f"fastseg.conv_transpose2d_crop: input must be 4-D, got {input.dim()}-D")
    torch._check(weight.dim() == 4, lambda: f"fastseg.conv_transpose2d_crop: weight must be 4-D, got {weight.dim()}-D")
    return empty_4d((input.shape[0], extra_channels + weight.shape[1] * groups, output_size[0], output_size[1]), input)


def _ct_fake(input, weight, bias, stride, padding, dilation, groups, crop, output_size):
    return _fake_output(input, weight, groups, output_size, bias=bias)


def _ct_out_fake(input, weight, bias, stride, padding, dilation, groups, crop, out):
    fake_same_device("conv_transpose2d_crop", "input", input, ("weight", weight), ("bias", bias), ("out", out))
    return None


def _ct_cat_fake(input, weight, bias, skip, stride, padding, dilation, groups, crop, output_size, skip_crop):
    return _fake_output(input, weight, groups, output_size, extra_channels=skip.shape[1], bias=bias, skip=skip,
                        op="conv_transpose2d_crop_cat")


if _loader.HAS_OPS:
    torch.library.register_fake("fastseg::conv_transpose2d_crop")(_ct_fake)
    torch.library.register_fake("fastseg::conv_transpose2d_crop_out")(_ct_out_fake)
    torch.library.register_fake("fastseg::conv_transpose2d_crop_cat")(_ct_cat_fake)
    # Autograd is registered in C++ (csrc/ops/conv_transpose/conv_transpose_autograd.cpp).


# ----------------------------------------------------------------------------- autocast
# F.conv_transpose2d is on autocast's lower-precision list: every floating operand is cast to the
# autocast dtype in effect (bfloat16 / float16). The fastseg ops follow the same policy, so a
# ConvTranspose2dCrop behaves under torch.autocast as the nn.ConvTranspose2d it replaces
# (torchvision registers its op autocast kernels the same way). float64 is left alone, as ATen does.
if _loader.HAS_OPS:
    register_autocast(("conv_transpose2d_crop", "conv_transpose2d_crop_cat"), None)
