"""max_unpool2d (int64 indices from F.max_pool2d, in-window and random indices, duplicates,
every valid output size, threads, empty and 1x1 planes), against PyTorch and fastseg.reference
(unpool_cases/max_unpool.py). Part of the unpooling family's tests (docs/design.md §5.1):
test_unpool_*.py; generated inputs in test_unpool_fuzz.py.
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
from unpool_cases import GEOMETRIES, check_max_unpool2d, geometry_id, norm_geometry, randn
from unpool_cases.samples import DTYPE_PARAMS, GEOM_PARAMS, other_layout, pooled

pytestmark = helpers.needs_ops


# ============================================================================ max_unpool2d


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("geometry", GEOM_PARAMS)
def test_max_unpool2d_pool_indices(device, geometry, dtype, layout):
    """Indices from F.max_pool2d, output_size None / (H, W) of the pooled input / 4 entries."""
    k, s, p, _ = geometry
    ran = 0
    for si, shape in enumerate(SHAPES):
        got = pooled(shape, geometry, dtype, device, seed=si)
        if got is None:
            continue
        x, v, i = got
        v, i = make_layout(v, layout), make_layout(i, other_layout(layout) if si % 2 else layout)
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
    got = pooled((1, 3, 7, 8), geometry, torch.float32, device, seed=1)
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
    rng = random.Random(7)
    for geometry in GEOMETRIES:
        k, s, p, c = geometry
        got = pooled((2, 2, 7, 9), geometry, torch.float32, device, seed=rng.randrange(1000))
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


def test_deterministic_repeat(device):
    gen = torch_gen(36)
    v = randn((2, 3, 8, 8), torch.float32, device, gen)
    idx = torch.randint(0, 4, (2, 3, 8, 8), generator=gen).to(device)
    first = fops.max_unpool2d(v, idx, 3, 2, 1)
    for _ in range(3):
        assert_same(fops.max_unpool2d(v, idx, 3, 2, 1), first)
