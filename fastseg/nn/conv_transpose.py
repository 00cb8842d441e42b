"""Transpose-convolution layers: ConvTranspose2dCrop (a drop-in nn.ConvTranspose2d with a fused
crop), BilinearUpsample2d (FCN's fixed bilinear upsampling) and UpConcat (U-Net's up-convolution
+ copy-and-crop concat in one buffer).

Each layer has a `reference` flag (see `fastseg.nn.set_reference`): when set, it runs the plain
PyTorch form users would otherwise write (`F.conv_transpose2d`, then slicing, then `torch.cat`),
on the same parameters."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..ops._utils import IntPair, pair


class ConvTranspose2dCrop(nn.ConvTranspose2d):
    """`nn.ConvTranspose2d` whose output is cropped to `crop=(top, left)`, `output_size=(OH, OW)`
    (None: the rest of the full output) without computing what the crop drops.

    Same constructor, parameters and state dict keys (`weight`, `bias`) as nn.ConvTranspose2d, so
    its weights load as they are; with the default crop it computes exactly what
    nn.ConvTranspose2d does, `output_padding` and `forward(input, output_size)` included. The
    crop is taken from the layer's output frame (after `padding`); `output_padding` extends that
    frame at the bottom/right as in PyTorch.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1, bias: bool = True,
                 dilation: IntPair = 1, padding_mode: str = "zeros", device=None, dtype=None, *,
                 crop: IntPair = 0, output_size: Optional[Sequence[int]] = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                         dilation, padding_mode, device, dtype)
        if isinstance(self.padding, str):
            raise ValueError("fastseg.ConvTranspose2dCrop: padding must be ints, got a string")
        self.crop = pair(crop, "ConvTranspose2dCrop", "crop", minimum=0)
        self.crop_size = None if output_size is None else pair(tuple(output_size)[-2:], "ConvTranspose2dCrop",
                                                               "output_size", minimum=0)
        self.reference = False

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if self.crop != (0, 0):
            s += f", crop={self.crop}"
        if self.crop_size is not None:
            s += f", output_size={self.crop_size}"
        return s

    def forward(self, input: torch.Tensor, output_size: Optional[Sequence[int]] = None, *,
                crop_size: Optional[Sequence[int]] = None) -> torch.Tensor:
        """`output_size` as in nn.ConvTranspose2d (picks output_padding); `crop_size=(OH, OW)`
        sets this call's crop size (e.g. the input image's size in FCN's final upscore)."""
        return _conv_transpose2d_crop_layer(input, self.weight, self.bias, output_size, crop_size, self.kernel_size,
                                            self.stride, self.padding, self.output_padding, self.dilation,
                                            self.groups, self.crop, self.crop_size, self.reference)


class BilinearUpsample2d(nn.Module):
    """FCN's fixed bilinear upsampling by an integer `factor`: a depthwise transpose convolution
    with the bilinear kernel (k = 2*factor - factor % 2, stride factor), then the crop. The
    default crop (factor // 2, padding-free frame) with output_size = factor * input size gives
    the centred upsampling FCN's Caffe crops produce. Not trainable (a buffer, not saved)."""

    def __init__(self, channels: int, factor: int, crop: Optional[IntPair] = None,
                 output_size: Optional[Sequence[int]] = None):
        super().__init__()
        self.channels, self.factor = channels, factor
        self.register_buffer("weight", ops.bilinear_upsample_weight(channels, factor, depthwise=True),
                             persistent=False)
        self.crop = pair(factor // 2 if crop is None else crop, "BilinearUpsample2d", "crop", minimum=0)
        self.crop_size = output_size
        self.reference = False

    def extra_repr(self) -> str:
        return f"channels={self.channels}, factor={self.factor}, crop={self.crop}"

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _bilinear_upsample2d_layer(input, self.weight, self.channels, self.factor, self.crop, self.crop_size,
                                          self.reference)


class UpConcat(ConvTranspose2dCrop):
    """U-Net's decoder step: up-convolve `input` (default 2x2, stride 2) and concatenate it after
    the centre crop of `skip` (the "copy and crop" of the original U-Net; `skip` first, as in the
    paper's Caffe model), writing both into one buffer: `forward(input, skip)` equals
    `torch.cat([center_crop(skip), conv_transpose(input)], 1)`. Parameters as nn.ConvTranspose2d
    (`weight`, `bias`). Differentiable in everything.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair = 2, stride: IntPair = 2,
                 padding: IntPair = 0, bias: bool = True, device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias, device=device,
                         dtype=dtype)

    def forward(self, input: torch.Tensor, skip: torch.Tensor, *,
                crop_size: Optional[Sequence[int]] = None) -> torch.Tensor:
        """`crop_size=(OH, OW)`: keep only the top-left OHxOW of the up-convolution (e.g. the
        skip's size, for a "same"-padded U-Net on sizes that do not halve evenly)."""
        return _up_concat_layer(input, skip, self.weight, self.bias, crop_size, self.kernel_size, self.stride,
                                self.padding, self.output_padding, self.dilation, self.groups, self.crop,
                                self.crop_size, self.reference)


def _conv_transpose_then_slice(input, weight, bias, stride, padding, dilation, groups, crop, size):
    """What users write without fastseg: the full transposed convolution, then a slice (a view)."""
    y = F.conv_transpose2d(input, weight, bias, stride, padding, 0, groups, dilation)
    top, left = crop
    return y[..., top:top + size[0], left:left + size[1]]


# The layers' forwards as module-level functions: the crop geometry is computed from the input's
# shape in Python, which a torch.fx Proxy cannot feed, so torch.fx.symbolic_trace records each
# forward as one call (as torchvision does for its ops); torch.compile and torch.export trace
# through them as through any function.
def _frame(input: torch.Tensor, output_size: Optional[Sequence[int]], crop_size: Optional[Sequence[int]],
           kernel_size, stride, padding, output_padding, dilation, crop, ctor_size):
    """(padding, crop, size, extra) for ops.conv_transpose2d_crop; `crop_size` overrides the
    constructor's `output_size` (`ctor_size`) for one call."""
    input_hw = input.shape[-2:]
    if output_size is not None:  # nn.ConvTranspose2d.forward's output_size picks output_padding
        # (its `self` is only read when output_size is None)
        out_pad = nn.ConvTranspose2d._output_padding(None, input, list(output_size), list(stride), list(padding),
                                                     list(kernel_size), 2, list(dilation))
    else:
        out_pad = output_padding
    full = ops.conv_transpose_full_size(input_hw, kernel_size, stride, padding, dilation)
    if crop_size is not None:
        size = pair(tuple(crop_size)[-2:], "ConvTranspose2dCrop", "crop_size", minimum=0)
    elif ctor_size is not None:
        size = ctor_size
    else:
        size = tuple(full[i] + out_pad[i] - crop[i] for i in range(2))
    if all(crop[i] + size[i] <= full[i] for i in range(2)):
        return tuple(padding), crop, size, (0, 0)
    # Past the padded frame (output_padding): the same window in the unpadded frame, and
    # beyond that frame (where no tap lands: the bias only) `extra` rows/columns.
    crop0 = tuple(crop[i] + padding[i] for i in range(2))
    full0 = ops.conv_transpose_full_size(input_hw, kernel_size, stride, (0, 0), dilation)
    inside = tuple(max(0, min(size[i], full0[i] - crop0[i])) for i in range(2))
    return (0, 0), crop0, inside, (size[0] - inside[0], size[1] - inside[1])


@torch.fx.wrap
def _conv_transpose2d_crop_layer(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                                 output_size: Optional[Sequence[int]], crop_size: Optional[Sequence[int]],
                                 kernel_size, stride, padding, output_padding, dilation, groups: int, crop,
                                 ctor_size, reference: bool) -> torch.Tensor:
    """ConvTranspose2dCrop.forward: fastseg's op, or with `reference` F.conv_transpose2d and slicing."""
    padding, crop, size, extra = _frame(input, output_size, crop_size, kernel_size, stride, padding, output_padding,
                                        dilation, crop, ctor_size)
    fn = _conv_transpose_then_slice if reference else ops.conv_transpose2d_crop
    y = fn(input, weight, bias, stride, padding, dilation, groups, crop, size)
    if extra != (0, 0):
        y = F.pad(y, (0, extra[1], 0, extra[0]))
        if bias is not None:
            beyond = torch.ones(y.shape[-2:], dtype=y.dtype, device=y.device)
            beyond[:size[0], :size[1]] = 0
            y = y + bias.view(-1, 1, 1) * beyond
    return y


@torch.fx.wrap
def _up_concat_layer(input: torch.Tensor, skip: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                     crop_size: Optional[Sequence[int]], kernel_size, stride, padding, output_padding, dilation,
                     groups: int, crop, ctor_size, reference: bool) -> torch.Tensor:
    """UpConcat.forward: fastseg's fused op, or with `reference` F.conv_transpose2d, slicing and torch.cat."""
    padding, crop, size, extra = _frame(input, None, crop_size, kernel_size, stride, padding, output_padding,
                                        dilation, crop, ctor_size)
    if extra != (0, 0):
        raise ValueError(f"fastseg.UpConcat: crop_size {tuple(size)} exceeds the up-convolution's output")
    if reference:
        up = _conv_transpose_then_slice(input, weight, bias, stride, padding, dilation, groups, crop, size)
        oh, ow = up.shape[-2:]
        top, left = (skip.shape[-2] - oh) // 2, (skip.shape[-1] - ow) // 2
        return torch.cat([skip[..., top:top + oh, left:left + ow], up], dim=-3)
    return ops.conv_transpose2d_crop_cat(input, weight, bias, skip, stride, padding, dilation, groups, crop, size)


@torch.fx.wrap
def _bilinear_upsample2d_layer(input: torch.Tensor, weight: torch.Tensor, channels: int, factor: int, crop,
                               crop_size: Optional[Sequence[int]], reference: bool) -> torch.Tensor:
    """BilinearUpsample2d.forward (the default crop and size: the centred factor x upsampling)."""
    size = crop_size
    if size is None and crop == (factor // 2,) * 2:
        size = (input.shape[-2] * factor, input.shape[-1] * factor)
    fn = _conv_transpose_then_slice if reference else ops.conv_transpose2d_crop
    return fn(input, weight.to(input.dtype), None, factor, 0, 1, channels, crop, size)
