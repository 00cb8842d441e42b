"""RoIAlign layers with torchvision's constructors and forwards; `reference=True` (see
`fastseg.nn.set_reference`) runs the plain-PyTorch form in `fastseg.reference`."""
from typing import Dict, List, Tuple, Union

import torch
from torch import nn

from .. import ops, reference as _reference
from ..ops._utils import IntPair


class RoIAlign(nn.Module):
    """Drop-in for `torchvision.ops.RoIAlign(output_size, spatial_scale, sampling_ratio, aligned)`."""

    def __init__(self, output_size: IntPair, spatial_scale: float, sampling_ratio: int, aligned: bool = False):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.reference = False

    def forward(self, input: torch.Tensor, rois: Union[torch.Tensor, List[torch.Tensor]]) -> torch.Tensor:
        fn = _reference.roi_align if self.reference else ops.roi_align
        return fn(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")


class MultiScaleRoIAlign(nn.Module):
    """Drop-in for `torchvision.ops.MultiScaleRoIAlign(featmap_names, output_size, sampling_ratio,
    *, canonical_scale=224, canonical_level=4)`: `forward(x: dict, boxes: list, image_shapes: list)`,
    all levels in one kernel."""

    def __init__(self, featmap_names: List[str], output_size: IntPair, sampling_ratio: int, *,
                 canonical_scale: int = 224, canonical_level: int = 4):
        super().__init__()
        self.featmap_names = list(featmap_names)
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level
        self.reference = False

    def forward(self, x: Dict[str, torch.Tensor], boxes: List[torch.Tensor],
                image_shapes: List[Tuple[int, int]]) -> torch.Tensor:
        features = [v for k, v in x.items() if k in self.featmap_names]
        fn = _reference.multi_scale_roi_align if self.reference else ops.multi_scale_roi_align
        return fn(features, boxes, image_shapes, self.output_size, self.sampling_ratio,
                  self.canonical_scale, self.canonical_level)

    def extra_repr(self) -> str:
        return (f"featmap_names={self.featmap_names}, output_size={self.output_size}, "
                f"sampling_ratio={self.sampling_ratio}")
