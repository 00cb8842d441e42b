"""Panoptic quality (Kirillov et al., CVPR 2019) with the rules of COCO panopticapi
(`pq_compute.py`, `pq_compute_single_core` and `PQStat.pq_average`), vectorised in PyTorch.

Per image, with VOID = ground-truth pixels whose id is 0:
- pixel intersections of every (gt id, pred id) pair come from one `torch.unique(gt * OFFSET +
  pred, return_counts=True)`;
- a gt segment and a pred segment of the same category, the gt not crowd, match when
  IoU > 0.5 (strict), where union = pred_area + gt_area - intersection - |pred ∩ VOID|
  (pixels the annotators did not label do not count against the prediction). IoU > 0.5 makes
  matches unique. Each match adds tp += 1 and iou_sum += IoU to its category;
- every unmatched non-crowd gt segment is a false negative;
- an unmatched pred segment is a false positive unless more than half of it lies in VOID or in
  the crowd region of its own category (|pred ∩ VOID| + |pred ∩ crowd| > area / 2).

Per category, PQ = iou_sum / (tp + fp/2 + fn/2), SQ = iou_sum / tp (0 when tp = 0) and
RQ = tp / (tp + fp/2 + fn/2); the reported PQ/SQ/RQ average them over the categories with
tp + fp + fn > 0 (all, things, stuff). Results are fractions in [0, 1]; panopticapi prints them
times 100. Where panopticapi is loose this module is strict (see `PanopticQuality.update`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ._utils import all_reduce_sum_, check_label_map, check_pair

__all__ = ["PanopticQuality", "OFFSET", "MAX_SEGMENT_ID"]

#: gt_id * OFFSET + pred_id is unique per pair and fits int64 for ids <= MAX_SEGMENT_ID.
OFFSET = 1 << 32
MAX_SEGMENT_ID = (1 << 31) - 1

Device = Union[str, torch.device, None]
_WHERE = "PanopticQuality.update"


@dataclass
class _Segments:
    """One image's segments_info as tensors, indexed by dense position: 0 is VOID, 1..n are the
    listed segments sorted by id (so `searchsorted` maps a map id to its position)."""
    ids: torch.Tensor          # int64 [n + 1], ids[0] = 0
    cls: torch.Tensor          # int64 [n + 1], class index, -1 for VOID
    crowd: torch.Tensor        # bool [n + 1]
    crowd_of_class: List[int]  # per class: position of its crowd segment, -1 if none


def _segments(name: str, segments_info: Sequence[Mapping[str, Any]], class_index: Dict[int, int],
              device: torch.device, with_crowd: bool) -> _Segments:
    """Validate one segments_info list (ids in [1, MAX_SEGMENT_ID], unique, known categories)."""
    if isinstance(segments_info, Mapping) or not isinstance(segments_info, Iterable):
        raise TypeError(f"{_WHERE}: {name} must be a list of dicts, got {type(segments_info).__name__}")
    rows = []
    for k, seg in enumerate(segments_info):
        try:
            sid, cat = int(seg["id"]), int(seg["category_id"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"{_WHERE}: {name}[{k}] needs integer 'id' and 'category_id' ({e!r})") from None
        if not 1 <= sid <= MAX_SEGMENT_ID:
            raise ValueError(f"{_WHERE}: {name}[{k}] has id {sid}; ids must be in [1, {MAX_SEGMENT_ID}] "
                             "(0 is void)")
        if cat not in class_index:
            raise ValueError(f"{_WHERE}: {name}: segment {sid} has unknown category_id {cat} "
                             f"(known: {sorted(class_index)})")
        crowd = with_crowd and int(seg.get("iscrowd", 0)) == 1
        rows.append((sid, class_index[cat], crowd))
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{_WHERE}: {name} lists segment ids {dup} more than once")
    order = sorted(range(len(rows)), key=lambda k: rows[k][0])
    position = {rows[k][0]: p + 1 for p, k in enumerate(order)}
    # panopticapi keeps one crowd segment per category: the last one listed (COCO has at most one).
    crowd_of_class = [-1] * len(class_index)
    for sid, c, crowd in rows:
        if crowd:
            crowd_of_class[c] = position[sid]
    return _Segments(
        ids=torch.tensor([0] + [rows[k][0] for k in order], dtype=torch.int64, device=device),
        cls=torch.tensor([-1] + [rows[k][1] for k in order], dtype=torch.int64, device=device),
        crowd=torch.tensor([False] + [rows[k][2] for k in order], dtype=torch.bool, device=device),
        crowd_of_class=crowd_of_class,
    )


def _lookup(table: torch.Tensor, ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Positions of `ids` in the sorted `table`, and whether each id is present."""
    pos = torch.searchsorted(table, ids).clamp_(max=table.numel() - 1)
    return pos, table[pos] == ids


def _flat_ids(name: str, t: torch.Tensor) -> torch.Tensor:
    return check_label_map(_WHERE, name, t).reshape(-1).to(torch.int64)


def _check_id_range(pred: torch.Tensor, gt: torch.Tensor) -> None:
    """Ids must be in [0, MAX_SEGMENT_ID] so that gt * OFFSET + pred cannot overflow (one sync)."""
    if pred.numel() == 0:
        return
    lo_p, hi_p, lo_g, hi_g = torch.stack([pred.min(), pred.max(), gt.min(), gt.max()]).tolist()
    for name, lo, hi in (("pred_panoptic", lo_p, hi_p), ("target_panoptic", lo_g, hi_g)):
        if lo < 0 or hi > MAX_SEGMENT_ID:
            raise ValueError(f"{_WHERE}: {name} ids must be in [0, {MAX_SEGMENT_ID}], got min {lo}, max {hi}")


def _missing(ids: torch.Tensor, limit: int = 10) -> List[int]:
    return sorted(set(ids.tolist()))[:limit]


def _class_count(cls: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(cls, minlength=num_classes)


def image_stats(pred_panoptic: torch.Tensor, pred_segments_info: Sequence[Mapping[str, Any]],
                target_panoptic: torch.Tensor, target_segments_info: Sequence[Mapping[str, Any]],
                class_index: Dict[int, int], ignore_crowd: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """One image's (counts int64 [C, 3] = tp, fp, fn; iou_sum float64 [C]) on the maps' device.

    `class_index` maps category_id -> row. Areas are pixel counts of the maps, not the dicts'
    "area". Raises ValueError for ids in a map but not in its segments_info, pred segments listed
    but absent from the map (panopticapi raises too), unknown categories, ids < 0 or > MAX_SEGMENT_ID.
    """
    p = _flat_ids("pred_panoptic", pred_panoptic)
    g = _flat_ids("target_panoptic", target_panoptic)
    check_pair(_WHERE, ("pred_panoptic", "target_panoptic"), pred_panoptic, target_panoptic)
    device, num_classes = p.device, len(class_index)
    ps = _segments("pred_segments_info", pred_segments_info, class_index, device, with_crowd=False)
    gs = _segments("target_segments_info", target_segments_info, class_index, device, with_crowd=ignore_crowd)
    _check_id_range(p, g)

    keys, inter = torch.unique(g * OFFSET + p, return_counts=True)
    gi, g_ok = _lookup(gs.ids, keys // OFFSET)
    pi, p_ok = _lookup(ps.ids, keys % OFFSET)
    p_area = torch.zeros(ps.ids.numel(), dtype=torch.int64, device=device).index_add_(0, pi, inter)
    g_area = torch.zeros(gs.ids.numel(), dtype=torch.int64, device=device).index_add_(0, gi, inter)
    absent = p_area[1:] == 0
    bad_g, bad_p, bad_absent = torch.stack([(~g_ok).any(), (~p_ok).any(), absent.any()]).tolist()
    if bad_p:
        raise ValueError(f"{_WHERE}: pred_panoptic has segment ids {_missing((keys % OFFSET)[~p_ok])} "
                         "that are not in pred_segments_info")
    if bad_g:
        raise ValueError(f"{_WHERE}: target_panoptic has segment ids {_missing((keys // OFFSET)[~g_ok])} "
                         "that are not in target_segments_info")
    if bad_absent:
        raise ValueError(f"{_WHERE}: pred_segments_info lists segment ids {_missing(ps.ids[1:][absent])} "
                         "that do not occur in pred_panoptic")

    in_void = gi == 0
    void_inter = torch.zeros_like(p_area).index_add_(0, pi[in_void], inter[in_void])

    # Matches: same category, gt not crowd, IoU > 0.5, i.e. 2 * intersection > union (exact).
    gc, pc = gs.cls[gi], ps.cls[pi]
    union = p_area[pi] + g_area[gi] - inter - void_inter[pi]
    match = (gi > 0) & (pi > 0) & ~gs.crowd[gi] & (gc == pc) & (2 * inter > union)
    iou = inter[match].double() / union[match].double()
    tp = _class_count(gc[match], num_classes)
    iou_sum = torch.zeros(num_classes, dtype=torch.float64, device=device).index_add_(0, gc[match], iou)

    g_matched = torch.zeros(gs.ids.numel(), dtype=torch.bool, device=device)
    g_matched[gi[match]] = True
    fn_seg = ~g_matched & ~gs.crowd
    fn = _class_count(gs.cls[1:][fn_seg[1:]], num_classes)

    # Unmatched preds: exempt when more than half lies in VOID or in its category's crowd region.
    p_matched = torch.zeros(ps.ids.numel(), dtype=torch.bool, device=device)
    p_matched[pi[match]] = True
    crowd_of_class = torch.tensor(gs.crowd_of_class + [-1], dtype=torch.int64, device=device)
    crowd_of_pred = crowd_of_class[ps.cls]  # ps.cls[0] = -1 picks the trailing -1
    in_crowd = (gi == crowd_of_pred[pi]) & (pi > 0)
    crowd_inter = torch.zeros_like(p_area).index_add_(0, pi[in_crowd], inter[in_crowd])
    exempt = 2 * (void_inter + crowd_inter) > p_area
    fp_seg = ~p_matched & ~exempt
    fp = _class_count(ps.cls[1:][fp_seg[1:]], num_classes)
    return torch.stack([tp, fp, fn], dim=1), iou_sum


def _class_scores(tp: int, fp: int, fn: int, iou_sum: float) -> Dict[str, float]:
    """panopticapi's per-class PQ, SQ, RQ (all 0.0 for a class with tp + fp + fn == 0)."""
    if tp + fp + fn == 0:
        return {"pq": 0.0, "sq": 0.0, "rq": 0.0}
    denom = tp + 0.5 * fp + 0.5 * fn
    return {"pq": iou_sum / denom, "sq": iou_sum / tp if tp else 0.0, "rq": tp / denom}


class PanopticQuality:
    """Streaming COCO panoptic quality over images.

    `thing_ids` and `stuff_ids` are the category_ids of segments_info (disjoint; their union is
    the set of categories). With `ignore_crowd` (COCO), gt segments with iscrowd=1 are neither
    matched nor false negatives and exempt overlapping predictions of their category; without
    it, iscrowd is disregarded and crowd segments are ordinary segments.

    State: `counts` int64 [C, 3] (tp, fp, fn) and `iou_sum` float64 [C], rows in the order of
    `category_ids` (sorted). It lives on `device` (CPU by default) and moves to the device of
    each update's maps, so CUDA inputs are evaluated on the GPU without copies.

    Typical DDP use: every rank calls `update` on its images, then `all_reduce()` once, then
    `compute()`.
    """

    def __init__(self, thing_ids: Iterable[int], stuff_ids: Iterable[int], *, ignore_crowd: bool = True,
                 device: Device = None) -> None:
        things, stuffs = [int(c) for c in thing_ids], [int(c) for c in stuff_ids]
        for name, ids in (("thing_ids", things), ("stuff_ids", stuffs)):
            if len(set(ids)) != len(ids):
                raise ValueError(f"PanopticQuality: {name} has duplicates: {ids}")
        both = sorted(set(things) & set(stuffs))
        if both:
            raise ValueError(f"PanopticQuality: categories {both} are in both thing_ids and stuff_ids")
        if not things and not stuffs:
            raise ValueError("PanopticQuality: thing_ids and stuff_ids are both empty")
        thing_set = set(things)
        self.category_ids: Tuple[int, ...] = tuple(sorted(things + stuffs))
        self.isthing: Tuple[bool, ...] = tuple(c in thing_set for c in self.category_ids)
        self.ignore_crowd = bool(ignore_crowd)
        self._class_index = {c: i for i, c in enumerate(self.category_ids)}
        device = torch.device("cpu") if device is None else torch.device(device)
        self.counts = torch.zeros(len(self.category_ids), 3, dtype=torch.int64, device=device)
        self.iou_sum = torch.zeros(len(self.category_ids), dtype=torch.float64, device=device)

    @property
    def device(self) -> torch.device:
        return self.counts.device

    def to(self, device: Device) -> "PanopticQuality":
        """Move the state to `device`; returns self."""
        self.counts, self.iou_sum = self.counts.to(device), self.iou_sum.to(device)
        return self

    def reset(self) -> None:
        self.counts.zero_()
        self.iou_sum.zero_()

    def update(self, pred_panoptic: torch.Tensor, pred_segments_info: Sequence[Mapping[str, Any]],
               target_panoptic: torch.Tensor, target_segments_info: Sequence[Mapping[str, Any]]) -> None:
        """Add one image. Maps are integer [H, W] (any shape, any integer dtype) of segment ids,
        0 = void; segments_info lists {"id", "category_id", ...} dicts (gt may have "iscrowd").
        For a batch, call once per image.

        Stricter than panopticapi (which silently skips or trusts these): a gt id in the map but
        not in target_segments_info, or an unknown gt category, raises ValueError; areas come
        from the maps, never from the dicts' "area". Like panopticapi, a pred id missing from
        pred_segments_info, a listed pred segment absent from the map, or an unknown pred
        category raises; a listed gt segment with no pixels counts as a false negative. The
        dicts' "isthing" is not read: thing or stuff comes from the constructor; pred "iscrowd"
        is ignored.
        """
        counts, iou_sum = image_stats(pred_panoptic, pred_segments_info, target_panoptic,
                                      target_segments_info, self._class_index, self.ignore_crowd)
        if counts.device != self.device:
            self.to(counts.device)
        self.counts += counts
        self.iou_sum += iou_sum

    def _check_compatible(self, other: "PanopticQuality", what: str) -> None:
        if not isinstance(other, PanopticQuality):
            raise TypeError(f"PanopticQuality.{what}: expected a PanopticQuality, got {type(other).__name__}")
        mine = (self.category_ids, self.isthing, self.ignore_crowd)
        theirs = (other.category_ids, other.isthing, other.ignore_crowd)
        if mine != theirs:
            raise ValueError(f"PanopticQuality.{what}: (category_ids, isthing, ignore_crowd) differ: "
                             f"{mine} vs {theirs}")

    def merge(self, other: "PanopticQuality") -> "PanopticQuality":
        """Add `other`'s state (same categories and ignore_crowd, else ValueError); returns self."""
        self._check_compatible(other, "merge")
        self.counts += other.counts.to(self.device)
        self.iou_sum += other.iou_sum.to(self.device)
        return self

    def all_reduce(self, group: Optional[object] = None) -> bool:
        """Sum the state over the torch.distributed `group` (every rank then holds the total).
        A no-op returning False when torch.distributed is not initialised. Call it once: a second
        call would add the totals again."""
        return all_reduce_sum_([self.counts, self.iou_sum], group)

    def state_dict(self) -> Dict[str, Any]:
        return {"category_ids": list(self.category_ids), "isthing": list(self.isthing),
                "ignore_crowd": self.ignore_crowd, "counts": self.counts.clone(), "iou_sum": self.iou_sum.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the state with `state` (from `state_dict` of a metric with the same categories)."""
        theirs = (tuple(state["category_ids"]), tuple(state["isthing"]), bool(state["ignore_crowd"]))
        if theirs != (self.category_ids, self.isthing, self.ignore_crowd):
            raise ValueError(f"PanopticQuality.load_state_dict: (category_ids, isthing, ignore_crowd) "
                             f"{theirs} differ from {(self.category_ids, self.isthing, self.ignore_crowd)}")
        self.counts = state["counts"].to(self.device, torch.int64).clone()
        self.iou_sum = state["iou_sum"].to(self.device, torch.float64).clone()

    def compute(self) -> Dict[str, Any]:
        """{"pq", "sq", "rq", "n"} over all categories, the same with suffix "_th" (things) and
        "_st" (stuff), and "per_class": {category_id: {"pq", "sq", "rq", "tp", "fp", "fn"}}.
        n counts the categories with tp + fp + fn > 0; a group with n = 0 reports 0.0 (where
        panopticapi would divide by zero)."""
        counts, iou_sums = self.counts.tolist(), self.iou_sum.tolist()
        per_class: Dict[int, Dict[str, Any]] = {}
        for cat, (tp, fp, fn), s in zip(self.category_ids, counts, iou_sums):
            per_class[cat] = {**_class_scores(tp, fp, fn, s), "tp": tp, "fp": fp, "fn": fn}
        out: Dict[str, Any] = {}
        for suffix, keep in (("", (True, False)), ("_th", (True,)), ("_st", (False,))):
            rows = [per_class[c] for c, th in zip(self.category_ids, self.isthing)
                    if th in keep and per_class[c]["tp"] + per_class[c]["fp"] + per_class[c]["fn"] > 0]
            n = len(rows)
            for key in ("pq", "sq", "rq"):
                out[key + suffix] = sum(r[key] for r in rows) / n if n else 0.0
            out["n" + suffix] = n
        out["per_class"] = per_class
        return out

    def __repr__(self) -> str:
        return (f"PanopticQuality(things={[c for c, t in zip(self.category_ids, self.isthing) if t]}, "
                f"stuff={[c for c, t in zip(self.category_ids, self.isthing) if not t]}, "
                f"ignore_crowd={self.ignore_crowd}, device={self.device})")
