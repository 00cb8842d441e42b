"""Evaluation metrics in plain PyTorch (no compiled extension needed).

- `PanopticQuality`: COCO panoptic quality (PQ/SQ/RQ, things and stuff) with panopticapi's rules.
- `MeanIoU`: semantic-segmentation mean IoU and accuracies from a confusion matrix.

Both stream over images (`update`), combine partial results (`merge`, `all_reduce` over
torch.distributed) and keep float64/int64 state on the device of their inputs.
"""
from .mean_iou import MeanIoU
from .panoptic_quality import PanopticQuality

__all__ = ["MeanIoU", "PanopticQuality"]
