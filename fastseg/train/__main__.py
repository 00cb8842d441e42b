"""python -m fastseg.train --model segnet --data synthetic --epochs 10 --out runs/segnet
(under torchrun: torchrun --nproc_per_node=K -m fastseg.train ...)."""
import argparse
import sys

from .config import TrainConfig, UsageError, parse_data_spec, parse_model_arg


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fastseg.train", description=__doc__.split("\n")[0])
    d = TrainConfig()
    p.add_argument("--model", default=d.model, help="a fastseg.models.list_models() name (default %(default)s)")
    p.add_argument("--width", type=int, default=None, help="the model's first-stage channels (paper: 64)")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="another builder keyword, e.g. padding=same or batch_norm=true (repeatable)")
    p.add_argument("--data", default=d.data, help="synthetic | voc:PATH | cityscapes:PATH (default %(default)s)")
    p.add_argument("--num-samples", type=int, default=d.num_samples, help="synthetic training samples")
    p.add_argument("--val-samples", type=int, default=None, help="synthetic validation samples (num_samples/4)")
    p.add_argument("--image-size", type=int, nargs=2, default=d.image_size, metavar=("H", "W"),
                   help="synthetic image size; training crop for folders")
    p.add_argument("--epochs", type=int, default=d.epochs, help="total epochs (a resumed run continues to it)")
    p.add_argument("--stop-after", type=int, default=None, metavar="K",
                   help="stop after epoch K (the learning-rate schedule still spans --epochs); --resume continues")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per process")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default=d.optimizer)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--amp", action="store_true", help="autocast: bfloat16 on CPU, float16 (or --amp-dtype) on CUDA")
    p.add_argument("--amp-dtype", choices=("bfloat16", "float16"), default=None)
    p.add_argument("--workers", type=int, default=d.workers, help="DataLoader worker processes")
    p.add_argument("--out", default=d.out, help="output directory (default %(default)s)")
    p.add_argument("--resume", default=None, metavar="CKPT", help="continue from a last.pt")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=("cpu", "cuda"), default=d.device)
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes (DDP)")
    aug = p.add_mutually_exclusive_group()
    aug.add_argument("--augment", dest="augment", action="store_true", default=None,
                     help="random scale / crop / flip (default: on for folders, off for synthetic)")
    aug.add_argument("--no-augment", dest="augment", action="store_false")
    return p


def config_from_args(args) -> TrainConfig:
    parse_data_spec(args.data)
    model_args = dict(parse_model_arg(a) for a in args.model_arg)
    if args.width is not None:
        model_args["width"] = args.width
    for name in ("num_samples", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.lr <= 0:
        raise UsageError(f"--lr must be > 0, got {args.lr}")
    return TrainConfig(model=args.model, model_args=model_args, data=args.data, num_samples=args.num_samples,
                       val_samples=args.val_samples, image_size=tuple(args.image_size), epochs=args.epochs,
                       stop_after=args.stop_after, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                       weight_decay=args.weight_decay, amp=args.amp, amp_dtype=args.amp_dtype, workers=args.workers,
                       out=args.out, resume=args.resume, seed=args.seed, device=args.device, sync_bn=args.sync_bn,
                       augment=args.augment)


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        from .fit import fit

        fit(config_from_args(args))
    except UsageError as e:
        p.exit(2, f"{p.prog}: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
