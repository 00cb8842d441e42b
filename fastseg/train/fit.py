"""`fit(config)`: the whole training run (what `python -m fastseg.train` calls), single-process or
under torchrun (DDP). Rank 0 alone logs and writes DIR/metrics.json, metrics.csv, last.pt,
best.pt and curves.png.

Three tasks: semantic networks (`model(x) -> logits`, scored by mIoU), instance segmentation
models (task "instance": Mask R-CNN's contract, scored by COCO mask AP through pycocotools) and
panoptic models (task "panoptic": EfficientPS, scored by PQ); the last two train on
SyntheticScenes' instance and panoptic targets."""
import csv
import json
import math
import os
import sys
from typing import Dict, List, Tuple

import torch
from torch.utils.data import DataLoader, DistributedSampler

from .. import models
from ..data import SegmentationFolder, SyntheticScenes, collate
from ..data.transforms import train_transforms
from . import checkpoint, detection, distributed, panoptic
from .config import TrainConfig, UsageError, parse_data_spec
from .engine import Context, evaluate, train_one_epoch

RECORD_KEYS = {
    "semantic": ("epoch", "train_loss", "val_loss", "miou", "pixel_accuracy", "seconds", "images_per_second", "lr"),
    "instance": ("epoch", "train_loss", *detection.LOSS_KEYS, "bbox_ap", "bbox_ap50", "segm_ap", "segm_ap50",
                 "seconds", "images_per_second", "lr"),
}
RECORD_KEYS["panoptic"] = ("epoch", "train_loss", *panoptic.LOSS_KEYS, "pq", "sq", "rq", "pq_th", "pq_st", "seconds",
                            "images_per_second", "lr")
SCORE_KEY = {"semantic": "miou", "instance": "segm_ap", "panoptic": "pq"}  # what best.pt is chosen by


def build_datasets(config: TrainConfig, for_training: bool = True) -> Tuple[torch.utils.data.Dataset, ...]:
    """(train, val) data sets named by `config.data`."""
    kind, path = parse_data_spec(config.data)
    if kind == "synthetic":
        val_n = config.val_samples if config.val_samples is not None else max(8, config.num_samples // 4)
        train = SyntheticScenes(config.num_samples, tuple(config.image_size), "train", config.seed)
        if config.augment:
            train = _Transformed(train, train_transforms(tuple(config.image_size), 0.75, 1.25))
        return train, SyntheticScenes(val_n, tuple(config.image_size), "val", config.seed)
    augment = config.augment if config.augment is not None else True
    try:
        train = SegmentationFolder(path, kind, "train", train_transforms(tuple(config.image_size)) if augment else None) \
            if for_training else None
        val = SegmentationFolder(path, kind, "val")
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    return train, val


class _Transformed(torch.utils.data.Dataset):
    def __init__(self, base, transforms):
        self.base, self.transforms = base, transforms
        for attr in ("num_classes", "classes", "colors"):
            if hasattr(base, attr):
                setattr(self, attr, getattr(base, attr))

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        return self.transforms(*self.base[i])


class ShardSampler(torch.utils.data.Sampler):
    """Evaluation: rank r takes samples r, r + K, r + 2K, ... (no padding with repeated samples,
    unlike DistributedSampler, so the summed confusion matrix counts every sample once)."""

    def __init__(self, n: int, dist: distributed.Dist):
        self.indices = list(range(dist.rank, n, dist.world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def _loader(dataset, config: TrainConfig, dist: distributed.Dist, shuffle: bool) -> DataLoader:
    """Training (shuffle): DistributedSampler (the same permutation on every rank, seed + epoch;
    rank r takes every K-th sample), full batches only. Evaluation: every sample once."""
    if shuffle:
        sampler = DistributedSampler(dataset, dist.world_size, dist.rank, shuffle=True, seed=config.seed,
                                     drop_last=True)
    else:
        sampler = ShardSampler(len(dataset), dist)
    return DataLoader(dataset, config.batch_size, sampler=sampler, num_workers=config.workers, collate_fn=collate,
                      drop_last=shuffle, persistent_workers=config.workers > 0)


def _amp_dtype(config: TrainConfig, device: torch.device):
    if not config.amp:
        return None
    name = config.amp_dtype or ("bfloat16" if device.type == "cpu" else "float16")
    if name not in ("bfloat16", "float16") or (device.type == "cpu" and name != "bfloat16"):
        raise UsageError(f"--amp-dtype {name} is not available on {device.type} (cpu: bfloat16; cuda: float16 or bfloat16)")
    return getattr(torch, name)


def model_task(name: str) -> str:
    """"instance" for the detection models (Mask R-CNN), "panoptic" for EfficientPS, else
    "semantic"."""
    if name.startswith("maskrcnn"):
        return "instance"
    return "panoptic" if name.startswith("efficientps") else "semantic"


def model_kwargs(name: str, num_classes: int, data) -> Dict:
    """The builder's class arguments: `num_classes`, or for a panoptic model `num_stuff` and
    `num_things` of the data set (classes numbered stuff first)."""
    if model_task(name) != "panoptic":
        return {"num_classes": num_classes}
    return {"num_stuff": len(data.stuff_ids), "num_things": len(data.thing_ids)}


def _make_model(config: TrainConfig, num_classes: int, image_size, data=SyntheticScenes):
    if config.model not in models.list_models():
        raise UsageError(f"unknown --model {config.model!r}; available: {', '.join(models.list_models())}")
    try:
        model = models.get_model(config.model, **model_kwargs(config.model, num_classes, data), **config.model_args)
    except TypeError as e:
        raise UsageError(f"--model {config.model}: {e}") from None
    except ValueError as e:
        raise UsageError(str(e)) from None
    with torch.no_grad():  # the geometry check: can this network take this image size?
        try:
            if model_task(config.model) != "semantic":
                model.eval()([torch.zeros(3, *image_size)])
            else:
                model.eval()(torch.zeros(1, 3, *image_size))
        except ValueError as e:
            raise UsageError(f"--image-size {image_size[0]} {image_size[1]}: {e}") from None
    return model


def _check_instance_config(config: TrainConfig) -> None:
    if parse_data_spec(config.data)[0] != "synthetic":
        raise UsageError(f"--model {config.model} trains on instance targets: use --data synthetic")
    if config.augment:
        raise UsageError(f"--augment transforms semantic targets only; it is not available for --model {config.model}")


def _instance_setup(config: TrainConfig, train_set) -> Tuple[int, List[int]]:
    """(num_classes incl. background, thing ids) for an instance model; the detector trains and
    predicts at the data's size unless --model-arg min_size/max_size say otherwise (torchvision's
    800 / 1333 would upsample 128-pixel images six times)."""
    h, w = config.image_size
    config.model_args.setdefault("min_size", min(h, w))
    config.model_args.setdefault("max_size", max(h, w))
    thing_ids = list(train_set.thing_ids)
    return len(thing_ids) + 1, thing_ids


def _optimizer(config: TrainConfig, model):
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    raise UsageError(f"unknown --optimizer {config.optimizer!r}: sgd or adamw")


def write_records(out: str, history: List[Dict], task: str = "semantic") -> None:
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(history, f, indent=1)
    with open(os.path.join(out, "metrics.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RECORD_KEYS[task], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


def plot_curves(out: str, history: List[Dict], task: str = "semantic") -> bool:
    """DIR/curves.png (loss and mIoU, or loss and AP, per epoch); False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    if task in ("instance", "panoptic"):
        a.plot(epochs, [r["train_loss"] for r in history], "o-", label="train (sum of the losses)")
        a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend(), a.grid(alpha=0.3)
        curves = ((("segm_ap", "mask AP"), ("bbox_ap", "box AP"), ("segm_ap50", "mask AP50")) if task == "instance"
                  else (("pq", "PQ"), ("pq_th", "PQ things"), ("pq_st", "PQ stuff")))
        for key, label in curves:
            b.plot(epochs, [r[key] for r in history], "o-", label=label)
        b.set_xlabel("epoch"), b.set_ylabel("val AP (COCO)" if task == "instance" else "val PQ"), b.set_ylim(0, 1)
        b.legend(), b.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "curves.png"), dpi=110)
        plt.close(fig)
        return True
    a.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    a.plot(epochs, [r["val_loss"] for r in history], "o-", label="val")
    a.set_xlabel("epoch"), a.set_ylabel("cross entropy"), a.legend(), a.grid(alpha=0.3)
    b.plot(epochs, [r["miou"] for r in history], "o-", color="tab:green")
    b.set_xlabel("epoch"), b.set_ylabel("val mIoU"), b.set_ylim(0, 1), b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=110)
    plt.close(fig)
    return True


def fit(config: TrainConfig) -> List[Dict]:
    """Trains `config.model` on `config.data` to `config.epochs` (the total, also when resuming);
    returns the per-epoch records (every rank returns the same)."""
    dist = distributed.init(config.device)
    try:
        return _fit(config, dist)
    finally:
        distributed.shutdown()


def _fit(config: TrainConfig, dist: distributed.Dist) -> List[Dict]:
    torch.manual_seed(config.seed)
    task = model_task(config.model)
    if task != "semantic":
        _check_instance_config(config)
    train_set, val_set = build_datasets(config)
    num_classes, thing_ids = train_set.num_classes, None
    if task == "instance":
        config.model_args = dict(config.model_args)
        num_classes, thing_ids = _instance_setup(config, train_set)
    model = _make_model(config, num_classes, tuple(config.image_size), train_set)
    ckpt = None
    if config.resume:
        ckpt = checkpoint.load(config.resume)
        if (ckpt["model_name"], ckpt["model_args"], ckpt["num_classes"]) != (config.model, config.model_args,
                                                                             num_classes):
            raise UsageError(f"--resume {config.resume}: the checkpoint holds {ckpt['model_name']} "
                             f"{ckpt['model_args']} with {ckpt['num_classes']} classes, not {config.model} "
                             f"{config.model_args} with {num_classes}")
        model.load_state_dict(ckpt["model"])
    if config.sync_bn and dist.enabled:
        if dist.device.type != "cuda":  # PyTorch's SyncBatchNorm raises mid-step on CPU tensors
            raise UsageError("--sync-bn needs --device cuda: PyTorch's SyncBatchNorm runs on GPUs only; on the CPU "
                             "use a model without BN or a larger per-process batch")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(dist.device)
    net = torch.nn.parallel.DistributedDataParallel(model) if dist.enabled else model
    train_loader = _loader(train_set, config, dist, shuffle=True)
    val_loader = _loader(val_set, config, dist, shuffle=False)
    if len(train_loader) == 0:
        raise UsageError(f"no full batch: {len(train_set)} training samples over {dist.world_size} process(es) with "
                         f"--batch-size {config.batch_size}")
    optimizer = _optimizer(config, model)
    total_iters = max(1, config.epochs * len(train_loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: (1 - min(it, total_iters) / total_iters) ** 0.9)
    amp_dtype = _amp_dtype(config, dist.device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    history: List[Dict] = []
    start_epoch, best = 0, -math.inf
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        history, start_epoch = list(ckpt["history"]), int(ckpt["epoch"])
        best = float(ckpt.get("best_score", ckpt.get("best_miou")))
        checkpoint.set_rng_state(ckpt["rng"])
    ctx = Context(dist, num_classes, amp_dtype, progress=dist.is_main and sys.stderr.isatty())
    if dist.is_main:
        os.makedirs(config.out, exist_ok=True)
    last = config.epochs if config.stop_after is None else min(config.epochs, config.stop_after)
    for epoch in range(start_epoch + 1, last + 1):
        train_loader.sampler.set_epoch(epoch)
        if task == "instance":
            stats = detection.train_one_epoch(net, train_loader, optimizer, scheduler, scaler, ctx, epoch, thing_ids)
            val = detection.evaluate(model, val_loader, ctx, thing_ids)
        elif task == "panoptic":
            stats = panoptic.train_one_epoch(net, train_loader, optimizer, scheduler, scaler, ctx, epoch)
            val = panoptic.evaluate(model, val_loader, ctx, train_set.thing_ids, train_set.stuff_ids)
        else:
            stats = train_one_epoch(net, train_loader, optimizer, scheduler, scaler, ctx, epoch)
            val = evaluate(net, val_loader, ctx)
        record = {"epoch": epoch, **{k: v for k, v in stats.items() if k not in ("seconds", "images")}, **val,
                  "seconds": round(stats["seconds"], 3),
                  "images_per_second": round(stats["images"] / stats["seconds"], 3),
                  "lr": optimizer.param_groups[0]["lr"]}
        score = record[SCORE_KEY[task]]
        history.append(record)
        if dist.is_main:
            if task == "instance":
                scores = (f"box AP {record['bbox_ap']:.4f}, mask AP {record['segm_ap']:.4f}, "
                          f"mask AP50 {record['segm_ap50']:.4f}")
            elif task == "panoptic":
                scores = (f"PQ {record['pq']:.4f} (things {record['pq_th']:.4f}, stuff {record['pq_st']:.4f}), "
                          f"SQ {record['sq']:.4f}, RQ {record['rq']:.4f}")
            else:
                scores = (f"val loss {record['val_loss']:.4f}, mIoU {record['miou']:.4f}, "
                          f"pixel acc {record['pixel_accuracy']:.4f}")
            print(f"epoch {epoch}/{config.epochs}: train loss {record['train_loss']:.4f}, {scores}, "
                  f"{record['seconds']:.1f} s ({record['images_per_second']:.1f} img/s)", flush=True)
            payload = {"model": (model.module if hasattr(model, "module") else model).state_dict(),
                       "model_name": config.model, "model_args": config.model_args, "num_classes": num_classes,
                       "class_args": model_kwargs(config.model, num_classes, train_set),
                       "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                       "scaler": scaler.state_dict() if scaler is not None else None, "epoch": epoch,
                       "rng": checkpoint.rng_state(), "history": history, "config": config.to_dict(),
                       "best_score": max(best, score), "score_key": SCORE_KEY[task], "task": task,
                       "classes": list(getattr(train_set, "classes", []))}
            checkpoint.save(os.path.join(config.out, "last.pt"), payload)
            if score > best:
                checkpoint.save(os.path.join(config.out, "best.pt"), payload)
            write_records(config.out, history, task)
            plot_curves(config.out, history, task)
        best = max(best, score)
        distributed.barrier()
    return history
