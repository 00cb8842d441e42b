"""Non-maximum suppression layers: the detection models call NMS through these, so one
`reference` switch (see `fastseg.nn.set_reference`) also swaps NMS for its plain-PyTorch form."""
import torch
from torch import nn

from ..ops.nms import batched_nms as _batched_nms_op
from ..reference import batched_nms as _batched_nms_ref

# One node each under torch.fx.symbolic_trace.
torch.fx.wrap("_batched_nms_op")
torch.fx.wrap("_batched_nms_ref")


class BatchedNMS(nn.Module):
    """`BatchedNMS(iou_threshold)(boxes, scores, idxs)`: `fastseg.ops.batched_nms` (per-category
    NMS, kept indices in decreasing score order)."""

    def __init__(self, iou_threshold: float):
        super().__init__()
        self.iou_threshold = iou_threshold
        self.reference = False

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor) -> torch.Tensor:
        if self.reference:
            return _batched_nms_ref(boxes, scores, idxs, self.iou_threshold)
        return _batched_nms_op(boxes, scores, idxs, self.iou_threshold)

    def extra_repr(self) -> str:
        return f"iou_threshold={self.iou_threshold}"
