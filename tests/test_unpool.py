"""Unpooling family: max_unpool2d, max_pool2d_compact / max_unpool2d_compact, unpool_nearest2d,
unpool_bed_of_nails2d (docs/design.md §5.1).

Expectations come from PyTorch (F.max_unpool2d, F.max_pool2d, F.interpolate) and from
fastseg.reference; see unpool_cases.py for the per-op checks. Generated inputs (>= 500 per op,
good and bad) live in test_unpool_fuzz.py.
"""
import random

import pytest
import torch
import torch.nn.functional as F

import fastseg.nn as fnn
import fastseg.ops as fops
from fastseg.reference import unpool as R

import helpers
from helpers import LAYOUTS, SHAPES, assert_same, make_layout, torch_gen
import unpool_cases as U
from unpool_cases import (GEOMETRIES, check_max_pool2d_compact, check_max_unpool2d, check_max_unpool2d_compact,
                          check_unpool_bed_of_nails2d, check_unpool_nearest2d, geometry_id, norm_geometry, randn)

pytestmark = helpers.needs_ops

helpers.register_bad_cases("unpool-named", "unpool_cases:named_bad_cases")
helpers.register_bad_cases("unpool-overflow", "unpool_cases:overflow_bad_cases")

GEOM_PARAMS = [pytest.param(g, id=geometry_id(g)) for g in GEOMETRIES]
DTYPE_PARAMS = [pytest.param(d, id=helpers.dtype_id(d)) for d in helpers.DTYPES]


def _pool_fits(shape, k, s, p, ceil_mode) -> bool:
    try:
        U.pool_hw(shape[2], shape[3], k, s, p, ceil_mode)
        return True
    except RuntimeError:
        return False


def _pooled(shape, geometry, dtype, device, seed, values="randn"):
    """x, then PyTorch's (values, indices) for it; None if the window does not fit."""
    k, s, p, ceil_mode = geometry
    if not _pool_fits(shape, k, s, p, ceil_mode):
        return None
    gen = torch_gen(seed)
    x = randn(shape, dtype, "cpu", gen) if values == "randn" else U.tie_heavy(shape, dtype, "cpu", gen, 0.1, 0.1)
    v, i = U.pool_indices(x, k, s, p, ceil_mode)
    return x.to(device), v.to(device), i.to(device)


def _other_layout(kind):
    return LAYOUTS[(LAYOUTS.index(kind) + 1) % len(LAYOUTS)]


# ============================================================================ max_unpool2d


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_max_unpool2d_pool_indices(device, geometry, dtype, layout):
    """Indices from F.max_pool2d, output_size None / (H, W) of the pooled input / 4 entries."""
    k, s, p, _ = geometry
    ran = 0
    for si, shape in enumerate(SHAPES):
        got = _pooled(shape, geometry, dtype, device, seed=si)
        if got is None:
            continue
        x, v, i = got
        v, i = make_layout(v, layout), make_layout(i, _other_layout(layout) if si % 2 else layout)
        for output_size in (None, tuple(shape[2:]), list(shape)):
            try:  # PyTorch decides which explicit sizes are valid here
                F.max_unpool2d(v.cpu(), i.cpu(), k, s, p, output_size)
            except (ValueError, RuntimeError):
                continue
            check_max_unpool2d(v, i, k, s, p, output_size, desc=f"shape={shape}")
            ran += 1
    assert ran > 0


@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_max_unpool2d_unbatched(device, geometry):
    k, s, p, _ = geometry
    got = _pooled((1, 3, 7, 8), geometry, torch.float32, device, seed=1)
    x, v, i = got
    for output_size in (None, (7, 8), [1, 3, 7, 8]):
        try:
            F.max_unpool2d(v[0].cpu(), i[0].cpu(), k, s, p, output_size)
        except (ValueError, RuntimeError):
            continue
        out = check_max_unpool2d(v[0], i[0], k, s, p, output_size)
        assert out.dim() == 3
        assert_same(out, fops.max_unpool2d(v, i, k, s, p, output_size)[0])


@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_max_unpool2d_every_valid_output_size(device, geometry):
    """Every output size strictly within stride of the default, with random in-range indices."""
    k, s, p, _ = geometry
    k, s, p = norm_geometry(k, s, p)
    gen = torch_gen(3)
    h, w = 3, 4
    H0, W0 = U.default_unpool_hw(h, w, k, s, p)
    for H in range(max(1, H0 - s[0] + 1), H0 + s[0]):
        for W in range(max(1, W0 - s[1] + 1), W0 + s[1]):
            v = randn((2, 2, h, w), torch.float32, device, gen)
            idx = torch.randint(0, H * W, (2, 2, h, w), generator=gen).to(device)
            check_max_unpool2d(v, idx, k, s, p, (H, W))
            check_max_unpool2d(v, idx, k, s, p, [2, 2, H, W], grad=False)


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_max_unpool2d_duplicates_larger_position_wins(device, dtype):
    """Duplicate indices, constructed by hand: the value at the larger input position wins."""
    v = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=dtype, device=device)
    # positions 0, 1, 2 all point at output 5; position 3 at output 0
    idx = torch.tensor([[[[5, 5], [5, 0]]]], device=device)
    out = fops.max_unpool2d(v, idx, 2)
    expected = torch.zeros(1, 1, 4, 4, dtype=dtype)
    expected.view(-1)[5] = 3.0
    expected.view(-1)[0] = 4.0
    assert_same(out.cpu(), expected)
    # the same with the duplicates in different windows of an overlapping geometry, and across rows
    v = torch.tensor([[[[7.0, -1.0, 5.0], [2.0, 9.0, -3.0]]]], dtype=dtype, device=device)
    idx = torch.tensor([[[[6, 6, 8], [8, 6, 0]]]], device=device)  # 3x3 s2 p1 -> default 3x5 plane
    out = fops.max_unpool2d(v, idx, 3, 2, 1)
    expected = torch.zeros(1, 1, 3, 5, dtype=dtype)
    expected.view(-1)[6] = 9.0  # positions 0, 1, 4 -> 4 wins
    expected.view(-1)[8] = 2.0  # positions 2, 3 -> 3 wins
    expected.view(-1)[0] = -3.0
    assert_same(out.cpu(), expected)
    check_max_unpool2d(v, idx, 3, 2, 1)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_max_unpool2d_duplicates_random(device, layout):
    """Many duplicates (indices drawn from a few positions): same as PyTorch on one thread and
    as the reference, in every layout."""
    gen = torch_gen(11)
    for geometry in GEOMETRIES:
        k, s, p = norm_geometry(*geometry[:3])
        h, w = 4, 5
        H, W = U.default_unpool_hw(h, w, k, s, p)
        v = randn((2, 3, h, w), torch.float32, device, gen)
        idx = torch.randint(0, min(H * W, 3), (2, 3, h, w), generator=gen).to(device)
        check_max_unpool2d(make_layout(v, layout), make_layout(idx, layout), *geometry[:3])


@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_max_unpool2d_in_window_duplicates(device, kernel_form, geometry):
    """Each index anywhere inside its own window (the gather path), so overlapping windows often
    name the same position with different values: the larger input position wins."""
    rng = random.Random(geometry_id(geometry))
    gen = torch_gen(17)
    k, s, p = norm_geometry(*geometry[:3])
    for h, w in ((3, 4), (5, 5), (1, 3)):
        H, W = U.default_unpool_hw(h, w, k, s, p)
        off = U.random_valid_offsets(rng, gen, (2, 3, h, w), k, s, p, H, W)
        if off is None:
            continue
        idx = R.compact_to_indices(off, k, s, p, W).expand(2, 3, h, w).contiguous().to(device)
        v = randn((2, 3, h, w), torch.float32, device, gen)
        for layout in LAYOUTS:
            check_max_unpool2d(make_layout(v, layout), make_layout(idx, layout), *geometry[:3])


@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_max_unpool2d_random_indices(device, geometry):
    """Random in-range indices that no pooling window could produce."""
    gen = torch_gen(5)
    k, s, p = norm_geometry(*geometry[:3])
    for h, w in ((1, 1), (3, 4), (5, 2)):
        H, W = U.default_unpool_hw(h, w, k, s, p)
        if H * W < 1:
            continue
        v = randn((2, 2, h, w), torch.float64, device, gen)
        idx = torch.randint(0, H * W, (2, 2, h, w), generator=gen).to(device)
        check_max_unpool2d(v, idx, *geometry[:3])


def test_max_unpool2d_perturbed_pool_indices(device, kernel_form):
    """Valid pooled planes with one index changed: moved outside its window, moved to the
    position a neighbouring (overlapping) window covers, or swapped with another window's."""
    gen = torch_gen(7)
    rng = random.Random(7)
    for geometry in GEOMETRIES:
        k, s, p, c = geometry
        got = _pooled((2, 2, 7, 9), geometry, torch.float32, device, seed=rng.randrange(1000))
        if got is None:
            continue
        x, v, idx = got
        H, W = 7, 9
        for trial in range(6):
            bad = idx.clone()
            flat = bad[1, 1].reshape(-1)
            a, b = rng.randrange(flat.numel()), rng.randrange(flat.numel())
            if trial % 3 == 0:
                flat[a] = rng.randrange(H * W)
            elif trial % 3 == 1:
                flat[a] = flat[b]
            else:
                flat[a], flat[b] = int(flat[b]), int(flat[a])
            bad[1, 1] = flat.view(bad.shape[-2:])
            check_max_unpool2d(v, bad, k, s, p, (H, W), desc=f"trial={trial}")


def test_max_unpool2d_one_bad_plane_among_good(device):
    """Planes are independent: one plane of random indices among pooled planes."""
    gen = torch_gen(9)
    x = randn((3, 4, 8, 8), torch.float32, device, gen)
    v, idx = U.pool_indices(x, 2, 2, 0, False)
    idx = idx.clone()
    idx[1, 2] = torch.randint(0, 64, idx[1, 2].shape, generator=gen).to(device)
    check_max_unpool2d(v, idx, 2, 2, 0)
    idx[2, 3, 0, 0] = 63  # one index in another window's region
    check_max_unpool2d(v, idx, 2, 2, 0)


def test_max_unpool2d_many_threads_deterministic(device, kernel_form):
    """Large planes with heavy duplication on several CPU threads (or on the GPU): the same
    result as PyTorch on one thread every time (PyTorch's own multi-threaded CPU kernel is not)."""
    gen = torch_gen(13)
    v = randn((2, 3, 64, 64), torch.float32, device, gen)
    idx_dup = torch.randint(0, 4, (2, 3, 64, 64), generator=gen).to(device)  # k=2 geometry, 128x128 plane
    x = randn((2, 3, 128, 128), torch.float32, device, gen)
    pv, pidx = U.pool_indices(x, 2, 2, 0, False)
    exp_dup = U.expected_max_unpool2d(v, idx_dup, 2, 2, 0, None)
    exp_pool = U.expected_max_unpool2d(pv, pidx, 2, 2, 0, None)
    with helpers.many_threads():
        for _ in range(3):
            assert_same(fops.max_unpool2d(v, idx_dup, 2).cpu(), exp_dup, "duplicates")
            assert_same(fops.max_unpool2d(pv, pidx, 2).cpu(), exp_pool, "pooled")
            cl = fops.max_unpool2d(make_layout(v, "channels_last"), make_layout(idx_dup, "channels_last"), 2)
            assert_same(cl.cpu(), exp_dup, "duplicates, channels-last")


def test_max_unpool2d_empty(device):
    for shape in ((0, 3, 4, 4), (0, 1, 1, 1)):
        v = torch.randn(shape, device=device)
        idx = torch.zeros(shape, dtype=torch.int64, device=device)
        check_max_unpool2d(v, idx, 2)
        check_max_unpool2d(make_layout(v, "channels_last"), idx, (3, 2), (2, 1), (1, 0), grad=False)


def test_max_unpool2d_1x1_planes(device):
    v = torch.tensor([[[[3.5]], [[-2.0]]]], device=device)
    idx = torch.tensor([[[[3]], [[0]]]], device=device)
    out = fops.max_unpool2d(v, idx, 2)
    expected = torch.zeros(1, 2, 2, 2)
    expected[0, 0, 1, 1] = 3.5
    expected[0, 1, 0, 0] = -2.0
    assert_same(out.cpu(), expected)
    out = fops.max_unpool2d(v, torch.zeros_like(idx), 1)
    assert_same(out.cpu(), v.cpu())


def test_unpool_moves_bits(device):
    """Unpooling only moves values: -0.0, NaN payloads, infinities and subnormals keep their bits."""
    specials = torch.tensor([-0.0, float("nan"), float("-inf"), float("inf"), 1e-40, -1e-45, 3.0, -0.0])
    x = specials.view(1, 2, 2, 2)
    for dtype, int_dtype in ((torch.float32, torch.int32), (torch.float64, torch.int64),
                             (torch.float16, torch.int16), (torch.bfloat16, torch.int16)):
        xd = x.to(dtype).to(device)
        bits = lambda t: t.detach().cpu().contiguous().view(int_dtype)  # noqa: E731
        idx = torch.tensor([[0, 3], [12, 15]]).expand(1, 2, 2, 2).contiguous().to(device)
        assert torch.equal(bits(fops.max_unpool2d(xd, idx, 2)),
                           bits(U.expected_max_unpool2d(xd, idx, 2, 2, 0, None))), dtype
        assert torch.equal(bits(fops.unpool_nearest2d(xd, 2)), bits(R.unpool_nearest2d(xd.cpu(), 2))), dtype
        assert torch.equal(bits(fops.unpool_bed_of_nails2d(xd, (2, 3))),
                           bits(R.unpool_bed_of_nails2d(xd.cpu(), (2, 3)))), dtype
        off = torch.tensor([[0, 1], [2, 3]], dtype=torch.uint8).expand(1, 2, 2, 2).contiguous().to(device)
        assert torch.equal(bits(fops.max_unpool2d_compact(xd, off, 2)),
                           bits(U.expected_max_unpool2d_compact(xd, off, 2, None, 0, None)[0])), dtype


# ============================================================================ max_pool2d_compact


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_max_pool2d_compact_vs_pytorch(device, geometry, dtype, layout):
    k, s, p, ceil_mode = geometry
    ran = 0
    for si, shape in enumerate(SHAPES):
        if not _pool_fits(shape, k, s, p, ceil_mode):
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
            if _pool_fits((2, 2, H, W), k, s, p, True):
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
        if not _pool_fits(shape, k, s, p, ceil_mode):
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


# ============================================================================ nearest / bed of nails


SCALES = (1, 2, 3, (2, 3), (3, 1), [1, 4])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_unpool_nearest2d(device, dtype, layout):
    for si, shape in enumerate(SHAPES):
        x = make_layout(randn(shape, dtype, device, torch_gen(si)), layout)
        for scale in SCALES:
            check_unpool_nearest2d(x, scale, desc=f"shape={shape}")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_unpool_bed_of_nails2d(device, dtype, layout):
    for si, shape in enumerate(SHAPES):
        x = make_layout(randn(shape, dtype, device, torch_gen(si)), layout)
        for scale in SCALES:
            check_unpool_bed_of_nails2d(x, scale, desc=f"shape={shape}")


def test_scale_ops_unbatched_and_hand_checked(device):
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], device=device)
    near = fops.unpool_nearest2d(x, (1, 2))
    assert_same(near.cpu(), torch.tensor([[[1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0]]]))
    bed = fops.unpool_bed_of_nails2d(x, (2, 1))
    assert_same(bed.cpu(), torch.tensor([[[1.0, 2.0], [0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]]))
    check_unpool_nearest2d(randn((3, 5, 4), torch.float32, device, torch_gen(1)), (2, 3))
    check_unpool_bed_of_nails2d(randn((3, 5, 4), torch.float32, device, torch_gen(1)), (3, 2))


def test_scale_ops_many_threads(device, kernel_form):
    x = randn((2, 16, 33, 31), torch.float32, device, torch_gen(16))
    with helpers.many_threads():
        for layout in LAYOUTS:
            check_unpool_nearest2d(make_layout(x, layout), (2, 3))
            check_unpool_bed_of_nails2d(make_layout(x, layout), 2)


# ============================================================================ any strides


def test_expanded_and_sliced_inputs(device, kernel_form):
    """Stride-0 (expanded) and offset/sliced views are accepted like any other strides."""
    gen = torch_gen(40)
    x = randn((1, 3, 8, 8), torch.float32, device, gen)
    v, idx = U.pool_indices(x, 2, 2, 0, False)
    ve, ie = v.expand(4, 3, 4, 4), idx.expand(4, 3, 4, 4)
    assert ve.stride(0) == 0
    check_max_unpool2d(ve, ie, 2, 2, 0, grad=False)
    vs = randn((2, 5, 6, 7), torch.float32, device, gen)[:, 1:4, 1:5, 2:6]  # storage offset, sliced
    check_max_unpool2d(vs, torch.randint(0, 64, vs.shape, generator=gen).to(device), 2)
    check_max_pool2d_compact(x.expand(3, 3, 8, 8), 3, 2, 1)
    check_max_pool2d_compact(vs, 2, 1, 1, True)
    _, off = R.max_pool2d_compact(x.cpu(), 2)
    check_max_unpool2d_compact(ve, off.to(device).expand(4, 3, 4, 4), 2, grad=False)
    check_unpool_nearest2d(x.expand(2, 3, 8, 8)[..., ::3, 1:], (2, 3))
    check_unpool_bed_of_nails2d(vs.transpose(-1, -2), 2)
    check_unpool_nearest2d(torch.randn(1, device=device).expand(2, 3, 4, 5), 2)


# ============================================================================ autograd


def _distinct(shape, device, seed):
    """float64 values that are all distinct and at least 1e-2 apart (no ties for finite differences)."""
    n = 1
    for d in shape:
        n *= d
    perm = torch.randperm(n, generator=torch_gen(seed)).to(torch.float64)
    return (perm / 100.0).view(shape).to(device)


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
        if not _pool_fits(shape, k, s, p, c):
            continue
        x = make_layout(_distinct(shape, device, 3), layout).requires_grad_(True)
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


def _op_calls(device):
    """(name, fn(x) -> differentiable output, x) for every op."""
    gen = torch_gen(25)
    x = randn((1, 2, 4, 4), torch.float64, device, gen)
    v, idx = U.pool_indices(x, 2, 2, 0, False)
    _, off = R.max_pool2d_compact(x.cpu(), 2)
    off = off.to(device)
    return [
        ("max_unpool2d", lambda t: fops.max_unpool2d(t, idx, 2), v),
        ("max_pool2d_compact", lambda t: fops.max_pool2d_compact(t, 2)[0], x),
        ("max_unpool2d_compact", lambda t: fops.max_unpool2d_compact(t, off, 2), v),
        ("unpool_nearest2d", lambda t: fops.unpool_nearest2d(t, 2), v),
        ("unpool_bed_of_nails2d", lambda t: fops.unpool_bed_of_nails2d(t, 2), v),
    ]


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
    calls = _op_calls(device)
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
    name, fn, x = next(c for c in _op_calls(device) if c[0] == op)
    x = x.detach().requires_grad_(True)
    y = fn(x)
    gy = torch.randn_like(y).requires_grad_(True)
    (gx,) = torch.autograd.grad(y, x, gy, create_graph=True)
    assert gx.requires_grad
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        torch.autograd.grad(gx.sum(), gy)


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
    name, fn, x = next(c for c in _op_calls(device) if c[0] == op)
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


# ============================================================================ nn layers


@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_nn_max_unpool2d_matches_torch(device, geometry):
    k, s, p, c = geometry
    torch_pool = torch.nn.MaxPool2d(k, s, p, ceil_mode=c, return_indices=True)
    ours, theirs = fnn.MaxUnpool2d(k, s, p), torch.nn.MaxUnpool2d(k, s, p)
    x = randn((2, 3, 9, 8), torch.float32, device, torch_gen(32))
    v, idx = torch_pool(x.cpu())
    v, idx = v.to(device), idx.to(device)
    with helpers.single_thread():
        for output_size in (None, x.size(), x.shape[-2:], list(x.shape[-2:])):
            try:
                expected = theirs(v.cpu(), idx.cpu(), output_size=output_size)
            except (ValueError, RuntimeError):
                continue
            assert_same(ours(v, idx, output_size=output_size).cpu(), expected)
            assert_same(ours(v, idx, output_size).cpu(), expected)  # positional, like torch's forward
        assert_same(ours(v[0], idx[0], x.shape[-2:]).cpu(), theirs(v[0].cpu(), idx[0].cpu(), x.shape[-2:]))
    assert fnn.MaxUnpool2d(2).stride in (2, (2, 2))
    assert "kernel_size" in repr(ours)


@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_nn_compact_layers(device, geometry):
    k, s, p, c = geometry
    x = randn((2, 3, 9, 8), torch.float32, device, torch_gen(33))
    ev, ei = torch.nn.MaxPool2d(k, s, p, ceil_mode=c, return_indices=True)(x.cpu())
    v, off = fnn.MaxPool2dCompact(k, s, p, ceil_mode=c)(x)
    assert_same(v.cpu(), ev)
    assert_same(R.compact_to_indices(off.cpu(), *norm_geometry(k, s, p), 8), ei)
    expected = U.expected_max_unpool2d(ev, ei, k, s, p, x.size())
    assert_same(fnn.MaxUnpool2dCompact(k, s, p)(v, off, output_size=x.size()).cpu(), expected)
    assert "ceil_mode" in repr(fnn.MaxPool2dCompact(k, s, p, ceil_mode=c))


def test_nn_scale_layers(device):
    x = randn((2, 3, 5, 4), torch.float32, device, torch_gen(34))
    for scale in (2, (2, 3)):
        expected = torch.nn.Upsample(scale_factor=scale, mode="nearest")(x.cpu())
        assert_same(fnn.UnpoolNearest2d(scale)(x).cpu(), expected)
        assert_same(fnn.UnpoolBedOfNails2d(scale)(x).cpu(), R.unpool_bed_of_nails2d(x.cpu(), scale))
    assert_same(fnn.UnpoolNearest2d()(x).cpu(), torch.nn.Upsample(scale_factor=2, mode="nearest")(x.cpu()))


def test_nn_layers_in_sequential_state_dict(device):
    m = torch.nn.Sequential(fnn.UnpoolNearest2d(2), fnn.UnpoolBedOfNails2d(2)).to(device)
    assert m.state_dict() == {}
    x = randn((1, 2, 3, 3), torch.float32, device, torch_gen(35))
    assert_same(m(x).cpu(), R.unpool_bed_of_nails2d(R.unpool_nearest2d(x.cpu(), 2), 2))


# ============================================================================ errors


def test_named_errors(device):
    """Every documented precondition raises (in a subprocess: a crash fails, it cannot kill
    pytest) an exception whose message names the argument, at the Python API and at the
    dispatcher op. Also C == 0 (PyTorch refuses it for these ops): a correctly shaped empty
    result, or an error naming the input."""
    results = helpers.bad_case_results("unpool-named", device)
    assert len(results) >= 150
    helpers.assert_no_bad_case_failures(results, "named bad-input cases")


def test_huge_arguments_do_not_wrap_around(device):
    """Kernel sizes, paddings and scale factors near 2^62: int64 products and sizes must not
    overflow into values that pass a check (subprocess, like every bad input)."""
    results = helpers.bad_case_results("unpool-overflow", device)
    assert len(results) >= 7
    helpers.assert_no_bad_case_failures(results, "huge-argument cases")


def test_output_size_bounds_are_exclusive(device):
    """PyTorch's rule: each dimension strictly within stride of the default size."""
    v = torch.randn(1, 1, 3, 3, device=device)
    idx = torch.zeros(1, 1, 3, 3, dtype=torch.int64, device=device)
    off = torch.zeros(1, 1, 3, 3, dtype=torch.uint8, device=device)  # window top-left corners
    for k, s in ((2, 2), (3, 2), (2, 3)):
        H0 = (3 - 1) * s + k
        for H in (H0 - s + 1, H0 + s - 1):
            assert fops.max_unpool2d(v, idx, k, s, 0, (H, H0)).shape[-2:] == (H, H0)
            if H > (3 - 1) * s:  # the last window's corner lies inside the plane
                assert fops.max_unpool2d_compact(v, off, k, s, 0, (H0, H)).shape[-2:] == (H0, H)
            F.max_unpool2d(v.cpu(), idx.cpu(), k, s, 0, (H, H0))  # PyTorch agrees
        for H in (H0 - s, H0 + s):
            with pytest.raises(ValueError, match="output_size"):
                fops.max_unpool2d(v, idx, k, s, 0, (H, H0))
            with pytest.raises(ValueError, match="output_size"):
                fops.max_unpool2d_compact(v, off, k, s, 0, (H0, H))
            with pytest.raises(ValueError):
                F.max_unpool2d(v.cpu(), idx.cpu(), k, s, 0, (H, H0))  # PyTorch agrees


def test_deterministic_repeat(device):
    gen = torch_gen(36)
    v = randn((2, 3, 8, 8), torch.float32, device, gen)
    idx = torch.randint(0, 4, (2, 3, 8, 8), generator=gen).to(device)
    first = fops.max_unpool2d(v, idx, 3, 2, 1)
    for _ in range(3):
        assert_same(fops.max_unpool2d(v, idx, 3, 2, 1), first)


# ============================================================================ CPU row forms


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor (integer tensors as they are)."""
    t = t.detach().cpu().contiguous()
    ints = {8: torch.int64, 4: torch.int32, 2: torch.int16}
    return t.view(ints[t.element_size()]) if t.is_floating_point() else t


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_cpu_row_forms_match_element_forms_bitwise(dtype, cpu_isa):
    """The CPU row forms (unpool_rows_cpu.h: 2x2/s2 unpool and compact pool rows, nearest x2 and
    its backward; the generic rows for other geometries), compiled for each instruction set
    (cpu_isa: AVX-512, AVX2, baseline), give the same bits as the per-element bodies the GPU runs:
    ties, NaN, -0.0 and infinities, odd sizes, ceil-mode edge windows, strided rows (the generic
    fallback), rows long enough for several 512-bit vectors and a remainder."""
    gen = torch_gen(31)
    specials = torch.tensor([float("nan"), -0.0, 0.0, float("inf"), float("-inf"), 1.0, 1.0, 2.0])
    checked = 0
    for h, w in ((1, 1), (2, 2), (5, 7), (8, 9), (12, 30), (7, 64), (4, 133)):
        x = torch.randint(0, 4, (2, 3, h, w), generator=gen).to(dtype)
        x.view(-1)[torch.randint(0, x.numel(), (x.numel() // 5 + 1,), generator=gen)] = specials[
            torch.randint(0, 8, (x.numel() // 5 + 1,), generator=gen)].to(dtype)
        for xs in (x, x.transpose(2, 3).contiguous().transpose(2, 3)):  # unit and non-unit row strides
            calls = []
            for ceil in (False, True):
                if not _pool_fits(xs.shape, 2, 2, 0, ceil):
                    continue
                calls.append(lambda t, ceil=ceil: fops.max_pool2d_compact(t, 2, ceil_mode=ceil))
                v, idx = F.max_pool2d(xs.float(), 2, ceil_mode=ceil, return_indices=True)
                v = v.to(dtype)
                # back to h x w: odd h, w give a last window with one column (ceil mode) or a
                # column no window covers (floor mode)
                calls.append(lambda t, v=v, idx=idx: fops.max_unpool2d(v, idx, 2, output_size=(h, w)))
                vc, off = R.max_pool2d_compact(xs, 2, ceil_mode=ceil)
                calls.append(lambda t, vc=vc, off=off: fops.max_unpool2d_compact(vc, off, 2))
            calls.append(lambda t: fops.unpool_nearest2d(t, 2))
            calls.append(lambda t: fops.unpool_nearest2d(t, (2, 3)))
            calls.append(lambda t: torch.ops.fastseg.unpool_nearest2d_backward.default(t, [1, 1]))
            if h % 2 == 0 and w % 2 == 0:
                calls.append(lambda t: torch.ops.fastseg.unpool_nearest2d_backward.default(t, [2, 2]))
            for call in calls:
                outs = []
                for form in helpers.KERNEL_FORMS:
                    with helpers.cpu_kernel_form(form):
                        out = call(xs)
                    outs.append(out if isinstance(out, tuple) else (out,))
                for a, b in zip(*outs):
                    assert_same(bits(a), bits(b))  # the bits: -0.0 and NaN payloads too
                checked += 1
    assert checked > 100


def test_cpu_row_forms_every_isa_vs_pytorch(cpu_isa):
    """Each instruction set's row loops (cpu_isa) against PyTorch, bit for bit, with the row form
    on and on several threads: 2x2/s2 unpooling of pooled indices and of indices moved out of
    their windows (misses), compact pooling with ties, NaN and infinities, compact unpooling,
    nearest x2 and its gradient (the block sums), bed of nails; row lengths around the vector
    widths, odd ones included."""
    gen = torch_gen(37)
    with helpers.cpu_kernel_form("row"), helpers.many_threads():
        for dtype in (torch.float32, torch.float64, torch.bfloat16):
            for h, w in ((2, 2), (4, 15), (6, 32), (5, 67), (8, 130)):
                x = U.tie_heavy((2, 3, h, w), dtype, "cpu", gen, nan_prob=0.05, inf_prob=0.05)
                desc = f"cpu_isa={cpu_isa}"
                check_max_pool2d_compact(x, 2, grad=False, desc=desc)
                check_max_pool2d_compact(x, 2, ceil_mode=True, grad=False, desc=desc)
                v, idx = U.pool_indices(randn((2, 3, h, w), dtype, "cpu", gen), 2, 2, 0, False)
                check_max_unpool2d(v, idx, 2, 2, 0, (h, w), desc=desc)
                moved = idx.clone().view(-1)
                pick = torch.randint(0, moved.numel(), (moved.numel() // 4 + 1,), generator=gen)
                moved[pick] = torch.randint(0, h * w, pick.shape, generator=gen)
                check_max_unpool2d(v, moved.view(idx.shape), 2, 2, 0, (h, w), grad=False, desc=desc + " moved")
                vc, off = R.max_pool2d_compact(x, 2)
                check_max_unpool2d_compact(vc, off, 2, output_size=(h, w), desc=desc)
                check_unpool_nearest2d(x, 2, desc=desc)
                check_unpool_bed_of_nails2d(x, 2, desc=desc)
