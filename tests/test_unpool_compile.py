"""The unpooling ops and PyTorch's machinery: torch.library.opcheck of every forward and backward
op, torch.compile (aot_eager and inductor), torch.export. Part of the unpooling family's tests
(docs/design.md §5.1): test_unpool_*.py.
"""
import pytest
import torch

import fastseg.nn as fnn
from fastseg.reference import unpool as R

import helpers
from helpers import make_layout, torch_gen
import unpool_cases as U
from unpool_cases import randn
from unpool_cases.samples import op_calls

pytestmark = helpers.needs_ops


# ============================================================================ opcheck


def _opcheck_samples(device, requires_grad):
    """(op overload, args) for every forward and backward dispatcher op: contiguous, channels-last
    and non-contiguous inputs, an empty batch, and low precision."""
    gen = torch_gen(26)
    D = torch.ops.fastseg
    out = []
    for layout, dtype, shape in (("contiguous", torch.float32, (2, 3, 6, 5)),
                                 ("channels_last", torch.float64, (1, 4, 5, 7)),
                                 ("noncontiguous", torch.float16, (0, 2, 4, 4))):
        H, W = shape[-2:]
        x = make_layout(randn(shape, dtype, device, gen), layout)
        v, idx = U.pool_indices(x, 3, 2, 1, False)
        _, off = R.max_pool2d_compact(x.cpu(), 3, 2, 1)
        v, idx, off = make_layout(v, layout), make_layout(idx, layout), make_layout(off.to(device), layout)
        rg = requires_grad
        xg = x.detach().requires_grad_(rg)
        vg = v.detach().requires_grad_(rg)
        g_out = make_layout(randn(shape, dtype, device, gen), layout)
        g_v = make_layout(randn(v.shape, dtype, device, gen), layout)
        g_near = make_layout(randn(shape[:2] + (H * 2, W * 3), dtype, device, gen), layout)
        backward_ops = [
            (D.max_unpool2d_backward.default, (g_out, idx)),
            (D.max_pool2d_compact_backward.default, (g_v, off, [H, W], [3, 3], [2, 2], [1, 1])),
            (D.max_unpool2d_compact_backward.default, (g_out, off, [3, 3], [2, 2], [1, 1])),
            (D.unpool_nearest2d_backward.default, (g_near, [2, 3])),
            (D.unpool_bed_of_nails2d_backward.default, (g_near, [2, 3])),
        ]
        # the backward ops are not differentiable (no double backward): checked without grad only
        out += [] if requires_grad else backward_ops
        out += [
            (D.max_unpool2d.default, (vg, idx, [3, 3], [2, 2], [1, 1], [H, W])),
            (D.max_pool2d_compact.default, (xg, [3, 3], [2, 2], [1, 1], False)),
            (D.max_pool2d_compact.default, (xg, [2, 3], [2, 1], [1, 0], True)),
            (D.max_unpool2d_compact.default, (vg, off, [3, 3], [2, 2], [1, 1], [H, W])),
            (D.unpool_nearest2d.default, (xg, [2, 3])),
            (D.unpool_bed_of_nails2d.default, (xg, [2, 3])),
        ]
    return out


@pytest.mark.parametrize("requires_grad", [False, True], ids=["no_grad", "grad"])
def test_opcheck(device, requires_grad):
    failures = []
    for op, args in _opcheck_samples(device, requires_grad):
        try:
            helpers.run_opcheck(op, args)
        except Exception as e:  # collect all, report together
            shapes = [tuple(a.shape) + (str(a.dtype), a.stride()) if isinstance(a, torch.Tensor) else a for a in args]
            failures.append(f"{op}: {shapes}\n    {type(e).__name__}: {str(e)[:800]}")
    assert not failures, "\n".join(failures)


# ============================================================================ torch.compile / export


class SegNetLike(torch.nn.Module):
    """Encoder-decoder with every unpooling layer: compact pool/unpool pair around a conv, torch's
    MaxPool2d(return_indices) with fastseg's MaxUnpool2d, nearest and bed-of-nails upsampling."""

    def __init__(self, c=4):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1)
        self.pool_c = fnn.MaxPool2dCompact(2, 2)
        self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1)
        self.unpool_c = fnn.MaxUnpool2dCompact(2, 2)
        self.pool_t = torch.nn.MaxPool2d(3, 2, 1, return_indices=True)
        self.unpool_t = fnn.MaxUnpool2d(3, 2, 1)
        self.near = fnn.UnpoolNearest2d(2)
        self.bed = fnn.UnpoolBedOfNails2d((1, 2))

    def forward(self, x):
        y = self.conv1(x)
        v, off = self.pool_c(y)
        v = self.conv2(v)
        y = self.unpool_c(v, off, output_size=y.shape)
        v, idx = self.pool_t(y)
        y = self.unpool_t(torch.relu(v), idx, output_size=y.shape[-2:])
        y = y[..., :y.shape[-2] // 2 * 2, :y.shape[-1] // 2 * 2]
        return self.near(y[..., ::2, ::2]) + y, self.bed(v)


def _segnet(device, dtype=torch.float32):
    torch.manual_seed(0)
    return SegNetLike().to(device=device, dtype=dtype)


class TinyUnpoolNet(torch.nn.Module):
    """Every op once, no convolutions: keeps inductor's C++ compile time small."""

    def __init__(self):
        super().__init__()
        self.pool_c = fnn.MaxPool2dCompact(3, 2, 1)
        self.unpool_c = fnn.MaxUnpool2dCompact(3, 2, 1)
        self.unpool = fnn.MaxUnpool2d(3, 2, 1)
        self.near = fnn.UnpoolNearest2d(2)
        self.bed = fnn.UnpoolBedOfNails2d(2)

    def forward(self, x, idx):
        v, off = self.pool_c(x)
        y = self.unpool_c(v * 2.0, off, output_size=x.shape) + self.unpool(v, idx, output_size=x.shape)
        return self.near(y) - self.bed(y)


def test_compile_fullgraph_inductor(device):
    """The real compiler, forward and backward (one compile: tens of seconds on a CPU)."""
    x = randn((2, 3, 9, 10), torch.float32, device, torch_gen(27))
    _, idx = U.pool_indices(x, 3, 2, 1, False)
    helpers.check_compile(TinyUnpoolNet(), x.requires_grad_(True), idx, backend="inductor")


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_compile_fullgraph_aot_eager(device, dynamic, layout):
    m = _segnet(device, torch.float64)
    if layout == "channels_last":
        m = m.to(memory_format=torch.channels_last)
    x = make_layout(randn((2, 4, 8, 11), torch.float64, device, torch_gen(28)), layout).requires_grad_(True)
    helpers.check_compile(m, x, backend="aot_eager", dynamic=dynamic, exact=True)


@pytest.mark.parametrize("op", U.OPS)
def test_compile_each_op(device, op):
    name, fn, x = next(c for c in op_calls(device) if c[0] == op)
    helpers.check_compile(fn, x.detach().requires_grad_(True), backend="aot_eager", exact=True)


def test_export(device):
    m = _segnet(device).eval()
    x = randn((2, 4, 9, 10), torch.float32, device, torch_gen(29))
    ep = helpers.check_export(m, (x,))
    targets = " ".join(helpers.graph_targets(ep))
    for op in ("max_pool2d_compact", "max_unpool2d_compact", "max_unpool2d", "unpool_nearest2d",
               "unpool_bed_of_nails2d"):
        assert f"fastseg.{op}" in targets, f"{op} not in the exported graph: {targets}"


def test_export_dynamic_batch(device):
    m = _segnet(device).eval()
    x = randn((2, 4, 8, 10), torch.float32, device, torch_gen(30))
    batch = torch.export.Dim("batch", min=1, max=16)
    helpers.check_export(m, (x,), dynamic_shapes={"x": {0: batch}},
                         more_args=[(randn((5, 4, 8, 10), torch.float32, device, torch_gen(31)),)])
