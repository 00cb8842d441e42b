"""Panoptic fusion on a synthetic street scene: both fusions, their PQ against the ground truth,
and a picture (ground truth | Panoptic FPN heuristic | EfficientPS).

    python examples/panoptic_fusion.py [--out docs/panoptic_fusion.png]

The "network outputs" are made from the ground truth plus noise: semantic logits (one-hot * 3 +
smooth noise) and, per object, a jittered box with 28x28 mask logits (an ellipse + noise), plus
a few low-score false positives. Runs on the CPU in a few seconds; writing the picture needs
Pillow (`pip install pillow`).
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

import fastseg
from fastseg.metrics import PanopticQuality
from fastseg.panoptic_format import colorize_panoptic, save_png

ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR = 0, 1, 2, 8, 10, 11, 13
THINGS, NUM_CLASSES = (PERSON, CAR), 14
STUFF = tuple(c for c in range(NUM_CLASSES) if c not in THINGS)  # the scene uses 5 of them


def ground_truth(h, w, g):
    """Stuff bands plus elliptical objects; returns (panoptic, segments_info, objects)."""
    y = torch.arange(h)[:, None].expand(h, w)
    x = torch.arange(w)[None, :].expand(h, w)
    skyline = (0.3 * h + 0.08 * h * torch.sin(x / 23.0) + 0.05 * h * torch.sin(x / 7.0)).long()
    sem = torch.full((h, w), BUILDING)
    sem[y < skyline] = SKY
    sem[(y > 0.45 * h) & (x < 0.2 * w)] = VEGETATION
    sem[y > 0.62 * h] = SIDEWALK
    sem[y > 0.7 * h] = ROAD
    panoptic = torch.zeros(h, w, dtype=torch.int32)
    segments = []
    for c in (ROAD, SIDEWALK, BUILDING, VEGETATION, SKY):
        segments.append({"id": len(segments) + 1, "category_id": c, "isthing": False})
        panoptic[sem == c] = len(segments)
    objects = []
    for i in range(14):
        car = i % 3 != 0
        bw, bh = (float(torch.empty(1).uniform_(50, 110, generator=g)), 0.0) if car else (
            float(torch.empty(1).uniform_(14, 22, generator=g)), 0.0)
        bh = bw * (0.55 if car else 2.6)
        cx = float(torch.empty(1).uniform_(bw / 2, w - bw / 2, generator=g))
        bottom = float(torch.empty(1).uniform_(0.66 * h, 0.98 * h, generator=g))
        box = (cx - bw / 2, bottom - bh, cx + bw / 2, bottom)
        inside = (((x + 0.5 - cx) / (bw / 2)) ** 2 + ((y + 0.5 - (bottom - bh / 2)) / (bh / 2)) ** 2) < 1
        segments.append({"id": len(segments) + 1, "category_id": CAR if car else PERSON, "isthing": True})
        panoptic[inside] = len(segments)
        sem[inside] = CAR if car else PERSON
        objects.append((box, CAR if car else PERSON))
    return sem, panoptic, segments, objects


def network_outputs(sem, objects, g, mask_size=28):
    h, w = sem.shape
    noise = F.interpolate(torch.randn(1, NUM_CLASSES, h // 16, w // 16, generator=g), size=(h, w),
                          mode="bilinear", align_corners=False)[0]
    sem_logits = 3.0 * F.one_hot(sem, NUM_CLASSES).permute(2, 0, 1).float() + 1.0 * noise
    r = torch.linspace(-1, 1, mask_size)
    ellipse = 4 * (1 - r[None, :] ** 2 - r[:, None] ** 2)
    boxes, masks, scores, labels = [], [], [], []
    fakes = [((w * 0.5, h * 0.2, w * 0.56, h * 0.3), PERSON), ((w * 0.8, h * 0.4, w * 0.9, h * 0.5), CAR)]
    for j, (box, label) in enumerate(objects + fakes):
        jitter = torch.randn(4, generator=g) * 2.0
        boxes.append(torch.tensor(box) + jitter)
        masks.append(ellipse + 0.7 * torch.randn(mask_size, mask_size, generator=g))
        scores.append(0.4 if j >= len(objects) else float(torch.empty(1).uniform_(0.6, 0.99, generator=g)))
        labels.append(label)
    return sem_logits, torch.stack(boxes), torch.stack(masks), torch.tensor(scores), torch.tensor(labels)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join("docs", "panoptic_fusion.png"))
    p.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    h, w = args.size
    sem_gt, gt, gt_segments, objects = ground_truth(h, w, g)
    sem_logits, boxes, mask_logits, scores, labels = network_outputs(sem_gt, objects, g)

    # Panoptic FPN heuristic: a semantic label map + instance probabilities (per box here).
    heur, heur_segments = fastseg.ops.panoptic_fusion_heuristic(
        sem_logits.argmax(0), mask_logits.sigmoid(), boxes, scores, labels,
        stuff_area_threshold=256, pasted=False, thing_ids=THINGS)
    # EfficientPS: semantic logits + mask logits, fused per pixel.
    eps, eps_segments = fastseg.ops.panoptic_fusion_efficientps(
        sem_logits, mask_logits, boxes, scores, labels, stuff_ids=STUFF, stuff_area_threshold=256, pasted=False)

    for name, (pan, segs) in (("heuristic", (heur, heur_segments)), ("efficientps", (eps, eps_segments))):
        pq = PanopticQuality(thing_ids=THINGS, stuff_ids=STUFF)
        pq.update(pan, segs, gt, gt_segments)
        r = pq.compute()
        print(f"{name:12s} segments {len(segs):3d}  PQ {r['pq']:.3f}  SQ {r['sq']:.3f}  RQ {r['rq']:.3f}  "
              f"PQ_th {r['pq_th']:.3f}  PQ_st {r['pq_st']:.3f}")

    gap = np.full((h, 4, 3), 255, dtype=np.uint8)
    picture = np.concatenate([colorize_panoptic(gt, gt_segments), gap, colorize_panoptic(heur, heur_segments), gap,
                              colorize_panoptic(eps, eps_segments)], axis=1)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    save_png(args.out, picture)
    print(f"wrote {args.out} (ground truth | heuristic | EfficientPS)")


if __name__ == "__main__":
    main()
