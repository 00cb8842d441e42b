"""Panoptic fusion: the Panoptic FPN heuristic and the EfficientPS fusion (docs/design.md §5.6).

Both return `(panoptic, segments_info)`: `panoptic` an int32 [H, W] map (0 = void, segments
numbered from 1 in creation order), `segments_info` a list of
`{"id", "category_id", "isthing", "score" (things only), "area"}`.

Instance masks come either pasted, [K, H, W], or as [K, M, M] (or [K, Mh, Mw]) per-box masks
with `boxes` [K, 4] (x1, y1, x2, y2 in image pixels), pasted on the fly inside each box with
`paste_masks`' math (bilinear, detectron2's pixel convention), so that no K x H x W tensor
exists. For float32 and float64 masks both forms give identical results when the pasted form is
`fastseg.ops.paste_masks(masks, boxes, (H, W), threshold=None)`.

Which form the masks are is one rule for both fusions (`resolve_pasted`), the keyword `pasted`:
- `pasted=True`: masks are [K, H, W]; `boxes` do not paste anything (the heuristic ignores them;
  EfficientPS still uses each box as the region where its instance competes);
- `pasted=False`: per-box masks, `boxes` required;
- `pasted=None` (default) decides by shape: no boxes means pasted; with boxes, masks whose
  trailing shape is not the image's are per-box, masks shaped like a non-square image are
  pasted, and [K, M, M] masks on an M x M image could be either: a ValueError asks for the keyword.

Thresholds are keyword-only and named alike in both: `score_threshold`, `overlap_threshold`,
`stuff_area_threshold`, then `pasted`.

Inference only (no autograd). The instance loop runs on the host, one count and one write pass
per instance over its pixel rectangle; kernels in csrc/ops/panoptic/. `segments_info` is Python
data, so the ops are not traceable as a whole; the tensor-only parts are
`torch.ops.fastseg.panoptic_fusion_heuristic` / `panoptic_fusion_efficientps`, which return
`(panoptic, segments[S, 3] int64 = (instance index or -1 for stuff, category id, area))`.
"""
import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .. import _loader
from ._utils import check_bool, check_float, check_int, check_same_device, fake_same_device

__all__ = ["panoptic_fusion_heuristic", "panoptic_fusion_efficientps", "segments_to_info"]


def _tensor(op: str, name: str, t) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"fastseg.{op}: {name} must be a Tensor, got {type(t).__name__}")
    return t


def _number(op: str, name: str, v, kind=float):
    """A finite float or an int (the shared contract of fastseg.ops._utils)."""
    if kind is float:
        return check_float(v, op, name)
    return check_int(v, op, name)


def _ids(op: str, name: str, ids) -> List[int]:
    if isinstance(ids, torch.Tensor):
        ids = ids.flatten().tolist()
    try:
        ids = list(ids)  # also numpy arrays and generators (iterated once)
        ok = all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in ids)
        out = [int(i) for i in ids] if ok else []
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(f"fastseg.{op}: {name} must be a sequence of ints, got {ids!r}")
    return out


def _labels(op: str, labels: torch.Tensor) -> torch.Tensor:
    _tensor(op, "labels", labels)
    if labels.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        labels = labels.long()  # class ids of any integer dtype; the kernels index with int64
    return labels


def resolve_pasted(op: str, masks_name: str, masks: torch.Tensor, image_size: Optional[Tuple[int, int]],
                   boxes: Optional[torch.Tensor], pasted: Optional[bool]) -> bool:
    """Whether `masks` are pasted [K, H, W] masks (True) or per-box masks (False): the rule both
    fusions share (module docstring). `image_size` (H, W), None where the semantic input has the
    wrong rank (its own check then raises). Shapes the rule cannot read (a wrong mask rank) give
    the per-box form with boxes, the pasted form without, whose shape checks name the problem."""
    if pasted is not None:
        pasted = check_bool(pasted, op, "pasted")
        if not pasted and boxes is None:
            raise ValueError(f"fastseg.{op}: pasted=False (per-box {masks_name}) needs boxes [K, 4], got None")
        return pasted
    if boxes is None:
        return True
    if masks.dim() != 3 or image_size is None:
        return False
    h, w = image_size
    if tuple(masks.shape[1:]) != (h, w):
        return False
    if h != w:
        return True
    raise ValueError(f"fastseg.{op}: {masks_name} {list(masks.shape)} with boxes on a {h}x{w} image could be pasted "
                     f"[K, H, W] masks or per-box [K, M, M] masks; pass pasted=True (pasted) or pasted=False "
                     f"(per box)")


def segments_to_info(segments: torch.Tensor, scores: torch.Tensor) -> List[Dict]:
    """The ops' `segments[S, 3]` (instance index or -1, category id, area) as segments_info."""
    rows = segments.tolist()
    score_list = scores.tolist()
    info = []
    for i, (instance, category, area) in enumerate(rows):
        seg = {"id": i + 1, "category_id": int(category), "isthing": instance >= 0, "area": int(area)}
        if instance >= 0:
            seg["score"] = float(score_list[instance])
        info.append(seg)
    return info


def panoptic_fusion_heuristic(semantic: torch.Tensor, masks: torch.Tensor, boxes: Optional[torch.Tensor],
                              scores: torch.Tensor, labels: torch.Tensor, *, score_threshold: float = 0.5,
                              overlap_threshold: float = 0.5, stuff_area_threshold: int = 4096,
                              pasted: Optional[bool] = None,
                              thing_ids: Optional[Sequence[int]] = None) -> Tuple[torch.Tensor, List[Dict]]:
    """detectron2's `combine_semantic_and_instance_outputs` (Panoptic FPN).

    semantic: [H, W] integer class ids. masks: [K, H, W] pasted probabilities or bool, or
    [K, M, M] per-box probabilities with boxes [K, 4] (`pasted`: see the module docstring; with
    pasted masks the boxes change nothing). scores [K], labels [K] (category ids >= 0).
    Instances by decreasing score (ties: lower index first) until the first below
    score_threshold; binary mask = prob >= 0.5; empty masks are skipped, and so is a mask whose
    already-taken fraction exceeds overlap_threshold; otherwise its free pixels form a new thing
    segment. Then every semantic class not in `thing_ids` (None: every class; detectron2 uses
    [0], its "all things" class) whose free area is >= stuff_area_threshold (and > 0) becomes
    a stuff segment, in ascending class order.
    """
    _loader.require_ops()
    op = "panoptic_fusion_heuristic"
    for name, t in (("semantic", semantic), ("masks", masks), ("scores", scores)):
        _tensor(op, name, t)
    if boxes is not None:
        _tensor(op, "boxes", boxes)
    if masks.dim() == 4 and masks.shape[1] == 1:  # [K, 1, M, M] as Mask R-CNN's head returns
        masks = masks[:, 0]
    check_same_device(op, "semantic", semantic, ("masks", masks), ("boxes", boxes), ("scores", scores),
                      ("labels", labels))
    labels = _labels(op, labels)
    image_size = tuple(semantic.shape) if semantic.dim() == 2 else None
    if resolve_pasted(op, "masks", masks, image_size, boxes, pasted):
        boxes = None  # the kernel takes boxes as "per-box masks"
    stuff_area = _number(op, "stuff_area_threshold", stuff_area_threshold, int)
    panoptic, segments = torch.ops.fastseg.panoptic_fusion_heuristic.default(
        semantic, masks, boxes, scores, labels, _number(op, "overlap_threshold", overlap_threshold), stuff_area,
        _number(op, "score_threshold", score_threshold), _ids(op, "thing_ids", [] if thing_ids is None else thing_ids))
    return panoptic, segments_to_info(segments, scores)


def panoptic_fusion_efficientps(semantic_logits: torch.Tensor, mask_logits: torch.Tensor, boxes: torch.Tensor,
                                scores: torch.Tensor, labels: torch.Tensor, stuff_ids: Sequence[int], *,
                                score_threshold: float = 0.5, overlap_threshold: float = 0.5,
                                stuff_area_threshold: int = 2048, pasted: Optional[bool] = None,
                                segments_format: str = "info") -> Tuple[torch.Tensor, Any]:
    """The EfficientPS fusion (Mohan & Valada, IJCV 2021).

    semantic_logits [Cs, H, W]; mask_logits [K, H, W] (pasted) or [K, M, M] (per box; `pasted`:
    see the module docstring), boxes [K, 4] (always: with pasted masks too, each box is where its
    instance competes), scores [K], labels [K] (semantic channels of the instances' classes),
    stuff_ids: the stuff channels.

    Instances with score >= score_threshold, by decreasing score (ties: lower index first);
    binary mask = sigmoid(logit) > 0.5 on the pixels whose centre lies in the box, evaluated
    exactly as logit > 0 (a rounded float sigmoid would call logits below ~3e-8 "0.5"); an instance is dropped if its binary mask is empty or overlaps the union of the kept
    ones by more than overlap_threshold of its area. For kept instance i, inside its box:
    FL_i = (sigmoid(MLA_i) + sigmoid(MLB_i)) * (MLA_i + MLB_i), MLA = its pasted mask logits,
    MLB = semantic_logits[labels[i]]; -inf outside. Per pixel the argmax over the stuff logits
    (in stuff_ids order) followed by the FL_i (kept order), the lower channel winning ties, picks
    that instance's segment or that stuff class; a pixel where every channel is -inf is void.
    Segments: kept instances with pixels first, then stuff classes in stuff_ids order whose area
    is >= stuff_area_threshold (smaller ones become void).

    `segments_format="info"` returns segments_info (Python data); `"tensor"` returns the op's
    `segments` [S, 3] int64 (instance index or -1, category id, area) instead, which traces,
    compiles and exports (`segments_to_info(segments, scores)` makes the info of it).
    """
    _loader.require_ops()
    op = "panoptic_fusion_efficientps"
    for name, t in (("semantic_logits", semantic_logits), ("mask_logits", mask_logits), ("boxes", boxes),
                    ("scores", scores)):
        _tensor(op, name, t)
    if mask_logits.dim() == 4 and mask_logits.shape[1] == 1:
        mask_logits = mask_logits[:, 0]
    check_same_device(op, "semantic_logits", semantic_logits, ("mask_logits", mask_logits), ("boxes", boxes),
                      ("scores", scores), ("labels", labels))
    labels = _labels(op, labels)
    image_size = tuple(semantic_logits.shape[1:]) if semantic_logits.dim() == 3 else None
    pasted = resolve_pasted(op, "mask_logits", mask_logits, image_size, boxes, pasted)
    if segments_format not in ("info", "tensor"):
        raise ValueError(f"fastseg.{op}: segments_format must be 'info' or 'tensor', got {segments_format!r}")
    panoptic, segments = torch.ops.fastseg.panoptic_fusion_efficientps.default(
        semantic_logits, mask_logits, boxes, scores, labels, _ids(op, "stuff_ids", stuff_ids),
        _number(op, "score_threshold", score_threshold), _number(op, "overlap_threshold", overlap_threshold),
        _number(op, "stuff_area_threshold", stuff_area_threshold, int), pasted)
    return (panoptic, segments) if segments_format == "tensor" else (panoptic, segments_to_info(segments, scores))


def _make_fake(op, names):
    def _fake(semantic, masks, boxes, scores, labels, *args):
        fake_same_device(op, names[0], semantic, *zip(names[1:], (masks, boxes, scores, labels)))
        h, w = semantic.shape[-2], semantic.shape[-1]
        n = torch.library.get_ctx().new_dynamic_size()
        return (semantic.new_empty((h, w), dtype=torch.int32), semantic.new_empty((n, 3), dtype=torch.long))

    return _fake


if _loader.HAS_OPS:
    torch.library.register_fake("fastseg::panoptic_fusion_heuristic")(
        _make_fake("panoptic_fusion_heuristic", ("semantic", "masks", "boxes", "scores", "labels")))
    torch.library.register_fake("fastseg::panoptic_fusion_efficientps")(
        _make_fake("panoptic_fusion_efficientps", ("semantic_logits", "mask_logits", "boxes", "scores", "labels")))
