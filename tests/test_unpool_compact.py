"""max_pool2d_compact and max_unpool2d_compact (uint8 window offsets), against F.max_pool2d /
F.max_unpool2d with the equivalent int64 indices and fastseg.reference (unpool_cases/compact_*.py).
Part of the unpooling family's tests (docs/design.md §5.1): test_unpool_*.py.
"""
import random

import pytest
import torch
import torch.nn.functional as F

import fastseg.ops as fops
from fastseg.reference import unpool as R

import helpers
from helpers import LAYOUTS, SHAPES, assert_same, make_layout, torch_gen
import unpool_cases as U
from unpool_cases import (GEOMETRIES, check_max_pool2d_compact, check_max_unpool2d_compact, geometry_id,
                          norm_geometry, randn)
from unpool_cases.samples import DTYPE_PARAMS, GEOM_PARAMS, pool_fits

pytestmark = helpers.needs_ops


# ============================================================================ max_pool2d_compact


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_max_pool2d_compact_vs_pytorch(device, geometry, dtype, layout):
    k, s, p, ceil_mode = geometry
    ran = 0
    for si, shape in enumerate(SHAPES):
        if not pool_fits(shape, k, s, p, ceil_mode):
            continue
        gen = torch_gen(si)
        for values in ("randn", "ties"):
            x = randn(shape, dtype, "cpu", gen) if values == "randn" else \
                U.tie_heavy(shape, dtype, "cpu", gen, nan_prob=0.15, inf_prob=0.15)
            check_max_pool2d_compact(make_layout(x.to(device), layout), k, s, p, ceil_mode,
                                     desc=f"shape={shape} values={values}")
            ran += 1
    assert ran > 0


def test_max_pool2d_compact_unbatched(device):
    x = randn((3, 7, 6), torch.float32, device, torch_gen(2))
    for k, s, p, c in GEOMETRIES:
        v, off = check_max_pool2d_compact(x, k, s, p, c)
        assert v.dim() == 3 and off.dim() == 3
        v4, off4 = fops.max_pool2d_compact(x.unsqueeze(0), k, s, p, c)
        assert_same(v, v4[0])
        assert_same(off, off4[0])


def test_max_pool2d_compact_ties_go_to_first(device):
    """Constant input: every window's first in-plane element (in the full window, padding
    included, row-major), as F.max_pool2d."""
    x = torch.ones(1, 1, 4, 4, device=device)
    _, off = fops.max_pool2d_compact(x, 3, 1, 1)
    # window (0,0) spans rows/cols -1..1: first real element (0,0) is at (1,1) of the window -> 4;
    # interior windows start inside the image -> 0; windows in row 0 start one row above -> 3
    expected = torch.tensor([[4, 3, 3, 3], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], dtype=torch.uint8)
    assert_same(off[0, 0].cpu(), expected)
    check_max_pool2d_compact(x, 3, 1, 1)
    check_max_pool2d_compact(torch.full((2, 3, 5, 7), float("-inf"), device=device), 3, 2, 1, True)


def test_max_pool2d_compact_nan(device):
    """NaN propagates, and the argmax is the one F.max_pool2d picks (with several NaNs in a
    window, PyTorch's kernels keep the last one: `val > max || isnan(val)`)."""
    nan = float("nan")
    x = torch.tensor([[[[1.0, nan, 3.0, 0.0], [nan, 2.0, 5.0, nan]]]], device=device)
    v, off = fops.max_pool2d_compact(x, 2)
    assert torch.isnan(v[0, 0, 0, 0]) and torch.isnan(v[0, 0, 0, 1])
    _, ei = F.max_pool2d(x.cpu(), 2, return_indices=True)
    assert_same(R.compact_to_indices(off.cpu(), (2, 2), (2, 2), (0, 0), 4), ei)
    check_max_pool2d_compact(x, 2)
    for dtype in helpers.DTYPES:
        xd = U.tie_heavy((2, 2, 6, 7), dtype, device, torch_gen(4), nan_prob=0.4)
        check_max_pool2d_compact(xd, 3, 2, 1)
        check_max_pool2d_compact(make_layout(xd, "channels_last"), 2, 1, 0, True)


def test_max_pool2d_compact_largest_windows(device):
    """255-element windows: the largest uint8 offsets allows; the argmax in the last cell gives
    offset 254."""
    gen = torch_gen(8)
    x = randn((1, 2, 15, 17), torch.float32, device, gen)
    x[0, 0, 14, 16] = 100.0
    v, off = check_max_pool2d_compact(x, (15, 17))
    assert int(off[0, 0, 0, 0]) == 254
    x = randn((1, 1, 3, 40), torch.float32, device, gen)
    check_max_pool2d_compact(x, (1, 255), 1, (0, 127))
    check_max_pool2d_compact(x.transpose(-1, -2), (255, 1), (3, 1), (127, 0), True)


def test_max_pool2d_compact_ceil_mode_windows_off_the_edge(device):
    gen = torch_gen(12)
    for H, W in ((5, 5), (6, 7), (2, 9), (1, 1)):
        x = randn((2, 2, H, W), torch.float64, device, gen)
        for k, s, p in ((2, 2, 0), (3, 2, 1), (3, 3, 1), (2, 3, 1), (4, 3, 2)):
            if pool_fits((2, 2, H, W), k, s, p, True):
                check_max_pool2d_compact(x, k, s, p, True)


def test_max_pool2d_compact_many_threads(device, kernel_form):
    gen = torch_gen(14)
    x = U.tie_heavy((2, 8, 40, 40), torch.float32, device, gen, nan_prob=0.02)
    with helpers.many_threads():
        check_max_pool2d_compact(x, 3, 2, 1)
        check_max_pool2d_compact(make_layout(x, "channels_last"), 2, 2, 0, True)


def test_max_pool2d_compact_empty_batch(device):
    x = torch.randn(0, 3, 5, 5, device=device)
    v, off = check_max_pool2d_compact(x, 2)
    assert v.shape == (0, 3, 2, 2) and off.dtype == torch.uint8
    check_max_pool2d_compact(make_layout(x, "channels_last"), 3, 2, 1, True)


# ============================================================================ max_unpool2d_compact


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_compact_round_trip_equals_int64_pair(device, geometry, dtype, layout):
    """fastseg's compact pool + compact unpool == F.max_pool2d(return_indices) + F.max_unpool2d,
    == fastseg's int64 max_unpool2d, for output_size None and the pooled input's size."""
    k, s, p, ceil_mode = geometry
    ran = 0
    for si, shape in enumerate(SHAPES):
        if not pool_fits(shape, k, s, p, ceil_mode):
            continue
        x = make_layout(randn(shape, dtype, device, torch_gen(si)), layout)
        values, offsets = fops.max_pool2d_compact(x, k, s, p, ceil_mode)
        ev, ei = F.max_pool2d(x.cpu(), k, s, p, 1, ceil_mode, return_indices=True)
        for output_size in (None, tuple(shape[2:]), list(shape)):
            try:
                expected = U.expected_max_unpool2d(ev, ei, k, s, p, output_size)
            except (ValueError, RuntimeError):
                continue  # invalid size for this geometry, or pooled positions outside the default plane
            out = check_max_unpool2d_compact(values, offsets, k, s, p, output_size, desc=f"shape={shape}")
            if out.shape[-1] == shape[-1]:
                # same plane width: the pooled flat indices are the equivalent int64 indices
                # (otherwise they name other positions, and only the check above applies)
                assert_same(out.cpu(), expected)
                assert_same(out, fops.max_unpool2d(values, ei.to(device), k, s, p, output_size))
                ran += 1
    assert ran > 0


@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_max_unpool2d_compact_random_offsets(device, kernel_form, geometry):
    """Random in-plane offsets (overlapping windows give duplicate positions: the larger input
    position wins), every valid output size."""
    rng = random.Random(geometry_id(geometry))
    gen = torch_gen(15)
    k, s, p = norm_geometry(*geometry[:3])
    h, w = 3, 4
    H0, W0 = U.default_unpool_hw(h, w, k, s, p)
    for H in range(max(1, H0 - s[0] + 1), H0 + s[0]):
        for W in range(max(1, W0 - s[1] + 1), W0 + s[1]):
            off = U.random_valid_offsets(rng, gen, (2, 2, h, w), k, s, p, H, W)
            if off is None:
                continue
            v = randn((2, 2, h, w), torch.float32, device, gen)
            check_max_unpool2d_compact(v, off.to(device), *geometry[:3], output_size=(H, W))


def test_max_unpool2d_compact_empty_and_unbatched(device):
    v = torch.randn(0, 2, 3, 3, device=device)
    off = torch.zeros(0, 2, 3, 3, dtype=torch.uint8, device=device)
    assert check_max_unpool2d_compact(v, off, 2).shape == (0, 2, 6, 6)
    x = randn((2, 7, 7), torch.float32, device, torch_gen(3))
    v, off = fops.max_pool2d_compact(x, 3, 2, 1)
    out = check_max_unpool2d_compact(v, off, 3, 2, 1, (7, 7))
    assert out.shape == (2, 7, 7)
