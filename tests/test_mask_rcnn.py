"""Mask R-CNN (fastseg.models.mask_rcnn) against torchvision's on the same weights: state dicts
(both BN layouts, current and legacy key spellings), eval detections and masks, train-mode
losses; the plain-PyTorch twin; mask formats; training steps of the tiny variant; bad input.

Images are small (short side 160-224) so that ResNet-50 runs in about a second on two cores.
"""
import re

import pytest
import torch

import helpers
from helpers import needs_torchvision

from fastseg import models
from fastseg.data import SyntheticScenes
from fastseg.models.backbones.resnet import FrozenBatchNorm2d
from fastseg.models.mask_rcnn import maskrcnn_resnet50_fpn, maskrcnn_resnet_fpn

pytestmark = helpers.needs_ops

# The tiny variant the training tests use.
TINY = dict(depth=18, width=16, fpn_channels=32, representation_size=64, min_size=128, max_size=192,
            rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=100, rpn_pre_nms_top_n_train=300,
            rpn_post_nms_top_n_train=150, box_batch_size_per_image=64)


def torchvision_model(depth: int, seed: int = 0, frozen: bool = True, calibrated: bool = False, **kwargs):
    """torchvision's MaskRCNN on a ResNet-`depth` FPN backbone with random weights, in eval mode.

    Normalisation statistics: random (calibrated=False: activations grow to ~1e3 through the
    blocks, which amplifies float rounding differences ~100x: for comparisons of identical
    arithmetic), or measured on random images (calibrated=True: unit-scale activations as in a
    trained network such as torchvision's COCO checkpoint: for comparisons that allow rounding
    differences, e.g. fastseg's folded batch norms)."""
    import torchvision
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.misc import FrozenBatchNorm2d as TVFrozen

    torch.manual_seed(seed)
    resnet = getattr(torchvision.models, f"resnet{depth}")
    body = resnet(weights=None, norm_layer=TVFrozen if frozen else None)
    if calibrated:
        probe = resnet(weights=None).train()
        for m in probe.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # the running statistics become the average over the probes
        with torch.no_grad():
            for _ in range(2):
                probe(torch.rand(2, 3, 160, 224))
        body.load_state_dict(probe.state_dict())
    else:
        with torch.no_grad():
            for m in body.modules():
                if isinstance(m, (TVFrozen, torch.nn.BatchNorm2d)):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.1, 0.1)
    return MaskRCNN(_resnet_fpn_extractor(body, 5), **kwargs).eval()


def legacy_spelling(state_dict):
    """The key names of torchvision's original COCO checkpoint."""
    out = {}
    for k, v in state_dict.items():
        k = re.sub(r"fpn\.(inner|layer)_blocks\.(\d)\.0\.", r"fpn.\1_blocks.\2.", k)
        k = k.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        k = re.sub(r"mask_head\.(\d)\.0\.", lambda m: f"mask_head.mask_fcn{int(m.group(1)) + 1}.", k)
        out[k] = v
    return out


def assert_same_detections(ours, theirs, box_tol=0.05, score_tol=1e-4, mask_tol=1e-3):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert set(a) == set(b) == {"boxes", "labels", "scores", "masks"}, f"image {i}: keys {set(a)}"
        assert a["boxes"].shape == b["boxes"].shape, f"image {i}: {len(a['boxes'])} vs {len(b['boxes'])} detections"
        assert torch.equal(a["labels"], b["labels"]), f"image {i}: labels differ"
        assert a["masks"].shape == b["masks"].shape and a["masks"].dtype == b["masks"].dtype
        if len(a["boxes"]) == 0:
            continue
        assert (a["boxes"] - b["boxes"]).abs().max() <= box_tol
        assert (a["scores"] - b["scores"]).abs().max() <= score_tol
        assert (a["masks"] - b["masks"]).abs().mean() <= mask_tol


@needs_torchvision
@pytest.mark.parametrize("frozen", [True, False], ids=["frozen_bn_layout", "bn_layout"])
@pytest.mark.parametrize("spelling", ["current", "legacy"])
def test_torchvision_state_dict_loads_strict(frozen, spelling):
    import torchvision
    if frozen:
        tv = torchvision_model(50, num_classes=91)
    else:  # torchvision's builder without weights: plain BatchNorm2d, num_batches_tracked included
        tv = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    sd = tv.state_dict()
    assert any(k.endswith("num_batches_tracked") for k in sd) != frozen
    given = legacy_spelling(sd) if spelling == "legacy" else dict(sd)
    for norm in (FrozenBatchNorm2d, torch.nn.BatchNorm2d):
        ours = maskrcnn_resnet50_fpn(weights=dict(given), norm_layer=norm)
        loaded = ours.state_dict()
        for k, v in sd.items():
            if k in loaded:
                assert torch.equal(loaded[k], v), k
            else:
                assert k.endswith("num_batches_tracked") and norm is FrozenBatchNorm2d, f"{k} not in fastseg's model"


@needs_torchvision
def test_state_dict_keys_match_torchvision():
    import torchvision
    tv = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    ours = maskrcnn_resnet50_fpn(norm_layer=torch.nn.BatchNorm2d)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in tv.state_dict().items()]


def test_weights_from_path(tmp_path):
    src = maskrcnn_resnet_fpn(num_classes=3, **TINY)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    dst = maskrcnn_resnet_fpn(num_classes=3, weights=str(tmp_path / "w.pt"), norm_layer=torch.nn.BatchNorm2d, **TINY)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    with pytest.raises(RuntimeError, match="size mismatch"):
        maskrcnn_resnet_fpn(num_classes=4, weights=str(tmp_path / "w.pt"), **TINY)


EVAL_CASES = {
    "one_image": [(200, 260)],
    "two_sizes": [(180, 150), (240, 200)],
    "portrait_odd": [(231, 97)],
}


@needs_torchvision
@pytest.mark.parametrize("case", list(EVAL_CASES))
def test_eval_matches_torchvision(case):
    kw = dict(num_classes=5, min_size=224, max_size=320)
    tv = torchvision_model(50, seed=1, **kw)
    ours = maskrcnn_resnet50_fpn(weights=tv.state_dict(), **kw).eval()
    g = torch.Generator().manual_seed(len(case))
    images = [torch.rand(3, h, w, generator=g) for h, w in EVAL_CASES[case]]
    with torch.no_grad():
        theirs, mine = tv(images), ours(images)
    assert all(len(r["boxes"]) > 0 for r in theirs), "the case must produce detections to compare"
    assert_same_detections(mine, theirs)


@needs_torchvision
def test_fast_backbone_is_close_to_torchvision():
    """fast_backbone=True (folded batch norms, channels-last) changes float rounding only: on
    weights with trained-like (unit-scale) activations the detections agree to rounding."""
    kw = dict(num_classes=3, min_size=224, max_size=320, box_score_thresh=0.3)
    tv = torchvision_model(50, seed=1, calibrated=True, **kw)
    ours = maskrcnn_resnet50_fpn(weights=tv.state_dict(), fast_backbone=True, **kw).eval()
    assert ours.backbone.body.fold_bn and ours.backbone.body.channels_last
    g = torch.Generator().manual_seed(5)
    images = [torch.rand(3, 180, 150, generator=g), torch.rand(3, 240, 200, generator=g)]
    with torch.no_grad():
        feats_tv = tv.backbone(tv.transform(images)[0].tensors)
        feats = ours.backbone(tv.transform(images)[0].tensors)
    for k in feats_tv:
        assert (feats[k] - feats_tv[k]).abs().max() <= 1e-4 * feats_tv[k].abs().max(), k


@needs_torchvision
def test_eval_no_detection_matches_torchvision():
    kw = dict(num_classes=5, min_size=160, max_size=256, box_score_thresh=0.99)
    tv = torchvision_model(50, seed=2, **kw)
    ours = maskrcnn_resnet50_fpn(weights=tv.state_dict(), **kw).eval()
    images = [torch.rand(3, 150, 170), torch.zeros(3, 120, 200)]
    with torch.no_grad():
        theirs, mine = tv(images), ours(images)
    assert len(theirs[0]["boxes"]) == 0, "the case needs an image without detections"
    assert mine[0]["masks"].shape == (0, 1, 150, 170) and mine[0]["boxes"].shape == (0, 4)
    assert_same_detections(mine, theirs)


@needs_torchvision
def test_train_losses_equal_torchvision():
    """Same weights, same RNG seed: the same anchors and proposals are sampled, so every loss
    agrees (legacy key spelling loaded on the way)."""
    kw = dict(num_classes=4, min_size=160, max_size=256)
    tv = torchvision_model(18, seed=3, **kw)
    ours = maskrcnn_resnet_fpn(depth=18, weights=legacy_spelling(tv.state_dict()), **kw)
    images, targets = synthetic_batch(2, (150, 200))
    # Noise breaks the ties of flat image regions: equal objectness scores, which the two NMS
    # implementations order differently (fastseg: lower index first; torchvision: unspecified).
    g = torch.Generator().manual_seed(0)
    images = [im + 0.05 * torch.rand(im.shape, generator=g) for im in images]
    targets[1] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                  "masks": torch.zeros(0, 150, 200, dtype=torch.uint8)}  # an image without objects
    tv.train()
    ours.train()
    torch.manual_seed(7)
    theirs = tv(images, targets)
    torch.manual_seed(7)
    mine = ours(images, targets)
    assert list(mine) == list(theirs)
    for k in theirs:
        torch.testing.assert_close(mine[k], theirs[k], rtol=1e-5, atol=1e-6, msg=k)


def synthetic_batch(n, size, seed=0):
    """Images and Mask R-CNN targets from SyntheticScenes (thing classes renumbered 1..3)."""
    ds = SyntheticScenes(n, size, seed=seed)
    first = min(ds.thing_ids)
    images, targets = [], []
    for i in range(n):
        image, t = ds[i]
        images.append(image)
        targets.append({"boxes": t["boxes"], "labels": t["labels"] - first + 1, "masks": t["masks"].to(torch.uint8)})
    return images, targets


def test_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = maskrcnn_resnet_fpn(num_classes=4, **TINY).train()
    images, targets = synthetic_batch(2, (96, 128))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    totals = []
    for _ in range(12):
        losses = model(images, targets)
        assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
        total = sum(losses.values())
        assert torch.isfinite(total)
        opt.zero_grad()
        total.backward()
        # Every head reaches the loss (DDP needs no find_unused_parameters).
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
        opt.step()
        totals.append(total.item())
    assert sum(totals[-3:]) < 0.8 * sum(totals[:3]), totals


def test_every_head_reaches_the_loss_without_objects():
    model = maskrcnn_resnet_fpn(num_classes=4, **TINY).train()
    images = [torch.rand(3, 90, 110)]
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                "masks": torch.zeros(0, 90, 110, dtype=torch.uint8)}]
    total = sum(model(images, targets).values())
    total.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_twin_matches():
    """reference=True: the same model whose RoIAlign, NMS and paste run in plain PyTorch."""
    torch.manual_seed(0)
    ours = maskrcnn_resnet_fpn(num_classes=4, **TINY, box_score_thresh=0.2).eval()
    twin = maskrcnn_resnet_fpn(num_classes=4, **TINY, box_score_thresh=0.2, reference=True).eval()
    twin.load_state_dict(ours.state_dict())
    images = [torch.rand(3, 100, 130), torch.rand(3, 120, 90)]
    with torch.no_grad():
        a, b = ours(images), twin(images)
    assert sum(len(r["boxes"]) for r in a) > 0
    assert_same_detections(a, b, box_tol=1e-4, score_tol=1e-5, mask_tol=1e-5)


def test_eval_on_cpu_reuses_pooled_memory_and_training_does_not():
    """Eval forwards on CPU run inside fastseg.memory.cpu_pool(): the second call's feature maps
    reuse the first call's blocks, with equal results; a training forward does not pool, nor does
    a model built with cpu_pool=False."""
    from fastseg import memory
    torch.manual_seed(0)
    model = maskrcnn_resnet_fpn(num_classes=4, **dict(TINY, min_size=320, max_size=480), box_score_thresh=0.2)
    images = [torch.rand(3, 300, 420)]
    with torch.no_grad():
        first = model.eval()(images)
        before = memory.cpu_pool_stats()
        second = model(images)
        used = memory.cpu_pool_stats()
    assert used["hits"] > before["hits"] and sum(len(r["boxes"]) for r in first) > 0
    assert_same_detections(second, first, box_tol=0, score_tol=0, mask_tol=0)
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 200.0, 220.0]]), "labels": torch.tensor([1]),
                "masks": torch.ones(1, 300, 420, dtype=torch.uint8)}]
    model.train()(images, targets)
    model.eval().cpu_pool = False  # the model's own switch
    with torch.no_grad():
        model(images)
    after = memory.cpu_pool_stats()
    assert (after["hits"], after["misses"]) == (used["hits"], used["misses"])


def test_mask_formats():
    torch.manual_seed(0)
    model = maskrcnn_resnet_fpn(num_classes=4, **TINY, box_score_thresh=0.2).eval()
    images = [torch.rand(3, 100, 130)]
    with torch.no_grad():
        floats = model(images)[0]
        model.mask_format = "per_box"
        per_box = model(images)[0]
        model.mask_format = "bool"
        bools = model(images)[0]
    n = len(floats["boxes"])
    assert n > 0
    assert floats["masks"].shape == (n, 1, 100, 130) and floats["masks"].dtype == torch.float32
    assert per_box["masks"].shape == (n, 1, 28, 28) and per_box["masks"].min() >= 0
    assert bools["masks"].shape == (n, 1, 100, 130) and bools["masks"].dtype == torch.bool
    # Two pastes (torchvision's integer-box resize, detectron2's sub-pixel sampling) of the same
    # probabilities: the same masks up to border pixels.
    differ = (bools["masks"] != (floats["masks"] > 0.5)).float().mean()
    assert differ < 0.02, differ


def test_get_model_and_bad_input():
    model = models.get_model("maskrcnn", num_classes=3, **TINY)
    assert isinstance(model, models.MaskRCNN)
    model.eval()
    with pytest.raises(TypeError, match="list of"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"images\[0\] must be a float"):
        model([torch.rand(64, 64)])
    with pytest.raises(ValueError, match="empty"):
        model([torch.rand(3, 0, 64)])
    model.train()
    with pytest.raises(ValueError, match="one target dict per image"):
        model([torch.rand(3, 64, 64)])
    with pytest.raises(ValueError, match="has no 'masks'"):
        model([torch.rand(3, 64, 64)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}])
    with pytest.raises(ValueError, match="positive width and height"):
        model([torch.rand(3, 64, 64)], [{"boxes": torch.tensor([[5.0, 5, 5, 9]]), "labels": torch.ones(1).long(),
                                         "masks": torch.zeros(1, 64, 64, dtype=torch.uint8)}])
    with pytest.raises(ValueError, match="mask_format"):
        maskrcnn_resnet_fpn(num_classes=3, mask_format="png", **TINY)
    with pytest.raises(ValueError, match="depth"):
        maskrcnn_resnet_fpn(num_classes=3, depth=42)


def test_export_end_to_end():
    """torch.export of inference, images in, detections out: the detection count is data-dependent
    (fastseg's ops have fake kernels with dynamic output sizes); the image sizes are fixed at
    export time (the resize and padding arithmetic is specialised to them)."""
    torch.manual_seed(0)
    model = maskrcnn_resnet_fpn(num_classes=4, **TINY, box_score_thresh=0.258).eval()
    g = torch.Generator().manual_seed(1)
    first = [torch.rand(3, 100, 130, generator=g), torch.rand(3, 90, 120, generator=g)]
    second = [torch.rand(3, 100, 130, generator=g) * 0.5, torch.zeros(3, 90, 120)]
    ep = torch.export.export(model, (first,), strict=False)
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    for op in ("fastseg.multi_scale_roi_align", "fastseg.batched_nms", "fastseg.paste_masks_in_image"):
        assert any(t.startswith(op) for t in targets), op
    counts = set()
    with torch.no_grad():
        for images in (first, second):
            exported, eager = ep.module()(images), model(images)
            for a, b in zip(exported, eager):
                counts.add(len(b["boxes"]))
                assert set(a) == set(b)
                for k in b:
                    assert torch.equal(a[k], b[k]), k
    assert len(counts) > 1, f"the images should give different detection counts, got {counts}"


def test_compile_parts_fullgraph_and_whole_model():
    """Backbone + FPN, the RPN head, the RoI pooling and the box and mask heads compile without
    graph breaks; the whole model compiles (with breaks at the data-dependent steps) and equals
    eager."""
    torch.manual_seed(0)
    model = maskrcnn_resnet_fpn(num_classes=4, **TINY, box_score_thresh=0.2).eval()
    images = [torch.rand(3, 100, 130)]
    with torch.no_grad():
        batch, _ = model.transform(images)
        feats = model.backbone(batch.tensors)
        heads = model.roi_heads
        parts = [(model.backbone, (batch.tensors,)), (model.rpn.head, (list(feats.values()),)),
                 (heads.box_roi_pool, (feats, [torch.tensor([[1.0, 2, 50, 60], [3, 4, 90, 80]])], batch.image_sizes)),
                 (heads.box_head, (torch.rand(5, 32, 7, 7),)), (heads.box_predictor, (torch.rand(5, 64),)),
                 (heads.mask_head, (torch.rand(5, 32, 14, 14),)), (heads.mask_predictor, (torch.rand(5, 32, 14, 14),))]
        for module, args in parts:
            torch._dynamo.reset()
            compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
            torch.testing.assert_close(compiled(*args), module(*args), rtol=1e-5, atol=1e-5)
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="aot_eager")
        a, b = compiled(images), model(images)
    assert len(a[0]["boxes"]) > 0
    assert_same_detections(a, b, box_tol=1e-3, score_tol=1e-5, mask_tol=1e-5)


def test_fast_backbone_trains_like_the_exact_one():
    """Folded frozen batch norms pass the gradients to the convolutions as the unfolded ones."""
    exact = maskrcnn_resnet_fpn(num_classes=4, **TINY, norm_layer=FrozenBatchNorm2d).train()
    fast = maskrcnn_resnet_fpn(num_classes=4, **TINY, norm_layer=FrozenBatchNorm2d, fast_backbone=True).train()
    fast.load_state_dict(exact.state_dict())
    images, targets = synthetic_batch(2, (96, 128))
    grads = []
    for model in (exact, fast):
        torch.manual_seed(3)
        losses = model(images, targets)
        sum(losses.values()).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert set(grads[0]) == set(grads[1]) and any(n.startswith("backbone.body.layer1") for n in grads[0])
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=2e-3, atol=1e-5, msg=n)


def decode_all_then_filter(heads, class_logits, box_regression, proposals, image_sizes):
    """torchvision's order of the box post-processing, in plain PyTorch: decode every
    (proposal, class) box, clip, then filter by score, drop small boxes, per-class NMS."""
    from fastseg.models.detection.box_coder import clip_boxes_to_image
    from fastseg.reference import batched_nms

    C = class_logits.shape[-1]
    counts = [len(p) for p in proposals]
    boxes_all = heads.box_coder.decode(box_regression, proposals).split(counts)
    out = []
    for boxes, scores, size in zip(boxes_all, torch.softmax(class_logits, -1).split(counts), image_sizes):
        boxes = clip_boxes_to_image(boxes, size)[:, 1:].reshape(-1, 4)
        labels = torch.arange(C).expand(len(scores), C)[:, 1:].reshape(-1)
        scores = scores[:, 1:].reshape(-1)
        keep = scores > heads.score_thresh
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = (wh >= 1e-2).all(1)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = batched_nms(boxes, scores, labels, heads.nms_thresh)[:heads.detections_per_img]
        out.append((boxes[keep], scores[keep], labels[keep]))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_postprocess_detections_filters_before_decoding(seed):
    """The score filter runs before the decoding (only ~1 % of the boxes are decoded): the same
    detections, in the same order, as decoding all of them first. Includes ties in the scores,
    tiny boxes, boxes outside the image, a background-only proposal set and two images."""
    g = torch.Generator().manual_seed(seed)
    model = maskrcnn_resnet_fpn(num_classes=7, **TINY).eval()
    heads = model.roi_heads
    counts, sizes = [300, 0, 150] if seed == 2 else [300, 150], [(120, 160), (90, 70), (64, 64)]
    proposals = []
    for n, (h, w) in zip(counts, sizes):
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w, h])
        proposals.append(torch.cat((xy, xy + torch.rand(n, 2, generator=g) * 40 + (seed == 1) * 1e-4), 1))
    total = sum(counts)
    class_logits = torch.randn(total, 7, generator=g) * 2
    class_logits[::7] = class_logits[0]  # tied scores
    class_logits[5::11, 1:] = -30  # only background
    box_regression = torch.randn(total, 28, generator=g) * 0.5
    box_regression[3::13] = 8.0  # past the decoding clip, boxes beyond the image
    with torch.no_grad():
        ours = heads.postprocess_detections(class_logits, box_regression, proposals, sizes[:len(counts)])
        ref = decode_all_then_filter(heads, class_logits, box_regression, proposals, sizes[:len(counts)])
    assert sum(len(r["boxes"]) for r in ours) > 20  # the test exercises NMS and the top-n cut
    for r, (boxes, scores, labels) in zip(ours, ref):
        assert torch.equal(r["labels"], labels)
        assert torch.equal(r["scores"], scores)
        torch.testing.assert_close(r["boxes"], boxes, rtol=0, atol=1e-4)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("k", [0, 1, 7])
def test_mask_predictor_class_logits(channels_last, k):
    """Inference computes only each RoI's label logits: equal to all classes' logits indexed."""
    from fastseg.models.heads.roi_heads import MaskRCNNPredictor
    torch.manual_seed(k)
    pred = MaskRCNNPredictor(16, 12, 5).eval()
    with torch.no_grad():
        pred.mask_fcn_logits.bias.normal_()
    x = torch.randn(k, 16, 7, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 5, (k,))
    with torch.no_grad():
        got = pred.class_logits(x, labels)
        want = pred(x)[torch.arange(k), labels][:, None]
    assert got.shape == (k, 1, 14, 18)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_mask_predictor_class_logits_autocast():
    """Under bfloat16 autocast the label logits have the dtype all classes' logits would have."""
    from fastseg.models.heads.roi_heads import MaskRCNNPredictor
    pred = MaskRCNNPredictor(16, 12, 5).eval()
    x, labels = torch.randn(3, 16, 7, 7), torch.tensor([4, 0, 2])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = pred.class_logits(x, labels)
        want = pred(x)[torch.arange(3), labels][:, None]
    assert got.dtype == want.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("lateral_hw,top_hw,channels_last", [
    ((200, 272), (100, 136), False), ((26, 34), (13, 17), True), ((13, 17), (7, 9), False), ((8, 8), (8, 8), False)])
def test_fpn_top_down_sum_equals_interpolate_then_add(lateral_hw, top_hw, channels_last):
    # The 2x case adds through a broadcast view instead of building the upsampled map; every
    # other size goes through F.interpolate. Both must equal torchvision's lateral + interpolate.
    from fastseg.models.backbones.fpn import _add_upsampled_
    g = torch.Generator().manual_seed(0)
    lateral = torch.randn(2, 5, *lateral_hw, generator=g)
    top = torch.randn(2, 5, *top_hw, generator=g)
    if channels_last:
        lateral, top = (t.contiguous(memory_format=torch.channels_last) for t in (lateral, top))
    expected = lateral + torch.nn.functional.interpolate(top, size=lateral_hw, mode="nearest")
    assert torch.equal(_add_upsampled_(lateral.clone(), top), expected)
    top = top.clone().requires_grad_()
    _add_upsampled_(lateral.clone(), top).sum().backward()
    if lateral_hw == (2 * top_hw[0], 2 * top_hw[1]):  # each top pixel feeds a 2x2 block
        assert torch.equal(top.grad, torch.full_like(top, 4.0))
