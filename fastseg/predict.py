"""python -m fastseg.predict --checkpoint CKPT --input IMAGE.png|synthetic:INDEX --out OUT.png

Runs a trained network on one image and writes a colour overlay of its prediction next to the
input. Semantic networks: the image blended with one colour per class, plus OUT_labels.png (the
class index per pixel). Instance models (Mask R-CNN): each detection above --score-thresh blended
in its class colour with its box outlined, plus OUT_instances.png (0 = none, k = the k-th
detection by score). Panoptic models (EfficientPS): every segment blended in its class colour,
thing segments outlined in white, plus OUT_panoptic.png (the segment id per pixel, 0 = void)."""
import argparse
import os
import sys

import torch

from .data import SyntheticScenes, read_image, write_image, write_label_map
from .train import checkpoint
from .train.config import UsageError
from .train.fit import model_task

# Colours for data sets that bring none (VOC-like: bit-interleaved palette).
def _palette(n: int):
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def overlay(image: torch.Tensor, labels: torch.Tensor, colors, alpha: float = 0.55) -> torch.Tensor:
    """float [3, H, W]: the image blended with each pixel's class colour (ignored pixels black)."""
    table = torch.tensor(list(colors) + [(0, 0, 0)] * (256 - len(colors)), dtype=torch.float32) / 255
    color = table[labels.clamp(0, 255)].permute(2, 0, 1)
    return (1 - alpha) * image + alpha * color


def instance_overlay(image: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor, colors,
                     alpha: float = 0.55) -> torch.Tensor:
    """float [3, H, W]: each bool mask [K, H, W] blended in its colour (later masks under earlier
    ones: detections come sorted by score), each box outlined in the same colour."""
    out = image.clone()
    for k in range(masks.shape[0] - 1, -1, -1):
        color = torch.tensor(colors[k], dtype=torch.float32)[:, None] / 255
        m = masks[k]
        out[:, m] = (1 - alpha) * out[:, m] + alpha * color
        h, w = image.shape[-2:]
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[k])
        x1, x2 = max(0, min(x1, w - 1)), max(0, min(x2 - 1, w - 1))
        y1, y2 = max(0, min(y1, h - 1)), max(0, min(y2 - 1, h - 1))
        out[:, y1:y2 + 1, x1] = color
        out[:, y1:y2 + 1, x2] = color
        out[:, y1, x1:x2 + 1] = color
        out[:, y2, x1:x2 + 1] = color
    return out


def panoptic_overlay(image: torch.Tensor, panoptic: torch.Tensor, segments_info, colors,
                     alpha: float = 0.55) -> torch.Tensor:
    """float [3, H, W]: each segment blended in its class colour (void left as is), the outline of
    each thing segment in white, so that touching instances of one class stay apart."""
    out = image.clone()
    for seg in segments_info:
        m = panoptic == seg["id"]
        color = torch.tensor(colors[seg["category_id"]], dtype=torch.float32)[:, None] / 255
        out[:, m] = (1 - alpha) * out[:, m] + alpha * color
    things = torch.zeros_like(panoptic)
    for seg in segments_info:
        if seg["isthing"]:
            things[panoptic == seg["id"]] = seg["id"]
    edge = torch.zeros_like(panoptic, dtype=torch.bool)
    edge[1:] |= things[1:] != things[:-1]
    edge[:, 1:] |= things[:, 1:] != things[:, :-1]
    out[:, edge] = 1.0
    return out


def _instance_outputs(model, image: torch.Tensor, device: str, score_thresh: float, colors, thing_ids):
    """(overlay, instance-id map) of an instance model's prediction."""
    det = model([image.to(device)])[0]
    keep = det["scores"] >= score_thresh
    masks = det["masks"][keep][:, 0].cpu()
    masks = masks > 0.5 if masks.dtype != torch.bool else masks
    labels = det["labels"][keep].cpu()
    class_colors = [colors[thing_ids[int(c) - 1]] if thing_ids and 0 < int(c) <= len(thing_ids)
                    else _palette(256)[int(c) % 256] for c in labels]
    ids = torch.zeros(image.shape[-2:], dtype=torch.int64)
    for k in range(masks.shape[0] - 1, -1, -1):
        ids[masks[k]] = k + 1
    return instance_overlay(image, masks, det["boxes"][keep].cpu(), class_colors), ids


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastseg.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, help="an image file, or synthetic:INDEX (a SyntheticScenes val sample)")
    p.add_argument("--out", required=True, help="output PNG (input | overlay side by side)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--score-thresh", type=float, default=0.5, help="instance models: detections drawn (default 0.5)")
    args = p.parse_args(argv)
    try:
        ckpt = checkpoint.load(args.checkpoint)
        model = checkpoint.build_model(ckpt).to(args.device).eval()
        trained = ckpt.get("config", {})
        colors = SyntheticScenes.colors if trained.get("data", "synthetic") == "synthetic" else _palette(256)
        if args.input.startswith("synthetic:"):
            try:
                index = int(args.input.split(":", 1)[1])
            except ValueError:
                raise UsageError(f"--input {args.input!r}: synthetic:INDEX needs an integer index") from None
            data = SyntheticScenes(index + 1, tuple(trained.get("image_size", (128, 128))), "val", trained.get("seed", 0))
            image = data[index][0]
        else:
            if not os.path.isfile(args.input):
                raise UsageError(f"--input {args.input!r} does not exist")
            image = read_image(args.input)
        if model_task(ckpt["model_name"]) == "panoptic":
            with torch.no_grad():
                panoptic, info = model([image.to(args.device)])[0]
            panoptic = panoptic.cpu()
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            write_image(args.out, torch.cat([image, panoptic_overlay(image, panoptic, info, colors)], dim=2))
            stem, _ = os.path.splitext(args.out)
            write_label_map(stem + "_panoptic.png", panoptic.clamp(max=255))
            things = sum(s["isthing"] for s in info)
            print(f"wrote {args.out} and {stem}_panoptic.png ({len(info)} segments, {things} things)")
            return 0
        if model_task(ckpt["model_name"]) == "instance":
            with torch.no_grad():
                picture, ids = _instance_outputs(model, image, args.device, args.score_thresh, colors,
                                                 list(SyntheticScenes.thing_ids))
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            write_image(args.out, torch.cat([image, picture], dim=2))
            stem, _ = os.path.splitext(args.out)
            write_label_map(stem + "_instances.png", ids.clamp(max=255))
            print(f"wrote {args.out} and {stem}_instances.png ({int(ids.max())} instances)")
            return 0
        with torch.no_grad():
            logits = model(image[None].to(args.device))[0]
        labels = logits.argmax(0).cpu()
        if labels.shape != image.shape[-2:]:  # U-Net (valid): the prediction covers the centre
            h, w = labels.shape
            top, left = (image.shape[-2] - h) // 2, (image.shape[-1] - w) // 2
            image = image[:, top:top + h, left:left + w]
    except (UsageError, ValueError) as e:
        p.exit(2, f"{p.prog}: error: {e}\n")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_image(args.out, torch.cat([image, overlay(image, labels, colors)], dim=2))
    stem, _ = os.path.splitext(args.out)
    write_label_map(stem + "_labels.png", labels)
    print(f"wrote {args.out} and {stem}_labels.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
