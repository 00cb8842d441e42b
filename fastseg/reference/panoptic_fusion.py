"""Plain-PyTorch panoptic fusion: loops that follow docs/design.md §5.6 literally,
one full-image boolean mask per instance. The independent reference for tests and the baseline
of the benchmarks. Masks are always pasted first (`paste_masks` of this package's reference), so
the unpasted form costs a K x H x W tensor here; that is the point of the kernels.

Both return `(panoptic[H, W] int32, segments_info)` with segments numbered from 1 in creation
order, `segments_info` a list of `{id, category_id, isthing, score (things), area}`. Signatures
and the `pasted` rule (which form the masks are) are those of fastseg.ops.panoptic.
"""
from typing import List, Optional, Sequence

import torch

from ..ops.panoptic import resolve_pasted
from .paste_masks import paste_masks


def box_pixels(box: torch.Tensor, height: int, width: int, dtype=torch.float32) -> torch.Tensor:
    """Bool [H, W]: the pixels whose centre lies in the box, x1 <= x + 0.5 < x2 and likewise y."""
    x1, y1, x2, y2 = box.to(dtype).tolist()
    ys = torch.arange(height, dtype=dtype) + 0.5
    xs = torch.arange(width, dtype=dtype) + 0.5
    in_y = (ys >= y1) & (ys < y2)
    in_x = (xs >= x1) & (xs < x2)
    return in_y[:, None] & in_x[None, :]


def _order(scores: torch.Tensor) -> List[int]:
    # Decreasing score; ties keep the lower index first (a stable sort).
    return torch.sort(scores.cpu().double(), descending=True, stable=True).indices.tolist()


def panoptic_fusion_heuristic(semantic: torch.Tensor, masks: torch.Tensor, boxes: Optional[torch.Tensor],
                              scores: torch.Tensor, labels: torch.Tensor, *, score_threshold: float = 0.5,
                              overlap_threshold: float = 0.5, stuff_area_threshold: int = 4096,
                              pasted: Optional[bool] = None, thing_ids: Optional[Sequence[int]] = None):
    """detectron2's `combine_semantic_and_instance_outputs`, with a configurable set of
    semantic classes that are not stuff (`thing_ids`; `[0]` is detectron2's convention)."""
    semantic = semantic.cpu().long()
    height, width = semantic.shape
    masks = masks.cpu()
    if masks.dim() == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if not resolve_pasted("panoptic_fusion_heuristic", "masks", masks, (height, width), boxes, pasted):
        # per-box masks: paste them at image resolution first
        masks = paste_masks(masks, boxes.cpu(), (height, width), threshold=None)
    panoptic = torch.zeros(height, width, dtype=torch.int32)
    segments = []
    for k in _order(scores):
        score = float(scores[k])
        if score < score_threshold:
            break
        mask = masks[k] if masks.dtype == torch.bool else masks[k] >= 0.5
        mask_area = int(mask.sum())
        if mask_area == 0:
            continue
        intersect_area = int((mask & (panoptic > 0)).sum())
        if intersect_area / mask_area > overlap_threshold:
            continue
        mask = mask & (panoptic == 0)
        area = int(mask.sum())
        if area == 0:
            continue
        panoptic[mask] = len(segments) + 1
        segments.append({"id": len(segments) + 1, "category_id": int(labels[k]), "isthing": True,
                         "score": score, "area": area})
    not_stuff = set(int(t) for t in thing_ids) if thing_ids is not None else set()
    for label in torch.unique(semantic[panoptic == 0]).tolist():
        if label in not_stuff:
            continue
        mask = (semantic == label) & (panoptic == 0)
        area = int(mask.sum())
        if area < stuff_area_threshold or area == 0:
            continue
        panoptic[mask] = len(segments) + 1
        segments.append({"id": len(segments) + 1, "category_id": int(label), "isthing": False, "area": area})
    return panoptic, segments


def panoptic_fusion_efficientps(semantic_logits: torch.Tensor, mask_logits: torch.Tensor, boxes: torch.Tensor,
                                scores: torch.Tensor, labels: torch.Tensor, stuff_ids: Sequence[int], *,
                                score_threshold: float = 0.5, overlap_threshold: float = 0.5,
                                stuff_area_threshold: int = 2048, pasted: Optional[bool] = None,
                                segments_format: str = "info"):
    """The EfficientPS fusion (Mohan & Valada, IJCV 2021), as docs/design.md §5.6 states it."""
    def result(panoptic, segments, rows):
        if segments_format == "tensor":  # (instance index or -1, category id, area), as the op's
            return panoptic, torch.tensor(rows, dtype=torch.int64).view(-1, 3)
        return panoptic, segments

    dt = torch.float64 if semantic_logits.dtype == torch.float64 else torch.float32
    sem = semantic_logits.cpu().to(dt)
    _, height, width = sem.shape
    boxes = boxes.cpu()
    logits = mask_logits.cpu()
    if logits.dim() == 4 and logits.shape[1] == 1:
        logits = logits[:, 0]
    pasted = resolve_pasted("panoptic_fusion_efficientps", "mask_logits", logits, (height, width), boxes, pasted)
    if not pasted:
        logits = paste_masks(logits, boxes, (height, width), threshold=None)
    logits = logits.to(dt)
    # Candidates: score >= threshold, by decreasing score; keep those that overlap the union of
    # the kept ones by at most overlap_threshold of their own (non-empty) binary mask.
    union = torch.zeros(height, width, dtype=torch.bool)
    kept = []
    for k in _order(scores):
        if float(scores[k]) < score_threshold:
            break
        inside = box_pixels(boxes[k], height, width, dt)
        # sigmoid(l) > 0.5 is l > 0; written so, it does not depend on how the sigmoid rounds.
        mask = inside & (logits[k] > 0)
        area = int(mask.sum())
        if area == 0 or int((mask & union).sum()) / area > overlap_threshold:
            continue
        union |= mask
        kept.append(k)
    # Fused logits: stuff channels first, then one FL channel per kept instance.
    channels = [sem[c] for c in stuff_ids]
    for k in kept:
        inside = box_pixels(boxes[k], height, width, dt)
        mla, mlb = logits[k], sem[int(labels[k])]
        fl = (torch.sigmoid(mla) + torch.sigmoid(mlb)) * (mla + mlb)
        channels.append(torch.where(inside, fl, torch.full_like(fl, float("-inf"))))
    panoptic = torch.zeros(height, width, dtype=torch.int32)
    segments, rows = [], []
    if not channels:
        return result(panoptic, segments, rows)
    stack = torch.stack(channels)
    # argmax returns the first maximum (lower channel wins ties); a pixel where every channel is
    # -inf (no stuff channel, outside every box) is void.
    winner = stack.argmax(dim=0)
    void = torch.isneginf(stack).all(dim=0) if stack.shape[0] else torch.ones(height, width, dtype=torch.bool)
    n_stuff = len(stuff_ids)
    for i, k in enumerate(kept):
        mask = (winner == n_stuff + i) & ~void
        area = int(mask.sum())
        if area == 0:
            continue
        panoptic[mask] = len(segments) + 1
        segments.append({"id": len(segments) + 1, "category_id": int(labels[k]), "isthing": True,
                         "score": float(scores[k]), "area": area})
        rows.append((k, int(labels[k]), area))
    for j, c in enumerate(stuff_ids):
        mask = (winner == j) & ~void
        area = int(mask.sum())
        if area == 0 or area < stuff_area_threshold:
            continue
        panoptic[mask] = len(segments) + 1
        segments.append({"id": len(segments) + 1, "category_id": int(c), "isthing": False, "area": area})
        rows.append((-1, int(c), area))
    return result(panoptic, segments, rows)
