"""Autograd of the unpooling family: gradcheck, the backward ops called directly, low-precision
accumulation, deterministic-algorithms mode, no double backward. Part of the unpooling family's
tests (docs/design.md §5.1): test_unpool_*.py.
"""
import random

import pytest
import torch

import fastseg.ops as fops
from fastseg.reference import unpool as R

import helpers
from helpers import LAYOUTS, assert_same, make_layout, torch_gen
import unpool_cases as U
from unpool_cases import GEOMETRIES, norm_geometry, randn
from unpool_cases.samples import distinct, op_calls, pool_fits

pytestmark = helpers.needs_ops


# ============================================================================ autograd


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradcheck_max_unpool2d(device, layout):
    gen = torch_gen(21)
    # unique indices: non-overlapping pooling (k == s), and a random permutation of positions
    for k, s, shape in ((2, 2, (2, 2, 6, 6)), ((2, 3), (2, 3), (1, 3, 4, 6)), (3, 3, (1, 1, 3, 3))):
        x = randn(shape, torch.float64, device, gen)
        v, idx = U.pool_indices(x, k, s, 0, False)
        v = make_layout(v, layout).requires_grad_(True)
        idx = make_layout(idx, layout)
        assert torch.autograd.gradcheck(lambda t: fops.max_unpool2d(t, idx, k, s), (v,))
        bigger = (shape[-2] + 1, shape[-1] + 1)  # the same indices name other positions: still unique
        assert torch.autograd.gradcheck(lambda t: fops.max_unpool2d(t, idx, k, s, 0, bigger), (v,))
    h, w, H, W = 3, 3, 6, 6
    perm = torch.stack([torch.randperm(H * W, generator=gen)[: h * w] for _ in range(4)]).view(2, 2, h, w)
    v = make_layout(randn((2, 2, h, w), torch.float64, device, gen), layout).requires_grad_(True)
    idx = make_layout(perm.to(device), layout)
    assert torch.autograd.gradcheck(lambda t: fops.max_unpool2d(t, idx, 2), (v,))
    assert torch.autograd.gradcheck(lambda t: fops.max_unpool2d(t[0], idx[0], 2), (v,))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradcheck_max_pool2d_compact(device, layout):
    for geometry in GEOMETRIES:
        k, s, p, c = geometry
        shape = (1, 2, 5, 6)
        if not pool_fits(shape, k, s, p, c):
            continue
        x = make_layout(distinct(shape, device, 3), layout).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda t: fops.max_pool2d_compact(t, k, s, p, c)[0], (x,)), geometry


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradcheck_max_unpool2d_compact(device, layout):
    rng = random.Random(0)
    gen = torch_gen(22)
    # k <= s: windows do not overlap, so every offset names a different position
    for (k, s, p), out in (((2, 2, 0), None), (((2, 3), (2, 3), (1, 1)), None), ((2, 3, 0), (7, 9)),
                           ((1, 2, 0), None)):
        kk, ss, pp = norm_geometry(k, s, p)
        h, w = 3, 3
        H, W = U.unpool_hw(h, w, k, s, p, out)
        off = U.random_valid_offsets(rng, gen, (2, 2, h, w), kk, ss, pp, H, W).to(device)
        v = make_layout(randn((2, 2, h, w), torch.float64, device, gen), layout).requires_grad_(True)
        off = make_layout(off, layout)
        assert torch.autograd.gradcheck(lambda t: fops.max_unpool2d_compact(t, off, k, s, p, out), (v,))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradcheck_scale_ops(device, layout):
    x = make_layout(randn((2, 2, 3, 4), torch.float64, device, torch_gen(23)), layout).requires_grad_(True)
    for scale in (1, 2, (2, 3), (3, 1)):
        assert torch.autograd.gradcheck(lambda t: fops.unpool_nearest2d(t, scale), (x,))
        assert torch.autograd.gradcheck(lambda t: fops.unpool_bed_of_nails2d(t, scale), (x,))


def test_max_unpool2d_grad_with_duplicates_is_a_gather(device):
    """PyTorch's (and fastseg's) gradient of max_unpool2d is grad_out.gather(indices): every
    duplicate receives the gradient of its output position, the winner or not."""
    v = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], device=device, requires_grad=True)
    idx = torch.tensor([[[[5, 5], [5, 0]]]], device=device)
    gy = torch.arange(16, dtype=torch.float32, device=device).view(1, 1, 4, 4)
    (gv,) = torch.autograd.grad(fops.max_unpool2d(v, idx, 2), v, gy)
    assert_same(gv.cpu(), torch.tensor([[[[5.0, 5.0], [5.0, 0.0]]]]))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_backward_ops_called_directly(device, layout):
    """The backward ops are public dispatcher ops: any layout of grad_output and of the indices."""
    gen = torch_gen(24)
    D = torch.ops.fastseg
    x = randn((2, 3, 6, 7), torch.float32, device, gen)
    v, idx = U.pool_indices(x, 3, 2, 1, False)  # overlapping windows
    g = randn((2, 3, 6, 7), torch.float32, device, gen)
    # max_unpool2d_backward: gather
    exp = g.cpu().reshape(2, 3, -1).gather(2, idx.cpu().reshape(2, 3, -1)).view(idx.shape)
    assert_same(D.max_unpool2d_backward.default(make_layout(g, layout), make_layout(idx, layout)).cpu(), exp)
    # max_pool2d_compact_backward: scatter-add into the input
    _, off = R.max_pool2d_compact(x.cpu(), 3, 2, 1)
    gv = randn(v.shape, torch.float64, device, gen)
    exp = torch.zeros(2, 3, 6 * 7, dtype=torch.float64).scatter_add_(
        2, idx.cpu().reshape(2, 3, -1), gv.cpu().reshape(2, 3, -1)).view(2, 3, 6, 7)
    got = D.max_pool2d_compact_backward.default(make_layout(gv, layout), make_layout(off.to(device), layout),
                                                [6, 7], [3, 3], [2, 2], [1, 1])
    torch.testing.assert_close(got.cpu(), exp)
    # max_unpool2d_compact_backward: gather at the offsets' positions
    exp = g.cpu().reshape(2, 3, -1).gather(2, R.compact_to_indices(off, 3, 2, 1, 7).reshape(2, 3, -1)).view(off.shape)
    got = D.max_unpool2d_compact_backward.default(make_layout(g, layout), make_layout(off.to(device), layout),
                                                  [3, 3], [2, 2], [1, 1])
    assert_same(got.cpu(), exp)
    # scale ops
    g = randn((2, 3, 6, 9), torch.float64, device, gen)
    exp = g.cpu().view(2, 3, 3, 2, 3, 3).sum((3, 5))
    torch.testing.assert_close(D.unpool_nearest2d_backward.default(make_layout(g, layout), [2, 3]).cpu(), exp)
    assert_same(D.unpool_bed_of_nails2d_backward.default(make_layout(g, layout), [2, 3]).cpu(), g.cpu()[..., ::2, ::3])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_low_precision_backward_accumulates_in_float(device, dtype):
    """Gradient sums (max_pool2d_compact with overlapping windows, unpool_nearest2d blocks) are
    accumulated in float (at::opmath_type) and rounded once: big + 8 x 1 must not lose the ones,
    whichever order the kernel adds them in."""
    big = 2048.0 if dtype == torch.float16 else 256.0
    exact = torch.tensor(big + 8.0, dtype=dtype)  # representable: spacing there is 2
    x = torch.zeros(1, 1, 5, 5, dtype=dtype, device=device)
    x[0, 0, 2, 2] = 1.0  # the max of the 9 windows (3x3, stride 1, padding 1) that cover it
    for first in (True, False):
        gy = torch.ones(1, 1, 5, 5, dtype=dtype, device=device)
        gy[0, 0, 1, 1] = gy[0, 0, 3, 3] = 1.0
        gy[0, 0, (1 if first else 3), (1 if first else 3)] = big
        xg = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(fops.max_pool2d_compact(xg, 3, 1, 1)[0], xg, gy)
        assert gx[0, 0, 2, 2].cpu() == exact, (first, gx[0, 0, 2, 2].item(), exact.item())
        g_near = torch.ones(1, 1, 3, 3, dtype=dtype, device=device)
        g_near[0, 0, (0 if first else 2), (0 if first else 2)] = big
        xs = torch.zeros(1, 1, 1, 1, dtype=dtype, device=device, requires_grad=True)
        (gs,) = torch.autograd.grad(fops.unpool_nearest2d(xs, 3), xs, g_near)
        assert gs.reshape(()).cpu() == exact, (first, gs.item(), exact.item())


def test_deterministic_algorithms_mode(device):
    """With torch.use_deterministic_algorithms(True) every op and its backward either runs and
    gives the same bits twice, or raises PyTorch's standard "does not have a deterministic
    implementation" error (only allowed on CUDA; the CPU kernels have no atomics)."""
    calls = op_calls(device)
    old = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for name, fn, x in calls:
            results = []
            for _ in range(2):
                xg = x.detach().requires_grad_(True)
                try:
                    y = fn(xg)
                    (g,) = torch.autograd.grad(y, xg, torch.ones_like(y))
                except RuntimeError as e:
                    assert device == "cuda" and "deterministic" in str(e), f"{name}: {e}"
                    break
                results.append((y.detach(), g))
            if len(results) == 2:
                assert_same(results[0][0], results[1][0], name)
                assert_same(results[0][1], results[1][1], name)
    finally:
        torch.use_deterministic_algorithms(old)


@pytest.mark.parametrize("op", U.OPS)
def test_double_backward_raises(device, op):
    name, fn, x = next(c for c in op_calls(device) if c[0] == op)
    x = x.detach().requires_grad_(True)
    y = fn(x)
    gy = torch.randn_like(y).requires_grad_(True)
    (gx,) = torch.autograd.grad(y, x, gy, create_graph=True)
    assert gx.requires_grad
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        torch.autograd.grad(gx.sum(), gy)
