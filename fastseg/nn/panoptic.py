"""The panoptic fusion layer (see `fastseg.ops.panoptic_fusion_efficientps`), with a `reference`
switch like every fastseg layer."""
from typing import Any, Sequence, Tuple

import torch
from torch import nn

from ..ops.panoptic import panoptic_fusion_efficientps as _efficientps_op
from ..reference import panoptic_fusion_efficientps as _efficientps_ref

# One node under torch.fx.symbolic_trace (its output is Python data when segments_format='info').
torch.fx.wrap("_efficientps_op")
torch.fx.wrap("_efficientps_ref")


class PanopticFusionEfficientPS(nn.Module):
    """EfficientPS's fusion of per-box mask logits and semantic logits into one panoptic map:
    `forward(semantic_logits [C, H, W], mask_logits [K, M, M], boxes [K, 4], scores [K],
    labels [K]) -> (panoptic [H, W] int32, segments_info)`; `labels` are the instances'
    semantic channels, `stuff_ids` the stuff channels. The masks are pasted inside the fusion
    (no K x H x W tensor is made). `segments_format="tensor"` returns `segments` [S, 3] int64
    (instance index or -1, category id, area) in place of segments_info: traceable, exportable."""

    def __init__(self, stuff_ids: Sequence[int], score_threshold: float = 0.5, overlap_threshold: float = 0.5,
                 stuff_area_threshold: int = 2048, segments_format: str = "info"):
        super().__init__()
        self.segments_format = segments_format
        self.stuff_ids = [int(c) for c in stuff_ids]
        self.score_threshold, self.overlap_threshold = score_threshold, overlap_threshold
        self.stuff_area_threshold = stuff_area_threshold
        self.reference = False

    def forward(self, semantic_logits: torch.Tensor, mask_logits: torch.Tensor, boxes: torch.Tensor,
                scores: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, Any]:
        fn = _efficientps_ref if self.reference else _efficientps_op
        return fn(semantic_logits, mask_logits, boxes, scores, labels, self.stuff_ids,
                  score_threshold=self.score_threshold, overlap_threshold=self.overlap_threshold,
                  stuff_area_threshold=self.stuff_area_threshold, pasted=False, segments_format=self.segments_format)

    def extra_repr(self) -> str:
        return (f"stuff_ids={self.stuff_ids}, score_threshold={self.score_threshold}, "
                f"overlap_threshold={self.overlap_threshold}, stuff_area_threshold={self.stuff_area_threshold}, "
                f"segments_format={self.segments_format!r}")
