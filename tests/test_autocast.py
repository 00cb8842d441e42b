"""The detection ops under torch.autocast (bfloat16 on the CPU) with the mixed dtypes autocast
produces (bfloat16 features or scores next to float32 boxes): they run and return what
torchvision's ops return there (dtype and values), and a small detection pipeline (the tiny Mask
R-CNN) runs end to end under autocast."""
import pytest
import torch

import helpers
from helpers import needs_torchvision

import fastseg
from fastseg.models import maskrcnn_resnet_fpn

pytestmark = helpers.needs_ops

BF16 = torch.bfloat16


def autocast():
    return torch.autocast("cpu", dtype=BF16)


def boxes_and_scores(n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 40
    boxes = torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 20], 1)
    # distinct after rounding to bfloat16: no ties for the two implementations to order differently
    scores = torch.linspace(0.05, 0.95, n)[torch.randperm(n, generator=g)].to(BF16)
    return boxes, scores, torch.randint(0, 3, (n,), generator=g)


@needs_torchvision
def test_nms_mixed_dtypes_like_torchvision():
    import torchvision
    boxes, scores, idxs = boxes_and_scores()
    with autocast():
        assert torch.equal(fastseg.ops.nms(boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))
        assert torch.equal(fastseg.ops.batched_nms(boxes, scores, idxs, 0.5),
                           torchvision.ops.batched_nms(boxes, scores, idxs, 0.5))
        assert fastseg.nn.BatchedNMS(0.5)(boxes, scores, idxs).dtype == torch.int64


@needs_torchvision
def test_roi_align_mixed_dtypes_like_torchvision():
    import torchvision
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 16, 20, generator=g).to(BF16)
    rois = torch.tensor([[0, 1.0, 1.5, 12.0, 9.0], [1, 3.0, 0.5, 18.0, 15.5]])
    with autocast():
        ours = fastseg.ops.roi_align(x, rois, 3, 0.5, 2)
        theirs = torchvision.ops.roi_align(x, rois, 3, 0.5, 2)
    assert ours.dtype == theirs.dtype == BF16
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=1e-2, atol=1e-2)


@needs_torchvision
def test_multi_scale_roi_align_mixed_dtypes_like_torchvision():
    import torchvision
    g = torch.Generator().manual_seed(2)
    feats = {"0": torch.randn(1, 4, 32, 32, generator=g).to(BF16), "1": torch.randn(1, 4, 16, 16, generator=g).to(BF16)}
    boxes = [torch.tensor([[1.0, 2.0, 30.0, 40.0], [0.0, 0.0, 120.0, 100.0], [5.0, 5.0, 9.0, 9.0]])]
    with autocast():
        ours = fastseg.nn.MultiScaleRoIAlign(["0", "1"], 2, 2)(feats, boxes, [(128, 128)])
        theirs = torchvision.ops.MultiScaleRoIAlign(["0", "1"], 2, 2)(feats, boxes, [(128, 128)])
    assert ours.dtype == theirs.dtype
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=1e-2, atol=1e-2)


@needs_torchvision
def test_paste_masks_in_image_mixed_dtypes_like_torchvision():
    from torchvision.models.detection.roi_heads import paste_masks_in_image
    boxes, _, _ = boxes_and_scores(5)
    masks = torch.rand(5, 1, 14, 14, generator=torch.Generator().manual_seed(3)).to(BF16)
    with autocast():
        ours = fastseg.ops.paste_masks_in_image(masks, boxes, (50, 60))
        theirs = paste_masks_in_image(masks, boxes, (50, 60))
    assert ours.dtype == theirs.dtype == BF16
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_tiny_mask_rcnn_under_autocast(train):
    torch.manual_seed(0)
    model = maskrcnn_resnet_fpn(num_classes=4, depth=18, width=8, fpn_channels=16, representation_size=32,
                                min_size=96, max_size=128, box_score_thresh=0.2).train(train)
    images = [torch.rand(3, 90, 120), torch.rand(3, 80, 100)]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([1]),
                "masks": torch.zeros(1, 90, 120, dtype=torch.uint8)},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                "masks": torch.zeros(0, 80, 100, dtype=torch.uint8)}]
    targets[0]["masks"][0, 10:60, 10:50] = 1
    with autocast():
        out = model(images, targets) if train else model(images)
    if train:
        total = sum(out.values())
        assert torch.isfinite(total)
        total.backward()
    else:
        assert sum(len(r["boxes"]) for r in out) > 0
        for r in out:
            assert all(torch.isfinite(r[k].float()).all() for k in ("boxes", "scores", "masks"))
