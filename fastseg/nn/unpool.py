"""Unpooling layers. `MaxUnpool2d` has the constructor and forward of `torch.nn.MaxUnpool2d`.

Every layer has a `reference` flag (see `fastseg.nn.set_reference`): when set, it runs the plain
PyTorch call users would otherwise make (`F.max_pool2d(return_indices=True)` with int64 indices,
`F.max_unpool2d`, `F.interpolate`), so a network and its plain-PyTorch twin share one module tree.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..ops._utils import IntPair, pair
from ..ops.unpool import (
    max_pool2d_compact as _max_pool2d_compact_op,
    max_unpool2d as _max_unpool2d_op,
    max_unpool2d_compact as _max_unpool2d_compact_op,
    unpool_bed_of_nails2d as _unpool_bed_of_nails2d_op,
    unpool_nearest2d as _unpool_nearest2d_op,
)

# torch.fx.symbolic_trace records each op as one call (as torchvision does for its ops).
for _name in ("_max_pool2d_compact_op", "_max_unpool2d_op", "_max_unpool2d_compact_op", "_unpool_bed_of_nails2d_op",
              "_unpool_nearest2d_op"):
    torch.fx.wrap(_name)


@torch.fx.wrap
def _unpool_bed_of_nails2d_reference(input: torch.Tensor, scale_factor: IntPair) -> torch.Tensor:
    """UnpoolBedOfNails2d in reference mode (its output size comes from the input's shape: one
    call under fx, like the op)."""
    sh, sw = pair(scale_factor, "UnpoolBedOfNails2d", "scale_factor", minimum=1)
    out = input.new_zeros(*input.shape[:-2], input.shape[-2] * sh, input.shape[-1] * sw)
    out[..., ::sh, ::sw] = input
    return out


class _PoolGeometry(nn.Module):
    def __init__(self, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.reference = False

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool2d(_PoolGeometry):
    """Drop-in for `torch.nn.MaxUnpool2d` (deterministic; gather over the output)."""

    def forward(self, input: torch.Tensor, indices: torch.Tensor,
                output_size: Optional[Sequence[int]] = None) -> torch.Tensor:
        if self.reference:
            return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding, output_size)
        return _max_unpool2d_op(input, indices, self.kernel_size, self.stride, self.padding, output_size)


class MaxPool2dCompact(_PoolGeometry):
    """`nn.MaxPool2d(return_indices=True)` with uint8 window offsets instead of int64 indices.
    With `reference` set it returns PyTorch's int64 indices instead (what `MaxUnpool2dCompact`
    then takes in reference mode)."""

    def __init__(self, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding)
        self.ceil_mode = ceil_mode

    def forward(self, input: torch.Tensor):
        if self.reference:
            return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, 1, self.ceil_mode,
                                return_indices=True)
        return _max_pool2d_compact_op(input, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", ceil_mode={self.ceil_mode}"


class MaxUnpool2dCompact(_PoolGeometry):
    """Inverse of `MaxPool2dCompact` (same geometry arguments)."""

    def forward(self, values: torch.Tensor, offsets: torch.Tensor,
                output_size: Optional[Sequence[int]] = None) -> torch.Tensor:
        if self.reference:  # `offsets` are then MaxPool2dCompact's reference (int64) indices
            return F.max_unpool2d(values, offsets, self.kernel_size, self.stride, self.padding, output_size)
        return _max_unpool2d_compact_op(values, offsets, self.kernel_size, self.stride, self.padding, output_size)


class _ScaleUnpool(nn.Module):
    def __init__(self, scale_factor: IntPair = 2):
        super().__init__()
        self.scale_factor = scale_factor
        self.reference = False

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}"


class UnpoolNearest2d(_ScaleUnpool):
    """Repeats each value over its scale block (`F.interpolate(mode="nearest")`, integer scale)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.reference:
            sh, sw = pair(self.scale_factor, "UnpoolNearest2d", "scale_factor", minimum=1)
            return F.interpolate(input, scale_factor=(float(sh), float(sw)), mode="nearest")
        return _unpool_nearest2d_op(input, self.scale_factor)


class UnpoolBedOfNails2d(_ScaleUnpool):
    """Puts each value at the top-left of its scale block, zeros elsewhere."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.reference:
            return _unpool_bed_of_nails2d_reference(input, self.scale_factor)
        return _unpool_bed_of_nails2d_op(input, self.scale_factor)
