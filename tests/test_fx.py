"""torch.fx.symbolic_trace of fastseg's layers: each records its op as one call (torch.fx.wrap, as
torchvision does for its ops), and the traced module computes what the layer does. Feature
extraction (torchvision.models.feature_extraction) and FX quantization rely on this."""
import importlib

import pytest
import torch
import torch.fx

import helpers

import fastseg.reference
from fastseg import nn as fnn
# The op modules (fastseg.ops.<name> is the function of that name, not its module).
nms_ops, paste_ops, roi_ops, unpool_ops, panoptic_ops = (importlib.import_module(f"fastseg.ops.{m}")
                                                         for m in ("nms", "paste_masks", "roi_align", "unpool",
                                                                   "panoptic"))
conv_transpose_nn = importlib.import_module("fastseg.nn.conv_transpose")

pytestmark = helpers.needs_ops


def calls(gm: torch.fx.GraphModule):
    return [n.target for n in gm.graph.nodes if n.op == "call_function"]


def check(module, args, expected_target):
    gm = torch.fx.symbolic_trace(module)
    targets = calls(gm)
    assert targets == [expected_target], targets
    out, ref = gm(*args), module(*args)
    for a, b in zip(out if isinstance(out, tuple) else (out,), ref if isinstance(ref, tuple) else (ref,)):
        assert torch.equal(a, b)
    return gm


def test_roi_align_layers():
    x = torch.randn(2, 3, 12, 10)
    rois = torch.tensor([[0, 1.0, 1.0, 8.0, 9.0], [1, 0.5, 2.0, 5.0, 7.5]])
    check(fnn.RoIAlign(3, 0.5, 2), (x, rois), roi_ops.roi_align)
    feats = {"0": torch.randn(1, 4, 16, 16), "1": torch.randn(1, 4, 8, 8), "pool": torch.randn(1, 4, 4, 4)}
    boxes = [torch.tensor([[1.0, 2.0, 30.0, 40.0], [0.0, 0.0, 63.0, 63.0]])]
    layer = fnn.MultiScaleRoIAlign(["0", "1"], 2, 2)
    gm = torch.fx.symbolic_trace(layer)
    (target,) = calls(gm)
    assert target.__name__ == "_multi_scale_roi_align_layer"
    assert torch.equal(gm(feats, boxes, [(64, 64)]), layer(feats, boxes, [(64, 64)]))


def test_nms_and_paste_layers():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(20, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(20, 2, generator=g) * 20], 1)
    scores, idxs = torch.rand(20, generator=g), torch.randint(0, 3, (20,), generator=g)
    check(fnn.BatchedNMS(0.5), (boxes, scores, idxs), nms_ops.batched_nms)
    masks = torch.rand(3, 1, 7, 7, generator=g)
    check(fnn.PasteMasksInImage(1), (masks, boxes[:3], (80, 90)), paste_ops.paste_masks_in_image)
    check(fnn.PasteMasks(0.5), (masks, boxes[:3], (80, 90)), paste_ops.paste_masks)


def test_unpool_layers():
    x = torch.randn(2, 3, 9, 8)
    values, offsets = fnn.MaxPool2dCompact(2)(x)
    _, indices = torch.nn.functional.max_pool2d(x, 2, return_indices=True)
    check(fnn.MaxPool2dCompact(2), (x,), unpool_ops.max_pool2d_compact)
    check(fnn.MaxUnpool2dCompact(2), (values, offsets), unpool_ops.max_unpool2d_compact)
    check(fnn.MaxUnpool2d(2), (values, indices), unpool_ops.max_unpool2d)
    check(fnn.UnpoolNearest2d(2), (x,), unpool_ops.unpool_nearest2d)
    check(fnn.UnpoolBedOfNails2d(3), (x,), unpool_ops.unpool_bed_of_nails2d)


def test_a_model_with_the_layers_traces():
    """A small network: the traced graph keeps the fastseg calls between ordinary modules."""
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.pool = fnn.MaxPool2dCompact(2)
            self.unpool = fnn.MaxUnpool2dCompact(2)

        def forward(self, x):
            v, o = self.pool(self.conv(x))
            return self.unpool(v, o)

    net = Net()
    gm = torch.fx.symbolic_trace(net)
    assert unpool_ops.max_pool2d_compact in calls(gm) and unpool_ops.max_unpool2d_compact in calls(gm)
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(gm(x), net(x))


def same(a, b) -> bool:
    """Equal outputs: tensors bit for bit, containers item by item, Python data by ==."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def check_one_call(module, targets, *calls_args):
    """`module` traced once records one call, to `targets` (or to targets[0] in fastseg mode and
    targets[1] in reference mode), its parameters and buffers as get_attr nodes and nothing
    else; the traced module equals the layer on every (args, kwargs) in `calls_args` (other input
    sizes than the first included)."""
    if not isinstance(targets, tuple):
        targets = (targets, targets)
    for reference, target in zip((False, True), targets):
        fnn.set_reference(module, reference)
        gm = torch.fx.symbolic_trace(module)
        body = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output")]
        assert [n.target for n in body if n.op != "get_attr"] == [target], gm.graph
        assert {n.target for n in body if n.op == "get_attr"} <= {k for k, _ in module.named_parameters()} | \
            {k for k, _ in module.named_buffers()}
        for args, kwargs in calls_args:
            assert same(gm(*args, **kwargs), module(*args, **kwargs)), (reference, [a.shape for a in args])
    fnn.set_reference(module, False)


def test_conv_transpose2d_crop_traces_as_one_call():
    torch.manual_seed(0)
    target = conv_transpose_nn._conv_transpose2d_crop_layer
    layer = fnn.ConvTranspose2dCrop(3, 4, 4, 2, padding=1, crop=(1, 2))
    x, y = torch.randn(2, 3, 7, 6), torch.randn(1, 3, 5, 9)
    check_one_call(layer, target, ((x,), {}), ((y,), {}),
                   ((x,), {"crop_size": (5, 4)}),       # this call's crop size
                   ((x, [15, 13]), {}),                  # output_size picks output_padding
                   ((y, (2, 4, 10, 18)), {}))
    sized = fnn.ConvTranspose2dCrop(3, 2, 3, 2, crop=1, output_size=(6, 5), bias=False)
    check_one_call(sized, target, ((x,), {}), ((y,), {}))
    past_frame = fnn.ConvTranspose2dCrop(3, 2, 3, 2, output_padding=1)  # the bias-only row/column
    check_one_call(past_frame, target, ((x,), {}), ((y,), {}))


def test_up_concat_traces_as_one_call():
    torch.manual_seed(0)
    layer = fnn.UpConcat(6, 3)
    x, skip = torch.randn(2, 6, 5, 4), torch.randn(2, 3, 13, 9)
    y, skip_y = torch.randn(1, 6, 3, 7), torch.randn(1, 3, 8, 16)
    skip_odd = torch.randn(2, 3, 9, 7)
    check_one_call(layer, conv_transpose_nn._up_concat_layer, ((x, skip), {}), ((y, skip_y), {}),
                   ((x, skip_odd), {"crop_size": skip_odd.shape[-2:]}))


def test_bilinear_upsample_traces_as_one_call():
    torch.manual_seed(0)
    target = conv_transpose_nn._bilinear_upsample2d_layer
    x, y = torch.randn(2, 3, 5, 7), torch.randn(1, 3, 8, 4)
    check_one_call(fnn.BilinearUpsample2d(3, 4), target, ((x,), {}), ((y,), {}), ((x.double(),), {}))
    check_one_call(fnn.BilinearUpsample2d(3, 2, output_size=(9, 7)), target, ((x,), {}), ((y,), {}))


def test_every_layer_traces_as_one_call_in_both_modes():
    """Every layer of fastseg.nn.__all__, in fastseg and reference mode (the reference forms that
    read shapes or Python data, e.g. the reference NMS, are one call too)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 8, generator=g)
    values, offsets = fnn.MaxPool2dCompact(2)(x)
    _, indices = torch.nn.functional.max_pool2d(x, 2, return_indices=True)
    xy = torch.rand(6, 2, generator=g) * 20
    boxes = torch.cat([xy, xy + 3 + torch.rand(6, 2, generator=g) * 10], 1)
    scores, labels = torch.rand(6, generator=g), torch.randint(2, 4, (6,), generator=g)
    feats = {"0": torch.randn(1, 4, 16, 16, generator=g), "1": torch.randn(1, 4, 8, 8, generator=g)}
    masks = torch.rand(6, 1, 7, 7, generator=g)
    semantic, mask_logits = torch.randn(4, 30, 28, generator=g), torch.randn(6, 14, 14, generator=g) + 1
    rois = torch.tensor([[0, 1.0, 1.0, 8.0, 9.0], [1, 0.5, 2.0, 5.0, 7.5]])
    cases = {
        "MaxPool2dCompact": (fnn.MaxPool2dCompact(2), (x,)),
        "MaxUnpool2d": (fnn.MaxUnpool2d(2), (values, indices)),
        "MaxUnpool2dCompact": (fnn.MaxUnpool2dCompact(2), (values, indices)),  # int64 indices read in both
        "UnpoolBedOfNails2d": (fnn.UnpoolBedOfNails2d((3, 2)), (x,)),
        "UnpoolNearest2d": (fnn.UnpoolNearest2d(2), (x,)),
        "ConvTranspose2dCrop": (fnn.ConvTranspose2dCrop(3, 4, 4, 2, crop=1), (x,)),
        "UpConcat": (fnn.UpConcat(3, 2), (x, torch.randn(2, 2, 20, 19, generator=g))),
        "BilinearUpsample2d": (fnn.BilinearUpsample2d(3, 2), (x,)),
        "RoIAlign": (fnn.RoIAlign(3, 0.5, 2), (x, rois)),
        "MultiScaleRoIAlign": (fnn.MultiScaleRoIAlign(["0", "1"], 2, 2), (feats, [boxes], [(64, 64)])),
        "BatchedNMS": (fnn.BatchedNMS(0.5), (boxes, scores, labels)),
        "PasteMasks": (fnn.PasteMasks(0.5), (masks[:, 0], boxes, (30, 28))),
        "PasteMasksInImage": (fnn.PasteMasksInImage(1), (masks, boxes, (30, 28))),
        "PanopticFusionEfficientPS": (fnn.PanopticFusionEfficientPS([0, 1], 0.2, 0.5, 4),
                                      (semantic, mask_logits, boxes, scores, labels)),
    }
    assert set(cases) == set(fnn.__all__) - {"set_reference"}
    assert len(cases["PanopticFusionEfficientPS"][0](*cases["PanopticFusionEfficientPS"][1])[1]) > 2
    for name, (layer, args) in cases.items():
        if name == "MaxUnpool2dCompact":  # fastseg mode takes the compact offsets
            args_fast = (values, offsets)
        else:
            args_fast = args
        for reference, a in ((False, args_fast), (True, args)):
            fnn.set_reference(layer, reference)
            gm = torch.fx.symbolic_trace(layer)
            body = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output", "get_attr")]
            assert len(body) == 1 and body[0].op == "call_function", (name, reference, gm.graph)
            assert same(gm(*a), layer(*a)), (name, reference)
    tensor_format = fnn.PanopticFusionEfficientPS([0, 1], 0.2, 0.5, 4, segments_format="tensor")
    fusions = (panoptic_ops.panoptic_fusion_efficientps, fastseg.reference.panoptic_fusion_efficientps)
    check_one_call(tensor_format, fusions,
                   ((semantic, mask_logits, boxes, scores, labels), {}),
                   ((semantic[:, :20, :25], mask_logits[:4], boxes[:4], scores[:4], labels[:4]), {}))


def test_a_whole_network_traces_with_its_input_check_wrapped():
    """U-Net ("same") traces end to end once its input check (Python on the input's type and
    shape) is recorded as a call (`autowrap_functions`, as torchvision's feature extraction
    takes through tracer_kwargs); the UpConcat calls get their crop sizes from the skips' shapes
    at run time, so the traced network runs on other input sizes. Plain symbolic_trace of the
    networks stops at that check (see the issue 14 notes)."""
    from fastseg import models
    from fastseg.models._checks import check_image_batch
    torch.manual_seed(0)
    net = models.unet(num_classes=3, width=4, padding="same").eval()
    for reference in (False, True):
        fnn.set_reference(net, reference)
        graph = torch.fx.Tracer(autowrap_functions=(check_image_batch,)).trace(net)
        gm = torch.fx.GraphModule(net, graph)
        targets = calls(gm)
        assert targets.count(conv_transpose_nn._up_concat_layer) == 4 and check_image_batch in targets
        for shape in ((1, 3, 20, 24), (2, 3, 13, 17)):
            x = torch.randn(shape)
            assert torch.equal(gm(x), net(x))
        with pytest.raises(ValueError, match="unet: input must have 3 channels"):
            gm(torch.randn(1, 2, 16, 16))
