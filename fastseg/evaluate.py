"""python -m fastseg.evaluate --checkpoint CKPT --data synthetic|voc:PATH|cityscapes:PATH

Evaluates a training checkpoint on the validation split, printed as JSON: for semantic networks
the data-set-level confusion matrix (mIoU, pixel accuracy, per-class IoU) and the validation loss;
for instance models (Mask R-CNN) COCO box and mask AP through pycocotools; for panoptic models
(EfficientPS) PQ, SQ and RQ. Runs under torchrun as well (the confusion matrix and the PQ counts
are summed, the detections gathered over ranks)."""
import argparse
import json
import sys

from .train import checkpoint, detection, distributed, panoptic
from .train.config import TrainConfig, UsageError
from .train.engine import Context, evaluate
from .train.fit import _loader, build_datasets, model_task


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastseg.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default=None, help="default: the data the checkpoint was trained on")
    p.add_argument("--val-samples", type=int, default=None, help="synthetic validation samples")
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--coco-panoptic", default=None, metavar="DIR",
                   help="panoptic models: also write predictions and ground truth in COCO's panoptic format to DIR "
                        "(pred/, gt/ PNGs and pred.json, gt.json: panopticapi's pq_compute input; needs Pillow)")
    args = p.parse_args(argv)
    try:
        ckpt = checkpoint.load(args.checkpoint)
        trained = ckpt.get("config", {})
        config = TrainConfig(data=args.data or trained.get("data", "synthetic"),
                             num_samples=trained.get("num_samples", 8), seed=trained.get("seed", 0),
                             val_samples=args.val_samples if args.val_samples is not None else trained.get("val_samples"),
                             image_size=tuple(args.image_size or trained.get("image_size", (128, 128))),
                             batch_size=args.batch_size, device=args.device)
        dist = distributed.init(config.device)
        try:
            _, val_set = build_datasets(config, for_training=False)
            if model_task(ckpt["model_name"]) == "panoptic":
                model = checkpoint.build_model(ckpt).to(dist.device)
                result = panoptic.evaluate(model, _loader(val_set, config, dist, shuffle=False),
                                           Context(dist, ckpt["num_classes"]), list(val_set.thing_ids),
                                           list(val_set.stuff_ids), args.coco_panoptic,
                                           getattr(val_set, "classes", None))
            elif args.coco_panoptic:
                raise UsageError("--coco-panoptic is for panoptic models (efficientps)")
            elif model_task(ckpt["model_name"]) == "instance":
                model = checkpoint.build_model(ckpt).to(dist.device)
                result = detection.evaluate(model, _loader(val_set, config, dist, shuffle=False),
                                            Context(dist, ckpt["num_classes"]), list(val_set.thing_ids))
            elif val_set.num_classes != ckpt["num_classes"]:
                raise UsageError(f"the checkpoint predicts {ckpt['num_classes']} classes, the data has "
                                 f"{val_set.num_classes}")
            else:
                model = checkpoint.build_model(ckpt).to(dist.device)
                result = evaluate(model, _loader(val_set, config, dist, shuffle=False),
                                  Context(dist, ckpt["num_classes"]))
        finally:
            distributed.shutdown()
    except UsageError as e:
        p.exit(2, f"{p.prog}: error: {e}\n")
    except ValueError as e:  # e.g. an image size the network cannot take
        p.exit(2, f"{p.prog}: error: {e}\n")
    if dist.is_main:
        print(json.dumps({"checkpoint": args.checkpoint, "data": config.data, **result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
