"""Unpooling layers. `MaxUnpool2d` has the constructor and forward of `torch.nn.MaxUnpool2d`."""
from typing import Optional, Sequence

import torch
from torch import nn

from .. import ops
from ..ops._utils import IntPair


class _PoolGeometry(nn.Module):
    def __init__(self, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool2d(_PoolGeometry):
    """Drop-in for `torch.nn.MaxUnpool2d` (deterministic; gather over the output)."""

    def forward(self, input: torch.Tensor, indices: torch.Tensor,
                output_size: Optional[Sequence[int]] = None) -> torch.Tensor:
        return ops.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding, output_size)


class MaxPool2dCompact(_PoolGeometry):
    """`nn.MaxPool2d(return_indices=True)` with uint8 window offsets instead of int64 indices."""

    def __init__(self, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding)
        self.ceil_mode = ceil_mode

    def forward(self, input: torch.Tensor):
        return ops.max_pool2d_compact(input, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", ceil_mode={self.ceil_mode}"


class MaxUnpool2dCompact(_PoolGeometry):
    """Inverse of `MaxPool2dCompact` (same geometry arguments)."""

    def forward(self, values: torch.Tensor, offsets: torch.Tensor,
                output_size: Optional[Sequence[int]] = None) -> torch.Tensor:
        return ops.max_unpool2d_compact(values, offsets, self.kernel_size, self.stride, self.padding, output_size)


class _ScaleUnpool(nn.Module):
    def __init__(self, scale_factor: IntPair = 2):
        super().__init__()
        self.scale_factor = scale_factor

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}"


class UnpoolNearest2d(_ScaleUnpool):
    """Repeats each value over its scale block (`F.interpolate(mode="nearest")`, integer scale)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return ops.unpool_nearest2d(input, self.scale_factor)


class UnpoolBedOfNails2d(_ScaleUnpool):
    """Puts each value at the top-left of its scale block, zeros elsewhere."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return ops.unpool_bed_of_nails2d(input, self.scale_factor)
