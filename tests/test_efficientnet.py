"""EfficientPS's EfficientNet backbone (fastseg.models.backbones.efficientnet): shapes at odd sizes,
no SE, LeakyReLU, residuals and stochastic depth, gradients, torchvision's parameter names (a
checked-in key manifest, so it runs without torchvision) and loading torchvision's state dicts.
Pure PyTorch: no fastseg ops needed."""
import json
import math
import os
import re
from functools import partial

import pytest
import torch
from torch import nn

import helpers

from fastseg.models.backbones import EfficientNetBackbone
from fastseg.models.backbones.efficientnet import MBConv, StochasticDepth

MANIFEST = os.path.join(helpers.TESTS_DIR, "manifests", "efficientnet_b0_features.json")
SE_OR_CLASSIFIER = re.compile(r"features\.\d+\.\d+\.block\.\d+\.fc[12]\.(weight|bias)|classifier\..*")
CHANNELS = {"b0": [24, 40, 112, 1280], "b5": [40, 64, 176, 2048]}
VARIANTS = [f"b{i}" for i in range(8)]


def _blocks(model):
    return [m for m in model.modules() if isinstance(m, MBConv)]


def _expected_size(size, stride):
    for _ in range(int(math.log2(stride))):
        size = -(-size // 2)  # every stride-2 conv pads k // 2: ceil(size / 2)
    return size


def _manifest_state_dict():
    with open(MANIFEST) as f:
        keys = json.load(f)["keys"]
    g = torch.Generator().manual_seed(3)
    return {k: (torch.randint(0, 5, shape, generator=g) if k.endswith("num_batches_tracked")
                else torch.randn(shape, generator=g)) for k, shape in keys.items()}


def _torchvision_model(variant, **kw):
    import torchvision

    return getattr(torchvision.models, f"efficientnet_{variant}")(weights=None, **kw)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("variant,size", [("b0", (64, 96)), ("b0", (65, 97)), ("b0", (33, 33)), ("b0", (1, 1)),
                                          ("b5", (33, 47))])
def test_shapes(variant, size, device):
    torch.manual_seed(0)
    model = EfficientNetBackbone(variant).to(device).eval()
    assert model.out_channels_list == CHANNELS[variant]
    assert model.strides == (4, 8, 16, 32)
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size, device=device))
    assert list(out) == ["0", "1", "2", "3"]
    for (key, y), c, s in zip(out.items(), model.out_channels_list, model.strides):
        assert y.shape == (2, c, _expected_size(size[0], s), _expected_size(size[1], s)), key
        assert torch.isfinite(y).all(), key


def test_variant_table():
    """All eight variants (built on the meta device: no memory, no init): channels, depths and
    torchvision's batch-norm defaults."""
    for v in VARIANTS:
        with torch.device("meta"):
            model = EfficientNetBackbone(v)
        assert len(model.features) == 9
        big = v in ("b5", "b6", "b7")
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms and all((m.eps, m.momentum) == ((1e-3, 0.01) if big else (1e-5, 0.1)) for m in norms), v
        if v in CHANNELS:
            assert model.out_channels_list == CHANNELS[v]
    with torch.device("meta"):
        b0, b5 = EfficientNetBackbone("b0"), EfficientNetBackbone("b5")
    assert [len(s) for s in b0.features[1:8]] == [1, 2, 2, 3, 3, 4, 1]
    assert [len(s) for s in b5.features[1:8]] == [3, 5, 5, 7, 7, 9, 3]  # ceil(n * 2.2)


# ----------------------------------------------------------------------------- EfficientPS's changes


@pytest.mark.parametrize("variant", ["b0", "b5"])
def test_no_se_and_leaky_relu(variant):
    with torch.device("meta"):
        model = EfficientNetBackbone(variant)
    acts = [m for m in model.modules() if isinstance(m, (nn.SiLU, nn.Sigmoid, nn.ReLU, nn.LeakyReLU, nn.Hardswish))]
    assert acts and all(type(m) is nn.LeakyReLU and m.negative_slope == 0.01 for m in acts)
    blocks = _blocks(model)
    # stem + head + (expand and depthwise, or depthwise alone) per block
    assert len(acts) == 2 + sum(len(b.block) - 2 for b in blocks)
    assert all(isinstance(b.block[-2], nn.Identity) for b in blocks)  # the SE slot
    assert not any(".fc" in name for name, _ in model.named_parameters())
    assert not any(isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.bias is not None)
                   for m in model.modules())


def test_custom_norm_and_activation():
    model = EfficientNetBackbone("b0", norm_layer=partial(nn.GroupNorm, 8), activation=nn.ReLU).eval()
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.LeakyReLU)) for m in model.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
    assert model(torch.randn(1, 3, 33, 33))["3"].shape == (1, 1280, 2, 2)


def test_residual_connections():
    """With the projection's batch norm zeroed, a residual block is the identity and any other
    block outputs zeros."""
    torch.manual_seed(0)
    model = EfficientNetBackbone("b0").eval()
    blocks = _blocks(model)
    assert [b.use_res_connect for b in blocks] == [False, False, True, False, True, False, True, True,
                                                   False, True, True, False, True, True, True, False]
    with torch.no_grad():
        for b in blocks:
            b.block[-1][1].weight.zero_()
            b.block[-1][1].bias.zero_()
            x = torch.randn(2, b.block[0][0].in_channels, 9, 9)
            y = b(x.clone())
            if b.use_res_connect:
                torch.testing.assert_close(y, x, rtol=0, atol=0)
            else:
                assert not y.any()


# ----------------------------------------------------------------------------- stochastic depth


def test_stochastic_depth_schedule():
    assert [b.stochastic_depth.p for b in _blocks(EfficientNetBackbone("b0"))] == [0.2 * i / 16 for i in range(16)]
    assert [b.stochastic_depth.p for b in _blocks(EfficientNetBackbone("b0", stochastic_depth_prob=0.5))] == \
        [0.5 * i / 16 for i in range(16)]
    assert all(b.stochastic_depth.p == 0 for b in _blocks(EfficientNetBackbone("b0", stochastic_depth_prob=0)))


def test_stochastic_depth_row_mode():
    torch.manual_seed(0)
    sd = StochasticDepth(0.5).train()
    y = sd(torch.ones(256, 3, 2, 2))
    rows = y.flatten(1)
    assert ((rows == 0).all(1) | (rows == 2).all(1)).all()  # whole samples dropped, survivors x 1/(1-p)
    assert 0 < (rows[:, 0] == 0).sum() < 256
    x = torch.randn(4, 3, 2, 2)
    assert sd.eval()(x) is x
    assert StochasticDepth(0.0).train()(x) is x
    assert not StochasticDepth(1.0).train()(x).any()


def _train_with_frozen_bn(model):
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    return model


def test_drop_path_only_in_training():
    """Batch norm held in eval mode, so only drop path can tell training from evaluation. The
    batch repeats one image: "row" mode draws per sample, so the samples' outputs differ."""
    x = torch.randn(1, 3, 33, 33).expand(8, -1, -1, -1)
    for prob in (0.0, 0.2):
        torch.manual_seed(0)
        model = EfficientNetBackbone("b0", stochastic_depth_prob=prob).eval()
        with torch.no_grad():
            ref = model(x)["3"]
            torch.testing.assert_close(model(x)["3"], ref, rtol=0, atol=0)  # eval is deterministic
            _train_with_frozen_bn(model)
            outs = []
            for seed in (1, 1, 2):
                torch.manual_seed(seed)
                outs.append(model(x)["3"])
        if prob == 0:
            for y in outs:
                torch.testing.assert_close(y, ref, rtol=0, atol=0)
            continue
        scale = ref.abs().max()
        torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)  # the draws follow the seed
        assert (outs[0] - ref).abs().max() > 1e-2 * scale and (outs[2] - outs[0]).abs().max() > 1e-2 * scale
        assert (outs[0] - outs[0][:1]).abs().amax((1, 2, 3)).max() > 1e-2 * scale  # per sample


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = EfficientNetBackbone("b0", stochastic_depth_prob=0).train()
    out = model(torch.randn(2, 3, 33, 33))
    sum((y * torch.randn_like(y)).sum() for y in out.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------- torchvision's names


def test_keys_match_manifest():
    """Without torchvision: our keys and shapes are torchvision efficientnet_b0's minus SE and
    classifier, and its state dict (random, from the manifest) loads."""
    sd = _manifest_state_dict()
    model = EfficientNetBackbone("b0")
    kept = {k: list(v.shape) for k, v in sd.items() if not SE_OR_CLASSIFIER.fullmatch(k)}
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == kept
    skipped = model.load_torchvision_state_dict(sd)
    assert skipped == sorted(k for k in sd if SE_OR_CLASSIFIER.fullmatch(k))
    assert any(".fc1." in k for k in skipped) and any(k.startswith("classifier.") for k in skipped)
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k


@helpers.needs_torchvision
def test_manifest_matches_torchvision():
    sd = _torchvision_model("b0").state_dict()
    with open(MANIFEST) as f:
        assert {k: list(v.shape) for k, v in sd.items()} == json.load(f)["keys"]


@helpers.needs_torchvision
@pytest.mark.parametrize("variant", VARIANTS)
def test_structure_matches_torchvision(variant):
    """Every variant on the meta device: the same keys and shapes (minus SE and classifier), convs,
    batch-norm settings, drop-path probabilities and activation positions as torchvision's."""
    with torch.device("meta"):
        tv, model = _torchvision_model(variant), EfficientNetBackbone(variant)
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in tv.state_dict().items() if not SE_OR_CLASSIFIER.fullmatch(k)}
    tv_modules = dict(tv.named_modules())
    acts = set()
    for name, m in model.named_modules():
        ref = tv_modules[name]
        if isinstance(m, nn.Conv2d):
            assert (m.kernel_size, m.stride, m.padding, m.groups) == \
                (ref.kernel_size, ref.stride, ref.padding, ref.groups), name
        elif isinstance(m, nn.BatchNorm2d):
            assert (m.eps, m.momentum) == (ref.eps, ref.momentum), name
        elif isinstance(m, StochasticDepth):
            assert m.p == ref.p and ref.mode == "row", name
        elif isinstance(m, MBConv):
            assert m.use_res_connect == ref.use_res_connect, name
        elif isinstance(m, nn.LeakyReLU):
            acts.add(name)
    assert acts == {n for n, m in tv.named_modules() if isinstance(m, nn.SiLU)
                    and type(tv_modules[n.rsplit(".", 1)[0]]).__name__ != "SqueezeExcitation"}


@helpers.needs_torchvision
@pytest.mark.parametrize("variant", ["b0", "b5"])
def test_load_torchvision_state_dict(variant):
    torch.manual_seed(0)
    sd = _torchvision_model(variant).state_dict()
    for k, v in sd.items():  # make the batch-norm buffers distinguishable from a fresh init
        if v.is_floating_point():
            v.add_(torch.rand_like(v))
    model = EfficientNetBackbone(variant)
    skipped = model.load_torchvision_state_dict(sd)
    assert skipped == sorted(k for k in sd if SE_OR_CLASSIFIER.fullmatch(k))
    assert sum(k.startswith("classifier.") for k in skipped) == 2
    assert sum(".fc" in k for k in skipped) == 4 * len(_blocks(model))
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k


@helpers.needs_torchvision
def test_matches_torchvision_without_se():
    """torchvision's efficientnet_b0 with SE removed and SiLU -> LeakyReLU(0.01) computes our
    features, in eval and (same seed: the same drop-path draws) in training."""
    torch.manual_seed(0)
    tv = _torchvision_model("b0")
    for cls, new in (("SqueezeExcitation", nn.Identity), ("SiLU", partial(nn.LeakyReLU, 0.01, inplace=True))):
        for name, m in list(tv.named_modules()):  # SE first: its own SiLU goes with it
            if type(m).__name__ == cls:
                parent, _, leaf = name.rpartition(".")
                setattr(tv.get_submodule(parent), leaf, new())
    model = EfficientNetBackbone("b0")
    model.load_torchvision_state_dict(tv.state_dict())
    x = torch.randn(4, 3, 65, 47)
    for train in (False, True):
        tv.train(train)
        model.train(train)
        with torch.no_grad():
            torch.manual_seed(5)
            ref = x
            refs = []
            for i, layer in enumerate(tv.features):
                ref = layer(ref)
                if i in (2, 3, 5, 8):
                    refs.append(ref)
            torch.manual_seed(5)
            out = model(x)
        for y, r in zip(out.values(), refs):
            assert r.abs().max() > 0
            torch.testing.assert_close(y, r, rtol=0, atol=0)  # the same operations in the same order


# ----------------------------------------------------------------------------- bad input


def test_bad_arguments():
    for bad in ("b8", "B0", "efficientnet_b0", 0, None):
        with pytest.raises(ValueError, match="EfficientNetBackbone: variant must be one of"):
            EfficientNetBackbone(bad)
    for bad in (-0.1, 1.5, "0.2", True):
        with pytest.raises(ValueError, match="stochastic_depth_prob must be"):
            EfficientNetBackbone("b0", stochastic_depth_prob=bad)
    with pytest.raises(TypeError, match="norm_layer must be callable"):
        EfficientNetBackbone("b0", norm_layer="bn")
    with pytest.raises(TypeError, match="activation must be callable"):
        EfficientNetBackbone("b0", activation=3)


def test_bad_state_dict():
    model = EfficientNetBackbone("b0")
    good = _manifest_state_dict()
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        model.load_torchvision_state_dict([("features.0.0.weight", torch.zeros(32, 3, 3, 3))])
    missing = dict(good)
    del missing["features.1.0.block.0.1.running_var"]
    with pytest.raises(ValueError, match=r"state_dict has no 'features\.1\.0\.block\.0\.1\.running_var'"):
        model.load_torchvision_state_dict(missing)
    wrong = dict(good, **{"features.8.0.weight": torch.zeros(1280, 320, 3, 3)})
    with pytest.raises(ValueError, match=r"state_dict\['features\.8\.0\.weight'\] has shape \(1280, 320, 3, 3\)"):
        model.load_torchvision_state_dict(wrong)
    # an SE-like key where our block has no SE slot (index 0 is the depthwise conv here)
    for extra in ("features.1.0.block.0.fc1.weight", "features.9.weight", "backbone.features.0.0.weight"):
        with pytest.raises(ValueError, match=re.escape(repr(extra))):
            model.load_torchvision_state_dict(dict(good, **{extra: torch.zeros(1)}))
    with torch.device("meta"):
        b5 = EfficientNetBackbone("b5")
    with pytest.raises(ValueError, match="efficientnet_b5"):
        b5.load_torchvision_state_dict(good)
    # a failed load changes nothing
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError):
        model.load_torchvision_state_dict(wrong)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
