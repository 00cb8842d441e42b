"""Non-maximum suppression: nms and batched_nms, drop-ins for torchvision.ops.nms / batched_nms.

Both return the indices of the kept boxes (int64) in decreasing score order, equal scores by
lower index, with torchvision's arithmetic (a box is suppressed when its IoU with a kept box is
> iou_threshold). Boxes are (x1, y1, x2, y2). Kernels in csrc/ops/nms/; not differentiable
(indices).

`batched_nms` is exact per-class NMS in one call (classes in parallel on the CPU, one bitmask
pass on CUDA): torchvision's `_batched_nms_vanilla`. torchvision's own `batched_nms` switches,
for small inputs, to an offset trick (each class's boxes shifted by class * (max coordinate + 1)
before one NMS); the shifted coordinates are rounded, so for IoUs within a rounding error of the
threshold its result can differ from the exact per-class one (the tests pin this down).
"""
import torch
from torch.fx.experimental.symbolic_shapes import guard_or_false

from .. import _loader
from ._utils import check_float, check_same_device, fake_same_device, register_autocast

__all__ = ["nms", "batched_nms"]


def _check(op, boxes, scores, idxs=None, with_idxs=False):
    for name, t in (("boxes", boxes), ("scores", scores)) + ((("idxs", idxs),) if with_idxs else ()):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"fastseg.{op}: {name} must be a Tensor, got {type(t).__name__}")
    check_same_device(op, "boxes", boxes, ("scores", scores), ("idxs", idxs))


def _threshold(op, iou_threshold) -> float:
    """A finite float (numpy scalars and one-element tensors accepted, as torchvision does). NaN
    would keep every box and +-inf keep all or one; torchvision runs them, here they raise."""
    return check_float(iou_threshold, op, "iou_threshold")


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Drop-in for `torchvision.ops.nms(boxes[K,4], scores[K], iou_threshold)`."""
    _loader.require_ops()
    _check("nms", boxes, scores)
    return torch.ops.fastseg.nms.default(boxes, scores, _threshold("nms", iou_threshold))


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Drop-in for `torchvision.ops.batched_nms`: NMS within each category `idxs[k]`, the kept
    boxes of all categories merged in decreasing score order."""
    _loader.require_ops()
    # guard_or_false: under torch.export the number of boxes may be data-dependent (unknown),
    # and then the op itself handles the empty case.
    if isinstance(boxes, torch.Tensor) and guard_or_false(boxes.numel() == 0):
        # torchvision returns before looking at the other arguments
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    _check("batched_nms", boxes, scores, idxs, with_idxs=True)
    return torch.ops.fastseg.batched_nms.default(boxes, scores, idxs, _threshold("batched_nms", iou_threshold))


def _fake_kept(boxes, scores, idxs=None, op="nms"):
    torch._check(boxes.dim() == 2, lambda: f"fastseg.{op}: boxes must be [K, 4], got {boxes.dim()}-D")
    fake_same_device(op, "boxes", boxes, ("scores", scores), ("idxs", idxs))
    n = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((n,), dtype=torch.long)


if _loader.HAS_OPS:
    # Under autocast, boxes and scores in float32 (torchvision's nms autocast policy): the
    # bfloat16 / float16 scores autocast produces next to float32 boxes are accepted as there.
    register_autocast(("nms", "batched_nms"), torch.float32)
    torch.library.register_fake("fastseg::nms")(lambda boxes, scores, iou_threshold: _fake_kept(boxes, scores))
    torch.library.register_fake("fastseg::batched_nms")(
        lambda boxes, scores, idxs, iou_threshold: _fake_kept(boxes, scores, idxs, "batched_nms"))
