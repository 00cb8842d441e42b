"""NMS on Mask R-CNN-like boxes: RPN proposals (1000 and 5000 boxes, IoU 0.7) and the box
head's per-class NMS (5000 scored boxes over 80 classes, IoU 0.5), on an 800x1088 image.
Baselines in the same run: torchvision.ops.nms / batched_nms when importable, else the
plain-PyTorch reference. Forward only (NMS returns indices).

Bytes charged per call: reads boxes K*4*e and scores K*e (idxs K*8), writes the kept indices.
"""
import torch

from ..harness import Case, State, Variant, register

FAMILY = "nms"


def _ops():
    import fastseg.ops
    return fastseg.ops


def _torchvision_ops():
    try:
        import torchvision.ops
    except Exception:  # not installed, or built against another torch
        return None
    return torchvision.ops


def _setup(k: int, classes: int, threshold: float):
    def setup(device: torch.device, size: str) -> State:
        k_ = max(64, k // 8) if size == "small" else k
        g = torch.Generator().manual_seed(0)
        # clustered boxes of many sizes, as proposals around objects are
        centers = torch.rand(k_ // 20 + 1, 2, generator=g) * torch.tensor([1088.0, 800.0])
        c = centers[torch.randint(len(centers), (k_,), generator=g)] + torch.randn(k_, 2, generator=g) * 20
        wh = torch.exp(torch.rand(k_, 2, generator=g) * 4) * 8
        boxes = torch.cat([c - wh / 2, c + wh / 2], 1).to(device)
        # distinct scores: torchvision's batched_nms orders equal scores arbitrarily (unstable sort)
        scores = (torch.randperm(k_, generator=g).float() / k_).to(device)
        idxs = torch.randint(0, classes, (k_,), generator=g).to(device)
        return State(boxes=boxes, scores=scores, idxs=idxs, threshold=threshold, classes=classes,
                     shapes={"boxes": list(boxes.shape), "classes": classes, "iou_threshold": threshold},
                     notes={})
    return setup


def _bytes(state: State, mode: str, variant: str) -> int:
    k = state.boxes.shape[0]
    return k * 4 * 4 + k * 4 + (k * 8 if state.classes > 1 else 0) + k * 8


def _baseline(fn_name: str, ref_name: str):
    def run(s: State):
        tv = _torchvision_ops()
        if tv is not None:
            fn = getattr(tv, fn_name)
        else:
            import fastseg.reference
            fn = getattr(fastseg.reference, ref_name)
        if fn_name == "batched_nms":
            return fn(s.boxes, s.scores, s.idxs, s.threshold)
        return fn(s.boxes, s.scores, s.threshold)
    return run



for _name, _k, _classes, _thr, _desc in (
        ("rpn_nms_1000", 1000, 1, 0.7, "RPN proposals: 1000 boxes, IoU 0.7"),
        ("rpn_nms_5000", 5000, 1, 0.7, "RPN proposals: 5000 boxes, IoU 0.7"),
        ("box_head_batched_nms", 5000, 80, 0.5, "box head post-processing: 5000 boxes over 80 classes, IoU 0.5")):
    if _classes == 1:
        _variants = [Variant("fastseg", lambda s: _ops().nms(s.boxes, s.scores, s.threshold), kind="fastseg",
                             modes=("fwd",), description="fastseg.ops.nms"),
                     Variant("torchvision", _baseline("nms", "nms"), modes=("fwd",),
                             description="torchvision.ops.nms (fastseg.reference.nms without torchvision)")]
    else:
        _variants = [Variant("fastseg", lambda s: _ops().batched_nms(s.boxes, s.scores, s.idxs, s.threshold),
                             kind="fastseg", modes=("fwd",), description="fastseg.ops.batched_nms"),
                     Variant("torchvision", _baseline("batched_nms", "batched_nms"), modes=("fwd",),
                             description="torchvision.ops.batched_nms (fastseg.reference without torchvision)")]
    register(Case(_name, FAMILY, _desc + " (800x1088 image); baseline torchvision", _setup(_k, _classes, _thr),
                  _variants, _bytes, modes=("fwd",), atol=0, rtol=0))
