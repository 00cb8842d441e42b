"""Plain-PyTorch NMS (no torchvision): greedy suppression over score-sorted boxes, the same
arithmetic as torchvision (IoU = inter / (area_a + area_b - inter) in float for float16/
bfloat16/float32 boxes, double for float64; suppressed when IoU > threshold in double).
Slow (a Python loop over kept boxes): for tests and documentation. NaN coordinates are not
modelled (torchvision's std::max/min drop NaN where torch.maximum propagates it)."""
import torch


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    order = scores.sort(stable=True, descending=True)[1]
    b = boxes[order].to(torch.float64 if boxes.dtype == torch.float64 else torch.float32)
    x1, y1, x2, y2 = b.unbind(1)
    area = (x2 - x1) * (y2 - y1)
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2[i + 1:]) - torch.maximum(x1[i], x1[i + 1:])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[i + 1:]) - torch.maximum(y1[i], y1[i + 1:])).clamp(min=0)
        inter = w * h
        iou = inter / (area[i] + area[i + 1:] - inter)
        suppressed[i + 1:] |= iou.double() > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS per category, the kept boxes merged in decreasing score order (ties: lower index)."""
    keep = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    for c in torch.unique(idxs):
        members = torch.where(idxs == c)[0]
        keep[members[nms(boxes[members], scores[members], iou_threshold)]] = True
    kept = torch.where(keep)[0]
    return kept[scores[kept].sort(stable=True, descending=True)[1]]
