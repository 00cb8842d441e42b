"""Plain-Python COCO panoptic quality: `pq_compute_single_core` and `PQStat.pq_average` of
cocodataset/panopticapi (panopticapi/evaluation.py, formerly pq_compute.py), transcribed with
explicit loops over segments and per-pixel boolean masks. Slow; the independent reference for
fastseg.metrics.PanopticQuality, which must give the same counts.

Differences from panopticapi, shared with fastseg.metrics: areas are pixel counts of the maps
(panopticapi reads the gt area from the JSON); KeyError becomes ValueError; a gt id in the map
but not in gt_segments, or an unknown gt category, raises (panopticapi skips them); with
`ignore_crowd=False`, iscrowd is disregarded; a category with no segments averages to 0.0
instead of dividing by zero.
"""
from typing import Any, Dict, List, Mapping, Sequence

import torch

VOID = 0


def _areas(panoptic: torch.Tensor, segms: Dict[int, Dict[str, Any]], name: str) -> None:
    """Set segms[id]["area"] to its pixel count; every non-void id of the map must be listed."""
    for label in sorted(set(panoptic.flatten().tolist())):
        if label == VOID:
            continue
        if label not in segms:
            raise ValueError(f"segment id {label} is in the {name} map but not in its segments_info")
        segms[label]["area"] = int((panoptic == label).sum())


def pq_compute_single(pred: torch.Tensor, pred_segments: Sequence[Mapping[str, Any]], gt: torch.Tensor,
                      gt_segments: Sequence[Mapping[str, Any]], categories: Dict[int, bool],
                      ignore_crowd: bool = True) -> Dict[int, List[float]]:
    """Per category id (every key of `categories`, id -> isthing): [tp, fp, fn, iou_sum]."""
    pred, gt = torch.as_tensor(pred).cpu().long(), torch.as_tensor(gt).cpu().long()
    pq_stat = {cat: [0, 0, 0, 0.0] for cat in categories}
    gt_segms = {int(el["id"]): {**el, "area": 0} for el in gt_segments}
    pred_segms = {int(el["id"]): {**el, "area": 0} for el in pred_segments}
    for segms in (gt_segms, pred_segms):
        for label, info in segms.items():
            if info["category_id"] not in categories:
                raise ValueError(f"segment {label} has unknown category_id {info['category_id']}")

    # predicted segment areas + sanity checks
    _areas(pred, pred_segms, "pred")
    unused = [label for label, info in pred_segms.items() if info["area"] == 0]
    if unused:
        raise ValueError(f"pred segment ids {unused} are in segments_info and not in the map")
    _areas(gt, gt_segms, "gt")

    def iscrowd(info: Mapping[str, Any]) -> bool:
        return ignore_crowd and int(info.get("iscrowd", 0)) == 1

    # intersections of every (gt segment or VOID, pred segment) pair
    gt_pred_map = {}
    for gt_label in [VOID] + list(gt_segms):
        gt_mask = gt == gt_label
        for pred_label in pred_segms:
            intersection = int((gt_mask & (pred == pred_label)).sum())
            if intersection > 0:
                gt_pred_map[(gt_label, pred_label)] = intersection

    # count all matched pairs
    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        if iscrowd(gt_segms[gt_label]):
            continue
        if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
            continue
        union = (pred_segms[pred_label]["area"] + gt_segms[gt_label]["area"] - intersection
                 - gt_pred_map.get((VOID, pred_label), 0))
        iou = intersection / union
        if iou > 0.5:
            stat = pq_stat[gt_segms[gt_label]["category_id"]]
            stat[0] += 1
            stat[3] += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)

    # count false negatives
    crowd_labels_dict = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if iscrowd(gt_info):  # crowd segments are ignored
            crowd_labels_dict[gt_info["category_id"]] = gt_label
            continue
        pq_stat[gt_info["category_id"]][2] += 1

    # count false positives
    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = gt_pred_map.get((VOID, pred_label), 0)  # intersection with VOID
        if pred_info["category_id"] in crowd_labels_dict:  # plus with the crowd region of its category
            intersection += gt_pred_map.get((crowd_labels_dict[pred_info["category_id"]], pred_label), 0)
        if intersection / pred_info["area"] > 0.5:  # mostly VOID and CROWD: ignored
            continue
        pq_stat[pred_info["category_id"]][1] += 1
    return pq_stat


def pq_from_stats(stats: Dict[int, Sequence[float]], categories: Dict[int, bool]) -> Dict[str, Any]:
    """panopticapi's pq_average for all categories, things ("_th") and stuff ("_st"), plus
    "per_class": {id: {"pq", "sq", "rq"}}. Fractions, not percentages."""
    out: Dict[str, Any] = {"per_class": {}}
    for suffix, isthing in (("", None), ("_th", True), ("_st", False)):
        pq, sq, rq, n = 0.0, 0.0, 0.0, 0
        for label, label_isthing in categories.items():
            if isthing is not None and isthing != label_isthing:
                continue
            tp, fp, fn, iou = stats[label]
            if tp + fp + fn == 0:
                out["per_class"][label] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            n += 1
            pq_class = iou / (tp + 0.5 * fp + 0.5 * fn)
            sq_class = iou / tp if tp != 0 else 0
            rq_class = tp / (tp + 0.5 * fp + 0.5 * fn)
            out["per_class"][label] = {"pq": pq_class, "sq": sq_class, "rq": rq_class}
            pq += pq_class
            sq += sq_class
            rq += rq_class
        out.update({"pq" + suffix: pq / n if n else 0.0, "sq" + suffix: sq / n if n else 0.0,
                    "rq" + suffix: rq / n if n else 0.0, "n" + suffix: n})
    return out
