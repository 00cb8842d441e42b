"""Training, evaluation and inference of the panoptic model (EfficientPS) through the CLIs on tiny
runs: files and records, evaluate == the run's last record, the overlay PNG, resume, torchrun
(2 CPU processes, gloo), AMP."""
import json
import os

import pytest
import torch

import helpers
from test_train import records, run

pytestmark = helpers.needs_ops

TINY = ["--model", "efficientps", "--model-arg", "fpn_channels=16", "--model-arg", "semantic_channels=8",
        "--model-arg", "representation_size=32", "--model-arg", "rpn_post_nms_top_n_train=100",
        "--model-arg", "rpn_pre_nms_top_n_test=200", "--model-arg", "rpn_post_nms_top_n_test=50",
        "--model-arg", "box_batch_size_per_image=32", "--data", "synthetic", "--num-samples", "4",
        "--val-samples", "2", "--image-size", "64", "80", "--batch-size", "2", "--optimizer", "adamw",
        "--lr", "0.001"]
PQ_KEYS = ("pq", "sq", "rq", "pq_th", "pq_st")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("train_panoptic") / "run")
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
        for key in ("train_loss", "loss_semantic", "loss_classifier", "loss_objectness"):
            assert 0 < r[key] < 100, (key, r[key])
        for key in PQ_KEYS:
            assert 0 <= r[key] <= 1, (key, r[key])
    assert "PQ" in res.stdout
    ckpt = torch.load(os.path.join(out, "last.pt"), weights_only=True)
    assert ckpt["task"] == "panoptic" and ckpt["class_args"] == {"num_stuff": 5, "num_things": 3}


def test_evaluate_and_predict_cli(trained, tmp_path):
    out, _ = trained
    coco = str(tmp_path / "coco")
    res = run("fastseg.evaluate", "--checkpoint", os.path.join(out, "last.pt"), "--coco-panoptic", coco)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout)
    last = records(out)[-1]
    for key in PQ_KEYS:
        assert result[key] == pytest.approx(last[key], abs=1e-9), key
    # The COCO panoptic export read back gives the same PQ (what panopticapi's pq_compute reads).
    from fastseg.data import SyntheticScenes
    from fastseg.metrics import PanopticQuality
    from fastseg.panoptic_format import from_coco_panoptic, load_png
    metric = PanopticQuality(SyntheticScenes.thing_ids, SyntheticScenes.stuff_ids)
    docs = {kind: json.load(open(os.path.join(coco, f"{kind}.json"))) for kind in ("pred", "gt")}
    assert [a["image_id"] for a in docs["pred"]["annotations"]] == [0, 1]
    assert {c["id"]: c["isthing"] for c in docs["gt"]["categories"]} == {c: int(c >= 5) for c in range(8)}
    for pred, gt in zip(docs["pred"]["annotations"], docs["gt"]["annotations"]):
        maps = [from_coco_panoptic(load_png(os.path.join(coco, kind, a["file_name"])), a)
                for kind, a in (("pred", pred), ("gt", gt))]
        metric.update(*maps[0], *maps[1])
    assert metric.compute()["pq"] == pytest.approx(result["pq"], abs=1e-9)
    png = str(tmp_path / "pred.png")
    res = run("fastseg.predict", "--checkpoint", os.path.join(out, "last.pt"), "--input", "synthetic:1", "--out", png)
    assert res.returncode == 0, res.stderr[-3000:]
    from fastseg.data import read_image, read_label_map
    assert read_image(png).shape == (3, 64, 160)
    ids = read_label_map(str(tmp_path / "pred_panoptic.png"))
    assert ids.shape == (64, 80)


def test_resume_extends_the_run(tmp_path):
    out = str(tmp_path / "resumed")
    res = run("fastseg.train", *TINY, "--epochs", "2", "--stop-after", "1", "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run("fastseg.train", *TINY, "--epochs", "2", "--resume", os.path.join(out, "last.pt"), "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["epoch"] for r in records(out)] == [1, 2]


def test_torchrun_two_processes(tmp_path):
    out = str(tmp_path / "ddp")
    res = run("fastseg.train", *TINY, "--epochs", "1", "--batch-size", "1", "--out", out, torchrun=2)
    assert res.returncode == 0, res.stderr[-3000:]
    (r,) = records(out)
    assert 0 <= r["pq"] <= 1 and r["train_loss"] > 0


def test_amp_bfloat16_runs(tmp_path):
    out = str(tmp_path / "amp")
    res = run("fastseg.train", *TINY, "--epochs", "1", "--amp", "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    (r,) = records(out)
    assert 0 < r["train_loss"] < 100 and 0 <= r["pq"] <= 1


def test_a_tiny_training_run_improves_pq(tmp_path):
    """PQ on the validation scenes: an untrained model's against the same model after four short
    epochs (seeded, so the same numbers every run)."""
    from fastseg.data import SyntheticScenes, collate
    from fastseg.train import TrainConfig, fit
    from fastseg.train.distributed import init, shutdown
    from fastseg.train.engine import Context
    from fastseg.train.fit import _make_model
    from fastseg.train.panoptic import evaluate

    args = dict(fpn_channels=32, semantic_channels=16, representation_size=64, rpn_post_nms_top_n_train=100,
                rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=50, box_batch_size_per_image=32,
                stuff_area_threshold=16)
    config = TrainConfig(model="efficientps", model_args=dict(args), num_samples=96, val_samples=8,
                         image_size=(64, 64), epochs=4, batch_size=4, optimizer="adamw", lr=0.003,
                         out=str(tmp_path / "run"))
    val = SyntheticScenes(8, (64, 64), "val", 0)
    torch.manual_seed(config.seed)
    untrained = _make_model(config, val.num_classes, (64, 64), val)
    dist = init("cpu")
    try:
        loader = torch.utils.data.DataLoader(val, 4, collate_fn=collate)
        before = evaluate(untrained, loader, Context(dist, val.num_classes), val.thing_ids, val.stuff_ids)["pq"]
    finally:
        shutdown()
    history = fit(config)
    assert history[-1]["pq"] > before + 0.1, (before, [r["pq"] for r in history])
