"""Semantic-segmentation mean IoU from a streaming confusion matrix.

confusion[t, p] counts the pixels of target class t predicted as p (pixels whose target is
`ignore_index` are skipped). Per class, IoU = TP / (TP + FP + FN) = cm[c, c] / (row_c + col_c -
cm[c, c]); a class absent from both prediction and target has no IoU (nan) and is left out of
the mean, as in mmseg and torchmetrics. Pixel accuracy = trace / total; mean accuracy averages
per-class recall cm[c, c] / row_c over classes present in the target.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Union

import torch

from ._utils import all_reduce_sum_, check_label_map, check_pair

__all__ = ["MeanIoU"]

Device = Union[str, torch.device, None]
_WHERE = "MeanIoU.update"


def _nanmean(values: torch.Tensor) -> float:
    """Mean over the non-nan entries; nan when there are none."""
    kept = values[~values.isnan()]
    return kept.mean().item() if kept.numel() else math.nan


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den in float64, nan where den == 0."""
    return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, math.nan))


class MeanIoU:
    """Streaming confusion matrix over `num_classes` labels 0..num_classes-1.

    `ignore_index` (None for none) marks target pixels to skip. It may lie inside the label
    range: target pixels of that class are then not counted, but predictions of it on counted
    pixels still are (false positives of the other classes' rows), and the class keeps its IoU
    entry (0 when it is predicted somewhere, nan when never), which enters the mean like any
    other class (mmseg's and torchmetrics' behaviour). To leave a class out of the mean entirely,
    drop its entry from `compute()["iou"]`. The state `confusion_matrix` (int64 [C, C], rows =
    target) moves to the device of each update's inputs, so CUDA inputs stay on the GPU.
    """

    def __init__(self, num_classes: int, ignore_index: Optional[int] = 255, *, device: Device = None) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"MeanIoU: num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        device = torch.device("cpu") if device is None else torch.device(device)
        self.confusion_matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @property
    def device(self) -> torch.device:
        return self.confusion_matrix.device

    def to(self, device: Device) -> "MeanIoU":
        self.confusion_matrix = self.confusion_matrix.to(device)
        return self

    def reset(self) -> None:
        self.confusion_matrix.zero_()

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add integer label maps of the same shape (any leading dims, e.g. [N, H, W]).

        ValueError when pred has a label outside [0, num_classes) at a pixel that is not
        ignored, or target has a value outside [0, num_classes) other than ignore_index.
        """
        check_label_map(_WHERE, "pred", pred)
        check_label_map(_WHERE, "target", target)
        check_pair(_WHERE, ("pred", "target"), pred, target)
        c = self.num_classes
        p, t = pred.reshape(-1).to(torch.int64), target.reshape(-1).to(torch.int64)
        keep = t != self.ignore_index if self.ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
        p, t = torch.where(keep, p, 0), torch.where(keep, t, 0)  # ignored pixels are not validated
        if p.numel():
            lo_p, hi_p, lo_t, hi_t = torch.stack([p.min(), p.max(), t.min(), t.max()]).tolist()
            if lo_p < 0 or hi_p >= c:
                raise ValueError(f"{_WHERE}: pred has labels in [{lo_p}, {hi_p}] at non-ignored pixels; "
                                 f"they must be in [0, {c})")
            if lo_t < 0 or hi_t >= c:
                raise ValueError(f"{_WHERE}: target has values in [{lo_t}, {hi_t}]; they must be in "
                                 f"[0, {c}) or equal ignore_index={self.ignore_index}")
        # Ignored pixels go to the extra bin c * c, dropped after counting (no boolean-mask sync).
        idx = torch.where(keep, t * c + p, c * c)
        counts = torch.bincount(idx, minlength=c * c + 1)[: c * c].view(c, c)
        if counts.device != self.device:
            self.to(counts.device)
        self.confusion_matrix += counts

    def _check_compatible(self, other: "MeanIoU", what: str) -> None:
        if not isinstance(other, MeanIoU):
            raise TypeError(f"MeanIoU.{what}: expected a MeanIoU, got {type(other).__name__}")
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(f"MeanIoU.{what}: (num_classes, ignore_index) differ: "
                             f"{(self.num_classes, self.ignore_index)} vs {(other.num_classes, other.ignore_index)}")

    def merge(self, other: "MeanIoU") -> "MeanIoU":
        """Add `other`'s confusion matrix (same num_classes and ignore_index); returns self."""
        self._check_compatible(other, "merge")
        self.confusion_matrix += other.confusion_matrix.to(self.device)
        return self

    def all_reduce(self, group: Optional[object] = None) -> bool:
        """Sum the confusion matrix over the torch.distributed `group`; a no-op returning False
        when torch.distributed is not initialised. Call it once (a second call adds again)."""
        return all_reduce_sum_([self.confusion_matrix], group)

    def state_dict(self) -> Dict[str, Any]:
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index,
                "confusion_matrix": self.confusion_matrix.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        theirs = (int(state["num_classes"]), state["ignore_index"])
        if theirs != (self.num_classes, self.ignore_index):
            raise ValueError(f"MeanIoU.load_state_dict: (num_classes, ignore_index) {theirs} differ from "
                             f"{(self.num_classes, self.ignore_index)}")
        self.confusion_matrix = state["confusion_matrix"].to(self.device, torch.int64).clone()

    def compute(self) -> Dict[str, Any]:
        """{"miou", "iou": per-class list (nan if absent from pred and target), "accuracy":
        per-class recall (nan if absent from target), "mean_accuracy", "pixel_accuracy"}.
        Means skip nan; with no counted pixel every value is nan."""
        cm = self.confusion_matrix.to(torch.float64)
        tp, rows, cols = cm.diagonal(), cm.sum(1), cm.sum(0)
        iou = _ratio(tp, rows + cols - tp)
        acc = _ratio(tp, rows)
        total = cm.sum()
        return {
            "miou": _nanmean(iou),
            "iou": iou.tolist(),
            "pixel_accuracy": (tp.sum() / total).item() if total > 0 else math.nan,
            "mean_accuracy": _nanmean(acc),
            "accuracy": acc.tolist(),
        }

    def __repr__(self) -> str:
        return f"MeanIoU(num_classes={self.num_classes}, ignore_index={self.ignore_index}, device={self.device})"
