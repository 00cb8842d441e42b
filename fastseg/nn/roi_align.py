"""RoIAlign layer with torchvision's constructor and forward."""
from typing import List, Union

import torch
from torch import nn

from .. import ops
from ..ops._utils import IntPair


class RoIAlign(nn.Module):
    """Drop-in for `torchvision.ops.RoIAlign(output_size, spatial_scale, sampling_ratio, aligned)`."""

    def __init__(self, output_size: IntPair, spatial_scale: float, sampling_ratio: int, aligned: bool = False):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: torch.Tensor, rois: Union[torch.Tensor, List[torch.Tensor]]) -> torch.Tensor:
        return ops.roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")
