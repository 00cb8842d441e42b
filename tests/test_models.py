"""The semantic segmentation networks (fastseg.models): shapes, the plain-PyTorch twin, torchvision
weights, compile / export / AMP / channels-last, bad input.

Networks are built narrow (`width=8`: every channel count / 8) so that float64 twin comparisons
and compilation stay fast; one test checks the paper widths' parameter counts.
"""
import io
import json
import math
import os

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import helpers
from helpers import BadCase

import fastseg
from fastseg import models
from fastseg import nn as fnn
from fastseg.models import weights

pytestmark = helpers.needs_ops

WIDTH = 8
# id -> (builder, kwargs, input sizes, output size as a function of the input size)
SAME = lambda h, w: (h, w)  # noqa: E731
NETS = {
    "fcn32s": ("fcn32s", {}, [(1, 1), (31, 17), (64, 48)], SAME),
    "fcn16s": ("fcn16s", {}, [(1, 1), (31, 17), (64, 48)], SAME),
    "fcn8s": ("fcn8s", {}, [(1, 1), (31, 17), (64, 48)], SAME),
    "deconvnet": ("deconvnet", {}, [(193, 193), (250, 230)], SAME),
    "segnet": ("segnet", {}, [(1, 1), (23, 30), (45, 61)], SAME),
    "segnet_int64": ("segnet", {"compact_indices": False}, [(23, 30)], SAME),
    "unet": ("unet", {}, [(188, 188), (188, 204)], lambda h, w: (h - 184, w - 184)),
    "unet_same": ("unet", {"padding": "same"}, [(1, 1), (33, 29), (64, 48)], SAME),
}
# One size per network for the heavier checks (twin, compile, export, AMP).
SMALL = {"fcn32s": (37, 29), "fcn16s": (37, 29), "fcn8s": (37, 29), "deconvnet": (225, 199),
         "segnet": (45, 61), "segnet_int64": (45, 61), "unet": (188, 204), "unet_same": (45, 61)}


def build(net: str, reference: bool = False, **extra) -> torch.nn.Module:
    name, kwargs, _, _ = NETS[net]
    return models.get_model(name, num_classes=5, width=WIDTH, reference=reference, **kwargs, **extra)


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random parameters and BN statistics: FCN's zero score layers and bilinear filters would
    make a comparison of gradients nearly trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                fan_in = t[0].numel() if t.dim() > 1 else 1
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) / math.sqrt(fan_in))
                if name.endswith("running_var"):
                    t.abs_().add_(0.5)
    return model


def twins(net: str, dtype=torch.float64):
    fast = randomize(build(net)).to(dtype)
    twin = build(net, reference=True).to(dtype)
    twin.load_state_dict(fast.state_dict())
    return fast, twin


def image(net: str, n: int = 2, dtype=torch.float32, size=None) -> torch.Tensor:
    h, w = size or SMALL[net]
    return torch.randn(n, 3, h, w, dtype=dtype, generator=torch.Generator().manual_seed(1))


class OpRecorder(TorchDispatchMode):
    """Names of the ops dispatched below autograd (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func._schema.name)
        return func(*args, **(kwargs or {}))


def assert_close_scaled(actual, expected, rel: float, what: str = "", atol: float = 1e-6):
    """Max |actual - expected| <= rel * max |expected| + atol: float32 through a deep random
    network accumulates rounding in proportion to the activations' scale."""
    scale = expected.abs().max().item()
    err = (actual - expected).abs().max().item()
    assert err <= rel * scale + atol, f"{what}: max abs error {err:.3g} > {rel} x scale {scale:.3g} + {atol}"


def fastseg_ops(ops):
    return sorted(o for o in ops if o.startswith("fastseg::"))


# ----------------------------------------------------------------------------- API

def test_list_and_get_model():
    assert models.list_models() == ["deconvnet", "efficientps", "fcn16s", "fcn32s", "fcn8s", "maskrcnn",
                                    "maskrcnn_resnet50_fpn", "segnet", "unet"]
    m = models.get_model("fcn8s", num_classes=3, width=WIDTH)
    assert isinstance(m, models.FCN) and m.output_stride == 8
    with pytest.raises(ValueError, match="unknown model 'fcn4s'.*deconvnet, efficientps, fcn16s"):
        models.get_model("fcn4s")
    with pytest.raises(TypeError):
        models.segnet(3)  # keyword-only


@pytest.mark.parametrize("net", NETS)
def test_output_shapes(net):
    model = build(net).eval()
    _, _, sizes, out_size = NETS[net]
    for h, w in sizes:
        with torch.no_grad():
            y = model(image(net, n=1, size=(h, w)))
        assert isinstance(y, torch.Tensor)
        assert tuple(y.shape) == (1, 5, *out_size(h, w)), (net, h, w)
        assert torch.isfinite(y).all()


def test_fcn_crops_inside_for_every_size():
    """Caffe's crops never overrun with ceil-mode pooling (floor mode overruns at 500x500)."""
    model = models.fcn8s(num_classes=2, width=WIDTH)
    for side in range(1, 700):
        h = side + 198  # conv1_1 padded by 100
        pools = []
        for _ in range(5):
            h = (h + 1) // 2
            pools.append(h)
        fr = pools[4] - 6
        up2 = (fr - 1) * 2 + 4
        up4 = (up2 - 1) * 2 + 4
        assert 5 + up2 <= pools[3] and 9 + up4 <= pools[2], side
        assert 31 + side <= (up4 - 1) * 8 + 16 and 27 + side <= (up2 - 1) * 16 + 32, side
        assert 19 + side <= (fr - 1) * 32 + 64, side
    assert model.upscore_final.crop == (31, 31) and model.upscore_final.stride == (8, 8)
    assert models.fcn16s(width=WIDTH).upscore_final.crop == (27, 27)
    assert models.fcn32s(width=WIDTH).upscore_final.kernel_size == (64, 64)


def test_paper_widths_and_geometry():
    """The default builders are the papers' networks."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # U-Net, 1 input channel, 2 classes: the paper's layers (23 convolutions, 4 up-convolutions).
    assert count(models.unet(in_channels=1, num_classes=2)) == 31_030_658
    # SegNet on CamVid (11 classes): the paper's 29.5 M.
    assert 29.3e6 < count(models.segnet(num_classes=11)) < 29.5e6
    fcn = models.fcn8s()
    assert fcn.features[0].padding == (100, 100) and fcn.fc6[0].kernel_size == (7, 7)
    assert all(m.ceil_mode for m in fcn.features if isinstance(m, torch.nn.MaxPool2d))
    assert isinstance(fcn.fc6[2], torch.nn.Dropout) and not isinstance(fcn.fc6[2], torch.nn.Dropout2d)
    assert fcn.upscore2.bias is None and not fcn.score_fr.weight.detach().any()
    torch.testing.assert_close(fcn.upscore2.weight.detach(), fastseg.ops.bilinear_upsample_weight(21, 2))
    with torch.no_grad():
        assert models.unet(num_classes=2)(torch.zeros(1, 3, 572, 572)).shape[-2:] == (388, 388)


# ----------------------------------------------------------------------------- the twin

@pytest.mark.parametrize("net", NETS)
def test_twin_matches_float64(net):
    """fastseg vs its plain-PyTorch twin on the same weights: forward and every gradient."""
    fast, twin = twins(net)
    fast.train(), twin.train()
    outs, grads = [], []
    for model in (fast, twin):
        x = image(net, dtype=torch.float64).requires_grad_()
        torch.manual_seed(5)  # the same dropout masks
        y = model(x)
        g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(2))
        params = [p for p in model.parameters()]
        grads.append(torch.autograd.grad(y, [x, *params], g))
        outs.append(y)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-10)
    names = ["input"] + [n for n, _ in fast.named_parameters()]
    for name, a, b in zip(names, grads[0], grads[1]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=lambda m: f"{net} grad of {name}: {m}")


@pytest.mark.parametrize("net", ["fcn8s", "deconvnet", "segnet", "segnet_int64", "unet", "unet_same"])
def test_reference_calls_no_fastseg_op(net):
    fast, twin = build(net), build(net, reference=True)
    twin.load_state_dict(fast.state_dict())
    assert fast.state_dict().keys() == twin.state_dict().keys()
    seen = {}
    for label, model in (("fast", fast), ("twin", twin)):
        rec = OpRecorder()
        with rec:
            model(image(net)).sum().backward()
        seen[label] = fastseg_ops(rec.ops)
    assert seen["twin"] == [], f"the reference {net} called {seen['twin']}"
    assert seen["fast"], f"{net} called no fastseg op"  # the recorder does see them


def test_set_reference_switches_back_and_forth():
    model = build("segnet")
    fnn.set_reference(model)
    assert all(m.reference for m in model.modules() if isinstance(m, fnn.MaxPool2dCompact))
    fnn.set_reference(model, False)
    assert not any(m.reference for m in model.modules() if isinstance(m, fnn.MaxPool2dCompact))
    with pytest.raises(TypeError, match="reference must be a bool"):
        fnn.set_reference(model, "yes")


# ----------------------------------------------------------------------------- production use

@pytest.mark.parametrize("net", NETS)
def test_state_dict_round_trip(net):
    a = randomize(build(net)).eval()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    b = build(net).eval()
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True), strict=True)
    x = image(net)
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)


@pytest.mark.parametrize("net", NETS)
def test_channels_last(net):
    model = randomize(build(net)).eval()
    x = image(net)
    with torch.no_grad():
        expected = model(x)
        assert_close_scaled(model(x.contiguous(memory_format=torch.channels_last)), expected, 1e-4, "input")
        model = model.to(memory_format=torch.channels_last)
        assert_close_scaled(model(x.contiguous(memory_format=torch.channels_last)), expected, 1e-4, "model")


@pytest.mark.parametrize("net", NETS)
def test_autocast_bfloat16(net):
    """Forward and backward under torch.autocast (bfloat16 on CPU), close to the twin's."""
    fast, twin = twins(net, torch.float32)
    results = []
    for model in (fast, twin):
        model.eval()  # no dropout: the two must see the same network
        x = image(net)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x)
        y.float().square().mean().backward()
        assert y.dtype == torch.bfloat16
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        results.append(y.float())
    assert_close_scaled(results[0], results[1], 0.05, net)


@pytest.mark.parametrize("net", ["fcn8s", "deconvnet", "segnet", "unet", "unet_same"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_compile_fullgraph(net, mode):
    """torch.compile(fullgraph=True) with the real compiler gives the eager result."""
    model = randomize(build(net, dropout=0.0) if net.startswith("fcn") else build(net))
    getattr(model, mode)()
    x = image(net, n=4)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    if mode == "eval":
        with torch.no_grad():
            assert_close_scaled(compiled(x), model(x), 1e-3, net)
        return
    # Train mode: BN uses batch statistics; compare outputs and parameter gradients.
    results = []
    for fn in (compiled, model):
        model.zero_grad()
        y = fn(x)
        y.square().mean().backward()
        results.append((y.detach(), [p.grad.clone() for p in model.parameters()]))
    assert_close_scaled(results[0][0], results[1][0], 1e-3, f"{net} output")
    for (name, _), a, b in zip(model.named_parameters(), results[0][1], results[1][1]):
        # atol: a conv bias followed by BN has a zero gradient, up to rounding
        assert_close_scaled(a, b, 1e-2, f"{net} grad of {name}", atol=1e-5)


# Every network exports with dynamic height and width (Dim.DYNAMIC) and the program runs on other
# sizes. U-Net (valid) only takes 16k + 60: its dims are declared so. PyTorch's convolution
# specialises 1x1 feature maps, so one program covers the sizes whose deepest map is at least 2x2
# when exported from such a size (SegNet: >= 33 pixels; FCN: >= 27; DeconvNet: >= 225; the
# paper's 224 DeconvNet, whose fc6 map is 1x1, exports with a static size).
_DYN = {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
EXPORT_CASES = {
    "fcn8s": ((45, 47), _DYN, [(40, 57), (31, 27)]),
    "fcn32s": ((45, 47), _DYN, [(40, 57)]),
    "segnet": ((45, 47), _DYN, [(40, 57), (33, 70)]),
    "unet_same": ((45, 47), _DYN, [(40, 57)]),
    "deconvnet": ((226, 240), _DYN, [(250, 230)]),
    "unet": ((188, 204), None, [(204, 220)]),
}


@pytest.mark.parametrize("net", EXPORT_CASES)
def test_export_dynamic_hw(net):
    size, dyn, others = EXPORT_CASES[net]
    if dyn is None:  # U-Net valid: sides 16k + 60
        kh, kw = torch.export.Dim("kh", min=8, max=128), torch.export.Dim("kw", min=8, max=128)
        dyn = {2: 16 * kh + 60, 3: 16 * kw + 60}
    model = randomize(build(net)).eval()  # parameters require grad, as users export them
    ep = helpers.check_export(model, (image(net, size=size),), dynamic_shapes={"x": dyn}, exact=False,
                              more_args=[(image(net, size=s),) for s in others])
    assert any(t.startswith("fastseg.") for t in helpers.graph_targets(ep)), helpers.graph_targets(ep)


# ----------------------------------------------------------------------------- torchvision weights

MANIFESTS = os.path.join(helpers.TESTS_DIR, "manifests")


def manifest_state_dict(name: str) -> dict:
    """A state dict with torchvision's keys and shapes (checked in: no torchvision needed)."""
    with open(os.path.join(MANIFESTS, f"{name}_state_dict.json")) as f:
        keys = json.load(f)["keys"]
    g = torch.Generator().manual_seed(3)
    return {k: (torch.randint(0, 5, shape, generator=g) if k.endswith("num_batches_tracked") and shape == []
                else torch.randn(shape, generator=g)) for k, shape in keys.items()}


@helpers.needs_torchvision
@pytest.mark.parametrize("name", ["vgg16", "vgg16_bn"])
def test_manifests_match_torchvision(name):
    import torchvision

    sd = getattr(torchvision.models, name)(weights=None).state_dict()
    with open(os.path.join(MANIFESTS, f"{name}_state_dict.json")) as f:
        keys = json.load(f)["keys"]
    assert {k: list(v.shape) for k, v in sd.items()} == keys


@pytest.mark.parametrize("builder,mapping,vgg", [
    ("fcn32s", weights.vgg16_to_fcn, "vgg16"), ("fcn16s", weights.vgg16_to_fcn, "vgg16"),
    ("fcn8s", weights.vgg16_to_fcn, "vgg16"), ("deconvnet", weights.vgg16_bn_to_deconvnet, "vgg16_bn"),
    ("segnet", weights.vgg16_bn_to_segnet, "vgg16_bn")])
def test_vgg_weights_load(builder, mapping, vgg, tmp_path):
    sd = manifest_state_dict(vgg)
    model = models.get_model(builder)
    mapped = mapping(sd)
    missing = weights.load_into(model, mapped)
    assert missing and not any(k.startswith("features.") for k in missing)
    if builder.startswith("fcn"):
        assert all(k.startswith(("score", "upscore")) for k in missing), missing
    features = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    model.features.load_state_dict(features, strict=True)  # torchvision's names, strict
    for k, v in mapped.items():
        assert torch.equal(model.state_dict()[k], v), k
    if builder != "segnet":  # fc6 = VGG's first Linear on a 7x7x512 pool5, as a 7x7 conv
        pool5 = torch.randn(2, 512, 7, 7)
        linear = torch.nn.functional.linear(pool5.flatten(1), sd["classifier.0.weight"], sd["classifier.0.bias"])
        assert_close_scaled(model.fc6[0](pool5).flatten(1), linear, 1e-5, "fc6")
    path = tmp_path / "vgg.pt"
    torch.save(sd, path)
    assert mapping(path).keys() == mapped.keys()  # a path works as well


@helpers.needs_torchvision
def test_segnet_encoder_is_torchvision_vgg16_bn():
    """With torchvision's vgg16_bn weights, SegNet's encoder computes torchvision's features."""
    import torchvision

    vgg = torchvision.models.vgg16_bn(weights=None).eval()
    model = models.segnet(reference=True).eval()
    weights.load_into(model, weights.vgg16_bn_to_segnet(vgg.state_dict()))
    x = torch.randn(1, 3, 64, 96)  # even at every stage: ceil and floor pooling agree
    with torch.no_grad():
        torch.testing.assert_close(model.features(x)[-1].pooled, vgg.features(x), rtol=1e-5, atol=1e-5)


def test_weights_bad_source():
    with pytest.raises(KeyError, match="classifier.0.weight"):
        weights.vgg16_to_fcn({"features.0.weight": torch.zeros(64, 3, 3, 3)})
    with pytest.raises(TypeError, match="state dict"):
        weights.vgg16_bn_to_segnet(42)
    with pytest.raises(ValueError, match="features.0.weight"):
        weights.load_into(models.segnet(width=WIDTH), weights.vgg16_bn_to_segnet(manifest_state_dict("vgg16_bn")))
    with pytest.raises(KeyError, match="no parameter 'bogus'"):
        weights.load_into(models.segnet(width=WIDTH), {"bogus": torch.zeros(1)})


# ----------------------------------------------------------------------------- bad input

def bad_cases(device="cpu"):
    x = torch.randn(1, 3, 45, 45)
    seg = models.segnet(num_classes=3, width=WIDTH)
    fcn = models.fcn8s(num_classes=3, width=WIDTH)
    dec = models.deconvnet(num_classes=3, width=WIDTH)
    un = models.unet(num_classes=3, width=WIDTH)
    return [
        BadCase("channels", lambda: seg(torch.randn(1, 4, 45, 45)), r"segnet: input must have 3 channels"),
        BadCase("rank3", lambda: fcn(torch.randn(3, 45, 45)), r"fcn8s: input must be 4-D \[N, 3, H, W\]"),
        BadCase("rank5", lambda: seg(torch.randn(1, 1, 3, 45, 45)), r"segnet: input must be 4-D"),
        BadCase("int-dtype", lambda: seg(torch.zeros(1, 3, 45, 45, dtype=torch.uint8)),
                r"segnet: input must be a floating-point tensor", ("TypeError",)),
        BadCase("not-tensor", lambda: seg(x.numpy()), r"segnet: input must be a Tensor", ("TypeError",)),
        BadCase("deconvnet-small", lambda: dec(torch.randn(1, 3, 192, 250)),
                r"deconvnet: input must be at least 193x193", ("ValueError",)),
        BadCase("unet-valid-size", lambda: un(torch.randn(1, 3, 200, 188)),
                r"unet: .*16k \+ 60.*nearest valid size for 200 is 188 or 204", ("ValueError",)),
        BadCase("unet-too-small", lambda: un(torch.randn(1, 3, 60, 60)), r"unet: .*nearest valid size for 60 is 188",
                ("ValueError",)),
        BadCase("num-classes", lambda: models.segnet(num_classes=0), r"segnet: num_classes must be an int >= 1",
                ("ValueError",)),
        BadCase("in-channels", lambda: models.fcn8s(in_channels=2.0), r"fcn8s: in_channels must be an int",
                ("ValueError",)),
        BadCase("width", lambda: models.unet(width=0), r"unet: width must be an int >= 1", ("ValueError",)),
        BadCase("reference", lambda: models.deconvnet(reference="no"), r"deconvnet: reference must be a bool",
                ("TypeError",)),
        BadCase("padding", lambda: models.unet(padding="full"), r"unet: padding must be 'valid' or 'same'",
                ("ValueError",)),
        BadCase("compact", lambda: models.segnet(compact_indices=1), r"segnet: compact_indices must be a bool",
                ("TypeError",)),
        BadCase("dropout", lambda: models.fcn32s(dropout=1.5), r"fcn32s: dropout must be a probability",
                ("ValueError",)),
        BadCase("unknown", lambda: models.get_model("segnet2"), r"unknown model 'segnet2'", ("ValueError",)),
        BadCase("meta-mixed", lambda: seg(x.to("meta")), r"", ("RuntimeError", "ValueError", "TypeError",
                                                                "NotImplementedError")),
    ]


helpers.register_bad_cases("models", "test_models:bad_cases")


def test_bad_inputs():
    results = helpers.bad_case_results("models", "cpu")
    assert len(results) >= 16
    helpers.assert_no_bad_case_failures(results)
