"""Training, evaluation and inference: the CLIs end to end on tiny runs, resume, torchrun (2 CPU
processes, gloo) against one process, AMP, and the evaluation metric."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import helpers

from fastseg.train.distributed import Dist
from fastseg.train.engine import Context, evaluate

pytestmark = helpers.needs_ops

# A U-Net without BN and dropout: K processes and one must then agree up to rounding.
TINY = ["--model", "unet", "--model-arg", "padding=same", "--width", "4", "--data", "synthetic",
        "--num-samples", "8", "--val-samples", "4", "--image-size", "32", "32", "--lr", "0.05"]


def run(module, *args, timeout=300, torchrun=0):
    env = dict(os.environ, PYTHONPATH=helpers.REPO_ROOT, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", module, *args]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}",
               "-m", module, *args]
    return subprocess.run(cmd, cwd=helpers.REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def records(out):
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("train") / "run")
    res = run("fastseg.train", *TINY, "--epochs", "3", "--batch-size", "4", "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


def test_cli_trains_and_writes_everything(trained):
    out, res = trained
    for name in ("metrics.json", "metrics.csv", "last.pt", "best.pt", "curves.png"):
        assert os.path.isfile(os.path.join(out, name)), name
    recs = records(out)
    assert [r["epoch"] for r in recs] == [1, 2, 3]
    for key in ("train_loss", "val_loss", "miou", "pixel_accuracy", "seconds", "images_per_second"):
        assert all(key in r for r in recs), key
    assert recs[-1]["train_loss"] < recs[0]["train_loss"]
    with open(os.path.join(out, "metrics.csv")) as f:
        assert len(f.read().strip().splitlines()) == 4
    assert "epoch 3/3" in res.stdout and "Traceback" not in res.stderr


def test_resume_continues_exactly(trained, tmp_path):
    """Stopped after epoch 2 of 3 and resumed: the same run as one that never stopped."""
    out, _ = trained
    part = str(tmp_path / "part")
    res = run("fastseg.train", *TINY, "--epochs", "3", "--stop-after", "2", "--batch-size", "4", "--out", part)
    assert res.returncode == 0, res.stderr[-3000:]
    first = records(part)
    assert [r["epoch"] for r in first] == [1, 2]
    res = run("fastseg.train", *TINY, "--epochs", "3", "--batch-size", "4", "--out", part,
              "--resume", os.path.join(part, "last.pt"))
    assert res.returncode == 0, res.stderr[-3000:]
    resumed = records(part)
    assert len(resumed) == 3 and resumed[:2] == first  # earlier records unchanged
    for a, b in zip(resumed, records(out)):
        for key in ("train_loss", "val_loss", "miou", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-12), key


def test_resume_extends_the_run(tmp_path):
    """--epochs is the total: a finished 2-epoch run resumed with --epochs 3 adds epoch 3."""
    out = str(tmp_path / "ext")
    assert run("fastseg.train", *TINY, "--epochs", "2", "--batch-size", "4", "--out", out).returncode == 0
    first = records(out)
    res = run("fastseg.train", *TINY, "--epochs", "3", "--batch-size", "4", "--out", out,
              "--resume", os.path.join(out, "last.pt"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(records(out)) == 3 and records(out)[:2] == first


def test_torchrun_two_processes_match_one(trained, tmp_path):
    out, _ = trained
    ddp = str(tmp_path / "ddp")
    res = run("fastseg.train", *TINY, "--epochs", "3", "--batch-size", "2", "--out", ddp, torchrun=2)
    assert res.returncode == 0, res.stderr[-4000:]
    assert res.stdout.count("epoch 3/3") == 1  # rank 0 alone logs
    for a, b in zip(records(ddp), records(out)):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
        assert a["miou"] == pytest.approx(b["miou"], rel=1e-3)
    # a checkpoint written by 2 processes resumes in one
    res = run("fastseg.train", *TINY, "--epochs", "4", "--batch-size", "4", "--out", ddp,
              "--resume", os.path.join(ddp, "last.pt"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["epoch"] for r in records(ddp)] == [1, 2, 3, 4]


def test_sync_bn_on_cpu_is_refused(tmp_path):
    res = run("fastseg.train", *TINY, "--epochs", "1", "--batch-size", "2", "--sync-bn", "--out", str(tmp_path / "s"),
              torchrun=2)
    assert res.returncode != 0 and "--sync-bn needs --device cuda" in res.stderr, res.stderr[-3000:]


def test_amp_bfloat16_runs(tmp_path):
    out = str(tmp_path / "amp")
    res = run("fastseg.train", "--model", "segnet", "--width", "4", "--data", "synthetic", "--num-samples", "4",
              "--val-samples", "2", "--image-size", "32", "32", "--epochs", "1", "--batch-size", "2", "--amp",
              "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    assert torch.isfinite(torch.tensor(records(out)[0]["train_loss"]))


def test_evaluate_and_predict_cli(trained, tmp_path):
    out, _ = trained
    res = run("fastseg.evaluate", "--checkpoint", os.path.join(out, "best.pt"))
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout)
    assert 0 <= result["miou"] <= 1 and "pixel_accuracy" in result
    best = max(records(out), key=lambda r: r["miou"])
    assert result["miou"] == pytest.approx(best["miou"], rel=1e-6)
    png = str(tmp_path / "pred.png")
    res = run("fastseg.predict", "--checkpoint", os.path.join(out, "last.pt"), "--input", "synthetic:1", "--out", png)
    assert res.returncode == 0, res.stderr[-3000:]
    assert os.path.getsize(png) > 0 and os.path.isfile(str(tmp_path / "pred_labels.png"))


@pytest.mark.parametrize("args,message", [
    (["--model", "nonet"], "unknown --model 'nonet'"),
    (["--data", "kitti:/x"], "unknown --data 'kitti:/x'"),
    (["--data", "voc:/does/not/exist"], "root '/does/not/exist' is not a directory"),
    (["--resume", "/does/not/exist.pt"], "checkpoint '/does/not/exist.pt' does not exist"),
    (["--model", "unet", "--image-size", "64", "64"], "nearest valid size for 64 is 188"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--model-arg", "nokey"], "--model-arg must be KEY=VALUE"),
])
def test_bad_use_gets_a_message(args, message, tmp_path):
    base = ["--model", "segnet", "--width", "4", "--num-samples", "4", "--image-size", "32", "32", "--epochs", "1",
            "--out", str(tmp_path / "x")]
    res = run("fastseg.train", *base, *args)
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert message in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]


def test_resume_into_another_model_refused(trained, tmp_path):
    out, _ = trained
    res = run("fastseg.train", "--model", "segnet", "--width", "4", "--num-samples", "8", "--image-size", "32", "32",
              "--epochs", "4", "--out", str(tmp_path / "y"), "--resume", os.path.join(out, "last.pt"))
    assert res.returncode == 2 and "the checkpoint holds unet" in res.stderr and "Traceback" not in res.stderr
    res = run("fastseg.evaluate", "--checkpoint", os.path.join(out, "metrics.json"))
    assert res.returncode == 2 and "could not be read" in res.stderr and "Traceback" not in res.stderr


class Oracle(torch.nn.Module):
    """Logits that put all mass on the ground truth (the label is encoded in the image)."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x):
        labels = (x[:, 0] * 255).round().long().clamp(0, self.num_classes - 1)
        return torch.nn.functional.one_hot(labels, self.num_classes).permute(0, 3, 1, 2).float() * 50


def test_evaluation_of_a_perfect_prediction_is_one():
    from fastseg.data import SyntheticScenes, collate

    ds = SyntheticScenes(4, (32, 32))
    batch = []
    for i in range(4):
        _, t = ds[i]
        image = (t["semantic"].clamp(max=ds.num_classes - 1).float() / 255).expand(3, 32, 32)
        batch.append((image, t))
    loader = [collate(batch[:2]), collate(batch[2:])]
    result = evaluate(Oracle(ds.num_classes), loader, Context(Dist(), ds.num_classes))
    assert result["miou"] == 1.0 and result["pixel_accuracy"] == 1.0 and result["val_loss"] < 1e-6
