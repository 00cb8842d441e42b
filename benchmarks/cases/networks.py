"""Whole networks (`fastseg.models`) at their papers' input sizes, in one module tree and on one
set of weights:

  fastseg        the network as built (fastseg's layers)
  twin           the same model with `reference=True` (`fastseg.nn.set_reference`): the
                 plain-PyTorch form users would write (F.max_pool2d indices + F.max_unpool2d,
                 F.conv_transpose2d + slicing + torch.cat)
  twin_compiled  the twin under torch.compile (inductor): what a user would try instead (timed,
                 not compared: its dropout masks come from inductor's own generator)

Mode fwd is inference (`model.eval()`, no_grad); fwd+bwd is one training step's forward and
backward (`model.train()`: batch-statistics BN, dropout), the gradients of every parameter
compared between the variants. All variants share the parameters, so the agreement check covers
every weight gradient. Bytes are not meaningful for a whole network (0: no GB/s column).

Sizes: FCN 500x500 (PASCAL VOC), DeconvNet 224x224 batch 8, SegNet 360x480 batch 4 (CamVid),
U-Net 572x572 (the paper's tile).
"""
import math

import torch

from fastseg import models
from fastseg import nn as fnn

from ..harness import Case, State, Variant, register

# case name -> (builder, kwargs, full [N, H, W], quick [N, H, W], classes)
NETWORKS = {
    "net_fcn32s": ("fcn32s", {}, (1, 500, 500), (1, 250, 250), 21),
    "net_fcn16s": ("fcn16s", {}, (1, 500, 500), (1, 250, 250), 21),
    "net_fcn8s": ("fcn8s", {}, (1, 500, 500), (1, 250, 250), 21),
    "net_deconvnet": ("deconvnet", {}, (8, 224, 224), (2, 224, 224), 21),
    "net_segnet": ("segnet", {}, (4, 360, 480), (1, 360, 480), 11),
    "net_unet": ("unet", {}, (1, 572, 572), (1, 572, 572), 2),
}
SMALL = {"fcn32s": (1, 40, 40), "fcn16s": (1, 40, 40), "fcn8s": (1, 40, 40), "deconvnet": (2, 193, 193),
         "segnet": (2, 45, 60), "unet": (1, 188, 188)}


def _randomize(model: torch.nn.Module) -> None:
    """Random weights of a sensible scale: FCN's zero-initialised score layers would make every
    output (and most gradients) zero, which the agreement check could not tell from a bug."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point() and not name.endswith(("running_mean", "running_var")):
                fan_in = t[0].numel() if t.dim() > 1 else 1
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(fan_in))


def _setup(builder, kwargs, full, quick, classes):
    def setup(device, size):
        if size == "small":
            n, h, w = SMALL[builder]
            model = models.get_model(builder, num_classes=classes, width=8, **kwargs)
        else:
            n, h, w = full if size == "full" else quick
            model = models.get_model(builder, num_classes=classes, **kwargs)
        _randomize(model)
        model = model.to(device)
        x = torch.randn(n, 3, h, w, device=device)
        with torch.no_grad():
            out_shape = model.eval()(x[:1]).shape[1:]
        params = list(model.parameters())
        return State(model=model, x=x, leaves=params, compiled=None,
                     grad_out=torch.randn(n, *out_shape, device=device) / math.sqrt(out_shape.numel()),
                     shapes={"input": [n, 3, h, w], "output": [n, *out_shape]},
                     notes={"parameters": sum(p.numel() for p in params)})
    return setup


def _run(state: State, reference: bool, compiled: bool = False):
    model = state.model
    fnn.set_reference(model, reference)
    model.train(torch.is_grad_enabled())  # fwd: inference; fwd+bwd: a training step
    torch.manual_seed(0)  # the same dropout masks in every variant
    if not compiled:
        return model(state.x)
    if state.compiled is None:
        state.compiled = torch.compile(model, fullgraph=True)
    return state.compiled(state.x)


def _no_bytes(state, mode, variant):
    return 0


for _name, (_builder, _kwargs, _full, _quick, _classes) in NETWORKS.items():
    register(Case(
        _name, "network",
        f"{_builder} at {_full[0]}x3x{_full[1]}x{_full[2]}: fastseg vs its plain-PyTorch twin (same weights), "
        "eager and compiled",
        _setup(_builder, _kwargs, _full, _quick, _classes),
        [Variant("fastseg", lambda s: _run(s, False), kind="fastseg"),
         Variant("twin", lambda s: _run(s, True), description="the same model, reference=True"),
         Variant("twin_compiled", lambda s: _run(s, True, compiled=True), checked=False,
                 description="the twin under torch.compile(fullgraph=True) (inductor); not compared here: "
                             "inductor draws dropout masks from its own generator and fuses BN's batch "
                             "statistics (tests/test_models.py compares compiled and eager models)")],
        _no_bytes, atol=2e-3, rtol=2e-3, min_repeats=3, tags=("network",)))
