"""EfficientPS (fastseg.models.efficientps): output shapes and the panoptic contract at odd input
sizes, the plain-PyTorch twin in float64, the fusion fed with per-box logits (no pasted K x H x W
tensor, checked by peak memory), training losses, bad input, compile and export.

A tiny configuration (B0 backbone, 32 FPN channels, few proposals) on images of ~100 pixels keeps
each test to a few seconds on two cores.
"""
import copy
import os
import subprocess
import sys

import pytest
import torch

import helpers

from fastseg import models
from fastseg import nn as fnn
from fastseg.data import SyntheticScenes
from fastseg.models.efficientps import EfficientPS, efficientps

pytestmark = helpers.needs_ops

NUM_STUFF, NUM_THINGS = len(SyntheticScenes.stuff_ids), len(SyntheticScenes.thing_ids)
TINY = dict(num_stuff=NUM_STUFF, num_things=NUM_THINGS, fpn_channels=32, semantic_channels=16,
            representation_size=64, rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=100,
            rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100, box_batch_size_per_image=64,
            box_detections_per_img=20)


def tiny(seed: int = 0, **kwargs) -> EfficientPS:
    torch.manual_seed(seed)
    return efficientps(**{**TINY, **kwargs})


def with_instances(model: EfficientPS) -> EfficientPS:
    """An untrained model made to fuse instances: every detection kept, positive mask logits."""
    model.roi_heads.score_thresh = 0.0
    model.fusion.score_threshold = 0.0
    model.fusion.stuff_area_threshold = 0
    with torch.no_grad():
        model.roi_heads.mask_predictor.mask_fcn_logits.bias.fill_(3.0)
    return model


def synthetic(n: int, size, seed: int = 0):
    ds = SyntheticScenes(n, size, seed=seed)
    pairs = [ds[i] for i in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def check_panoptic(panoptic: torch.Tensor, info, size, num_stuff: int, num_classes: int) -> None:
    """fastseg's panoptic conventions: int32 [H, W], 0 void, ids 1..S in segments_info order with
    their areas; things carry a score, stuff does not; category ids in range."""
    assert panoptic.shape == size and panoptic.dtype == torch.int32
    assert [s["id"] for s in info] == list(range(1, len(info) + 1))
    counts = torch.bincount(panoptic.flatten().long(), minlength=len(info) + 1)
    assert len(counts) == len(info) + 1, "a pixel carries an id that segments_info does not list"
    for s in info:
        assert counts[s["id"]] == s["area"] > 0
        assert 0 <= s["category_id"] < num_classes
        assert s["isthing"] == (s["category_id"] >= num_stuff) == ("score" in s)


@pytest.mark.parametrize("sizes", [[(64, 96)], [(65, 97), (33, 50)], [(100, 37)]])
def test_eval_shapes_and_panoptic_contract(sizes):
    model = with_instances(tiny()).eval()
    images = [torch.rand(3, h, w) for h, w in sizes]
    with torch.no_grad():
        results, extras = model(images, return_extras=True)
    assert len(results) == len(extras) == len(images)
    things = 0
    for (panoptic, info), extra, size in zip(results, extras, sizes):
        check_panoptic(panoptic, info, size, NUM_STUFF, NUM_STUFF + NUM_THINGS)
        assert extra["semantic_logits"].shape == (NUM_STUFF + NUM_THINGS, *size)
        k = len(extra["boxes"])
        assert extra["mask_logits"].shape == (k, 1, 28, 28)
        assert bool(((extra["labels"] >= NUM_STUFF) & (extra["labels"] < NUM_STUFF + NUM_THINGS)).all())
        things += sum(s["isthing"] for s in info)
    assert things > 0, "the test should fuse some instances"


def test_fusion_gets_per_box_logits():
    """The model hands the fusion the 28 x 28 per-box logits, never pasted image-sized masks."""
    model = with_instances(tiny()).eval()
    seen = []
    model.fusion.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[1].shape)))
    with torch.no_grad():
        model([torch.rand(3, 70, 90)])
    assert seen and seen[0][1:] == (28, 28) and seen[0][0] > 0


_PEAK = r"""
import sys, torch
from fastseg import nn as fnn
torch.manual_seed(0)
H, W, K = 512, 1024, 100
sem = torch.randn(8, H, W)
masks = torch.randn(K, 28, 28) + 1
xy = torch.rand(K, 2) * torch.tensor([W - 200.0, H - 200.0])
boxes = torch.cat([xy, xy + 150], 1)
scores, labels = torch.rand(K), torch.randint(5, 8, (K,))
fusion = fnn.PanopticFusionEfficientPS(range(5), 0.0, 0.9, 0)
fusion.reference = sys.argv[1] == "reference"
def rss(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = rss("VmRSS")
fusion(sem, masks, boxes, scores, labels)
print(rss("VmHWM") - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="peak RSS needs Linux's /proc")
def test_fusion_peak_memory_has_no_pasted_tensor():
    """100 instances on a 512 x 1024 image: a pasted [K, H, W] float tensor alone is 200 MiB. The
    plain-PyTorch reference makes it (the check can fail); fastseg's fusion must not."""
    def peak(variant):
        out = subprocess.run([sys.executable, "-c", _PEAK, variant], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip().splitlines()[-1]) / 2 ** 20
    pasted = 100 * 512 * 1024 * 4 / 2 ** 20
    assert peak("reference") > pasted
    assert peak("fastseg") < pasted / 4


def test_twin_matches_in_float64():
    model = with_instances(tiny()).eval().double()
    twin = fnn.set_reference(copy.deepcopy(model), True)
    assert twin.fusion.reference and twin.roi_heads.box_roi_pool.reference
    images = [im.double() for im in synthetic(2, (70, 90))[0]]
    with torch.no_grad():
        (a, ea), (b, eb) = model(images, return_extras=True), twin(images, return_extras=True)
    assert sum(len(info) for _, info in a) > 2
    for (pa, ia), (pb, ib), xa, xb in zip(a, b, ea, eb):
        assert torch.equal(pa, pb)
        assert ia == ib
        for key in ("semantic_logits", "boxes", "scores", "mask_logits"):
            torch.testing.assert_close(xa[key], xb[key], rtol=1e-9, atol=1e-9)
        assert torch.equal(xa["labels"], xb["labels"])


def test_training_losses_decrease_and_reach_every_parameter():
    model = tiny().train()
    images, targets = synthetic(2, (96, 128))
    assert sum(len(t["boxes"]) for t in targets) > 0
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    totals = []
    for _ in range(10):
        losses = model(images, targets)
        assert set(losses) == {"loss_semantic", "loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                               "loss_rpn_box_reg"}
        total = sum(losses.values())
        assert torch.isfinite(total)
        opt.zero_grad()
        total.backward()
        assert all(p.grad is not None for p in model.parameters())
        opt.step()
        totals.append(total.item())
    assert sum(totals[-3:]) < 0.8 * sum(totals[:3]), totals


def test_every_head_reaches_the_loss_without_things():
    model = tiny().train()
    images, targets = synthetic(1, (64, 80))
    t = dict(targets[0])
    t.update(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64),
             masks=torch.zeros(0, 64, 80, dtype=torch.bool))
    losses = model(images, [t])
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert float(losses["loss_mask"]) == 0


def test_ohem_loss_is_the_mean_of_the_hardest_quarter():
    from fastseg.losses import ohem_cross_entropy
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, :2] = 255
    pixel = torch.nn.functional.cross_entropy(logits, target, ignore_index=255, reduction="none")
    expect = []
    for i in range(2):
        kept = pixel[i][target[i] != 255].sort(descending=True).values
        expect.append(kept[:-(-len(kept) // 4)].mean())
    torch.testing.assert_close(ohem_cross_entropy(logits, target).double(), torch.stack(expect).mean().float().double(),
                               rtol=1e-6, atol=1e-6)
    # All ignored: zero, with a gradient path.
    assert float(ohem_cross_entropy(logits, torch.full_like(target, 255))) == 0
    with pytest.raises(ValueError, match="top_fraction"):
        ohem_cross_entropy(logits, target, top_fraction=0)


def test_get_model_and_bad_input():
    model = models.get_model("efficientps", **TINY)
    assert isinstance(model, EfficientPS)
    model.eval()
    with pytest.raises(TypeError, match="list of"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"images\[0\]"):
        model([torch.rand(64, 64)])
    model.train()
    images, targets = synthetic(1, (64, 64))
    with pytest.raises(ValueError, match="one target dict per image"):
        model(images)
    bad = dict(targets[0])
    del bad["semantic"]
    with pytest.raises(ValueError, match="has no 'semantic'"):
        model(images, [bad])
    bad = dict(targets[0], labels=torch.zeros(len(targets[0]["labels"]), dtype=torch.int64))
    if len(bad["labels"]):
        with pytest.raises(ValueError, match="thing class ids"):
            model(images, [bad])
    with pytest.raises(ValueError, match="num_things"):
        efficientps(num_stuff=2, num_things=0)
    with pytest.raises(ValueError, match="backbone"):
        efficientps(num_stuff=2, num_things=1, backbone="resnet50")
    with pytest.raises(TypeError, match="reference"):
        efficientps(num_stuff=2, num_things=1, reference=1)


def test_weights_round_trip(tmp_path):
    model = tiny(seed=1)
    path = tmp_path / "efficientps.pt"
    torch.save(model.state_dict(), path)
    again = tiny(seed=2, weights=str(path))
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


@helpers.needs_torchvision
def test_torchvision_efficientnet_weights_load():
    import torchvision
    source = torchvision.models.efficientnet_b0(weights=None).state_dict()
    model = tiny(backbone_weights=source)
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, source[k]), k


def test_compile_parts_fullgraph():
    model = tiny().eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        feats = model.fpn(model.backbone(x))
        parts = [(model.backbone, (x,)), (model.fpn, (model.backbone(x),)),
                 (model.semantic_head, (feats, (64, 96))), (model.rpn.head, (list(feats.values()),)),
                 (model.roi_heads.mask_head, (torch.rand(3, 32, 14, 14),))]
        for module, args in parts:
            torch._dynamo.reset()
            compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
            torch.testing.assert_close(compiled(*args), module(*args), rtol=1e-5, atol=1e-5)


def test_segments_tensor_form_matches_the_info():
    from fastseg.ops.panoptic import segments_to_info
    model = with_instances(tiny()).eval().double()  # float64: the twin rounds alike
    images = [torch.rand(3, 64, 96, dtype=torch.float64)]
    with torch.no_grad():
        (panoptic, info), = model(images)
        model.fusion.segments_format = "tensor"
        ((panoptic_t, segments),), (extra,) = model(images, return_extras=True)
        twin = fnn.set_reference(copy.deepcopy(model), True)
        (panoptic_r, segments_r), = twin(images)
    assert torch.equal(panoptic, panoptic_t) and torch.equal(panoptic, panoptic_r)
    assert segments.dtype == torch.int64 and segments.shape == (len(info), 3)
    assert torch.equal(segments, segments_r)
    assert segments_to_info(segments, extra["scores"]) == info
    with pytest.raises(ValueError, match="segments_format"):
        tiny(segments_format="dict")


def test_export_end_to_end():
    """torch.export of inference, images in, (panoptic, segments) out: detections and segments
    are data-dependent (fastseg's ops have fake kernels with dynamic output sizes); the image
    size is fixed at export time."""
    model = with_instances(tiny(segments_format="tensor")).eval()
    g = torch.Generator().manual_seed(1)
    first = [torch.rand(3, 64, 96, generator=g)]
    second = [torch.rand(3, 64, 96, generator=g) * 0.5]
    ep = torch.export.export(model, (first,), strict=False)
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    for op in ("fastseg.multi_scale_roi_align", "fastseg.batched_nms", "fastseg.panoptic_fusion_efficientps"):
        assert any(t.startswith(op) for t in targets), op
    counts = set()
    with torch.no_grad():
        for images in (first, second):
            ((pa, sa),), ((pb, sb),) = ep.module()(images), model(images)
            assert torch.equal(pa, pb) and torch.equal(sa, sb)
            counts.add(len(sb))
    assert len(counts) > 1, f"the images should give different segment counts, got {counts}"
