"""RoIAlign layers with torchvision's constructors and forwards; `reference=True` (see
`fastseg.nn.set_reference`) runs the plain-PyTorch form in `fastseg.reference`."""
from typing import Dict, List, Tuple, Union

import torch
from torch import nn

from ..ops._utils import IntPair
from ..ops.roi_align import multi_scale_roi_align as _multi_scale_roi_align_op, roi_align as _roi_align_op
from ..reference import multi_scale_roi_align as _multi_scale_roi_align_ref, roi_align as _roi_align_ref

# torch.fx.symbolic_trace records these calls as single nodes (as torchvision does for its ops):
# feature-extraction and quantization tools trace models that contain these layers.
torch.fx.wrap("_roi_align_op")
torch.fx.wrap("_roi_align_ref")


@torch.fx.wrap
def _multi_scale_roi_align_layer(x: Dict[str, torch.Tensor], boxes: List[torch.Tensor],
                                 image_shapes: List[Tuple[int, int]], featmap_names: List[str], output_size,
                                 sampling_ratio: int, canonical_scale: int, canonical_level: int) -> torch.Tensor:
    """MultiScaleRoIAlign's forward as one function: fx records it as one call (the level filter
    reads the feature dict, which a Proxy cannot iterate)."""
    features = [v for k, v in x.items() if k in featmap_names]
    return _multi_scale_roi_align_op(features, boxes, image_shapes, output_size, sampling_ratio, canonical_scale,
                                     canonical_level)


@torch.fx.wrap
def _multi_scale_roi_align_reference_layer(x: Dict[str, torch.Tensor], boxes: List[torch.Tensor],
                                           image_shapes: List[Tuple[int, int]], featmap_names: List[str],
                                           output_size, sampling_ratio: int, canonical_scale: int,
                                           canonical_level: int) -> torch.Tensor:
    """MultiScaleRoIAlign's forward in reference mode, one call under fx like the op's."""
    features = [v for k, v in x.items() if k in featmap_names]
    return _multi_scale_roi_align_ref(features, boxes, image_shapes, output_size, sampling_ratio, canonical_scale,
                                      canonical_level)


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
        if self.reference:
            return _roi_align_ref(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio,
                                  self.aligned)
        return _roi_align_op(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

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
        # stored as torchvision stores it (and so shown by repr): an int n as (n, n), a list as a
        # tuple; anything else is left for the op to refuse
        if isinstance(output_size, int) and not isinstance(output_size, bool):
            output_size = (output_size, output_size)
        elif isinstance(output_size, list):
            output_size = tuple(output_size)
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level
        self.reference = False

    def forward(self, x: Dict[str, torch.Tensor], boxes: List[torch.Tensor],
                image_shapes: List[Tuple[int, int]]) -> torch.Tensor:
        if self.reference:
            return _multi_scale_roi_align_reference_layer(x, boxes, image_shapes, self.featmap_names,
                                                          self.output_size, self.sampling_ratio,
                                                          self.canonical_scale, self.canonical_level)
        return _multi_scale_roi_align_layer(x, boxes, image_shapes, self.featmap_names, self.output_size,
                                            self.sampling_ratio, self.canonical_scale, self.canonical_level)

    def extra_repr(self) -> str:
        return (f"featmap_names={self.featmap_names}, output_size={self.output_size}, "
                f"sampling_ratio={self.sampling_ratio}")
