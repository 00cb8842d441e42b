"""Training, evaluation and inference of the instance model (Mask R-CNN) through the CLIs on tiny
runs: files and records, evaluate == the run's last record, the overlay PNG, resume, torchrun
(2 CPU processes, gloo); COCO AP through pycocotools on known answers."""
import os
import sys

import pytest
import torch

import helpers
from test_train import records, run

from fastseg.train.config import UsageError

pytestmark = helpers.needs_ops

TINY = ["--model", "maskrcnn", "--model-arg", "depth=18", "--width", "8", "--model-arg", "fpn_channels=16",
        "--model-arg", "representation_size=32", "--model-arg", "rpn_post_nms_top_n_train=100",
        "--model-arg", "box_batch_size_per_image=32", "--data", "synthetic", "--num-samples", "8",
        "--val-samples", "4", "--image-size", "64", "80", "--batch-size", "4", "--optimizer", "adamw",
        "--lr", "0.001"]

pytest.importorskip("pycocotools", reason="box and mask AP need pycocotools")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("train_instance") / "run")
    res = run("fastseg.train", *TINY, "--epochs", "2", "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


def test_cli_trains_and_writes_everything(trained):
    out, res = trained
    for name in ("metrics.json", "metrics.csv", "last.pt", "best.pt", "curves.png"):
        assert os.path.isfile(os.path.join(out, name)), name
    recs = records(out)
    assert [r["epoch"] for r in recs] == [1, 2]
    for r in recs:
        for key in ("train_loss", "loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                    "loss_rpn_box_reg"):
            assert r[key] > 0 and r[key] < 100, (key, r[key])
        for key in ("bbox_ap", "bbox_ap50", "segm_ap", "segm_ap50"):
            assert 0 <= r[key] <= 1
    assert "mask AP" in res.stdout
    ckpt = torch.load(os.path.join(out, "last.pt"), weights_only=True)
    assert ckpt["num_classes"] == 4 and ckpt["model_args"]["min_size"] == 64 and ckpt["task"] == "instance"


def test_evaluate_and_predict_cli(trained, tmp_path):
    out, _ = trained
    res = run("fastseg.evaluate", "--checkpoint", os.path.join(out, "last.pt"))
    assert res.returncode == 0, res.stderr[-3000:]
    import json
    result = json.loads(res.stdout)
    last = records(out)[-1]
    for key in ("bbox_ap", "segm_ap", "segm_ap50"):
        assert result[key] == pytest.approx(last[key], abs=1e-9), key
    png = str(tmp_path / "pred.png")
    res = run("fastseg.predict", "--checkpoint", os.path.join(out, "last.pt"), "--input", "synthetic:1",
              "--out", png, "--score-thresh", "0.0")
    assert res.returncode == 0, res.stderr[-3000:]
    from fastseg.data import read_image, read_label_map
    picture = read_image(png)
    assert picture.shape == (3, 64, 160)
    ids = read_label_map(str(tmp_path / "pred_instances.png"))
    assert ids.shape == (64, 80) and int(ids.max()) >= 1


def test_resume_extends_the_run(trained, tmp_path):
    out = str(tmp_path / "resumed")
    res = run("fastseg.train", *TINY, "--epochs", "2", "--stop-after", "1", "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run("fastseg.train", *TINY, "--epochs", "2", "--resume", os.path.join(out, "last.pt"), "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["epoch"] for r in records(out)] == [1, 2]


def test_torchrun_two_processes(tmp_path):
    out = str(tmp_path / "ddp")
    res = run("fastseg.train", *TINY, "--epochs", "1", "--batch-size", "2", "--out", out, torchrun=2)
    assert res.returncode == 0, res.stderr[-3000:]
    (r,) = records(out)
    assert 0 <= r["segm_ap"] <= 1 and r["train_loss"] > 0


def test_amp_bfloat16_runs(tmp_path):
    out = str(tmp_path / "amp")
    res = run("fastseg.train", *TINY, "--epochs", "1", "--amp", "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    (r,) = records(out)
    assert 0 < r["train_loss"] < 100 and 0 <= r["segm_ap"] <= 1


@pytest.mark.parametrize("args, message", [
    (["--data", "voc:/nonexistent"], "use --data synthetic"),
    (["--augment"], "--augment"),
])
def test_bad_use_gets_a_message(args, message, tmp_path):
    tiny = [a for a in TINY]
    res = run("fastseg.train", *tiny, *args, "--epochs", "1", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and message in res.stderr, res.stderr[-2000:]


def _instances(boxes, labels, h=40, w=50):
    masks = torch.zeros(len(boxes), h, w, dtype=torch.bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        masks[k, y1:y2, x1:x2] = True
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels), "masks": masks}


def test_coco_ap_known_answers():
    from fastseg.train.detection import coco_ap
    gt = [{"image_id": 0, "height": 40, "width": 50, **_instances([(2, 3, 20, 30), (25, 5, 45, 35)], [1, 2])},
          {"image_id": 1, "height": 40, "width": 50, **_instances([(10, 10, 30, 30)], [3])}]
    perfect = [dict(g, scores=torch.tensor([0.9] * len(g["labels"]))) for g in gt]
    assert coco_ap(gt, perfect, 4) == pytest.approx({"bbox_ap": 1.0, "bbox_ap50": 1.0, "segm_ap": 1.0,
                                                     "segm_ap50": 1.0}, abs=1e-9)
    # Every detection with the wrong class: nothing found.
    wrong = [dict(p, labels=p["labels"] % 3 + 1) for p in perfect]
    assert coco_ap(gt, wrong, 4)["segm_ap"] == 0.0
    # One of three objects found, exactly: AP over the three classes is 1/3 (two classes at 0).
    partial = [dict(perfect[0], boxes=perfect[0]["boxes"][:1], labels=perfect[0]["labels"][:1],
                    scores=perfect[0]["scores"][:1], masks=perfect[0]["masks"][:1]),
               {"image_id": 1, **{k: v[:0] for k, v in _instances([(0, 0, 1, 1)], [1]).items()},
                "scores": torch.zeros(0)}]
    assert coco_ap(gt, partial, 4)["segm_ap"] == pytest.approx(1 / 3, abs=1e-6)


def test_missing_pycocotools_gets_a_message(monkeypatch):
    from fastseg.train import detection
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(UsageError, match="pip install pycocotools"):
        detection.coco_ap([], [], 2)
