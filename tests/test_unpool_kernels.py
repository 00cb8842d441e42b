"""Every unpooling op's kernels: values moved bit for bit, any strides (expanded, sliced), and
the CPU row forms against the per-element forms and PyTorch for every instruction set. Part of the
unpooling family's tests (docs/design.md §5.1): test_unpool_*.py.
"""
import pytest
import torch
import torch.nn.functional as F

import fastseg.ops as fops
from fastseg.reference import unpool as R

import helpers
from helpers import assert_same, torch_gen
import unpool_cases as U
from unpool_cases import (check_max_pool2d_compact, check_max_unpool2d, check_max_unpool2d_compact,
                          check_unpool_bed_of_nails2d, check_unpool_nearest2d, randn)
from unpool_cases.samples import DTYPE_PARAMS, bits, pool_fits

pytestmark = helpers.needs_ops


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


# ============================================================================ CPU row forms


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_cpu_row_forms_match_element_forms_bitwise(dtype, cpu_isa):
    """The CPU row forms (unpool_rows_cpu.h: 2x2/s2 unpool and compact pool rows, nearest x2 and
    its backward; the generic rows for other geometries), compiled for each instruction set
    (cpu_isa: AVX-512, AVX2, baseline), give the same bits as the per-element bodies the GPU runs:
    ties, NaN, -0.0 and infinities, odd sizes, ceil-mode edge windows, strided rows (the generic
    fallback), rows long enough for several 512-bit vectors and a remainder (compact pooling runs
    the vector forms from 96 windows: w = 261)."""
    gen = torch_gen(31)
    specials = torch.tensor([float("nan"), -0.0, 0.0, float("inf"), float("-inf"), 1.0, 1.0, 2.0])
    checked = 0
    for h, w in ((1, 1), (2, 2), (5, 7), (8, 9), (12, 30), (7, 64), (4, 133), (3, 261)):
        x = torch.randint(0, 4, (2, 3, h, w), generator=gen).to(dtype)
        x.view(-1)[torch.randint(0, x.numel(), (x.numel() // 5 + 1,), generator=gen)] = specials[
            torch.randint(0, 8, (x.numel() // 5 + 1,), generator=gen)].to(dtype)
        for xs in (x, x.transpose(2, 3).contiguous().transpose(2, 3)):  # unit and non-unit row strides
            calls = []
            for ceil in (False, True):
                if not pool_fits(xs.shape, 2, 2, 0, ceil):
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
            for h, w in ((2, 2), (4, 15), (6, 32), (5, 67), (8, 130), (4, 197), (3, 261)):
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_max_unpool_scatter_plane_form_hand_made_indices(dtype):
    """max_unpool2d's CPU scatter plane form (rows of < 12 windows) against the per-element form
    and a sequential scatter: hand-made indices anywhere in the plane (out of their window,
    repeated: the larger input position wins), odd and ceil-mode output sizes, and an index out
    of range raising as the per-element form does."""
    g = torch_gen(7)
    for trial in range(60):
        n, c = 1 + trial % 2, 1 + trial % 3
        h, w = 1 + trial % 5, 1 + (trial * 7) % 11
        H, W = max(1, 2 * h - trial % 2), max(1, 2 * w - (trial // 2) % 2)
        v = torch.randn(n, c, h, w, generator=g).to(dtype)
        idx = torch.randint(0, H * W, (n, c, h, w), generator=g)
        got = fops.max_unpool2d(v, idx, 2, 2, output_size=(H, W))
        with helpers.strategy(cpu_row_kernels=False):
            element = fops.max_unpool2d(v, idx, 2, 2, output_size=(H, W))
        want = torch.zeros(n * c, H * W, dtype=dtype)
        for p in range(n * c):  # sequential: later (larger) input positions overwrite
            for t, val in zip(idx.view(n * c, -1)[p].tolist(), v.view(n * c, -1)[p]):
                want[p, t] = val
        assert_same(got, element)
        assert_same(got, want.view(n, c, H, W))
        idx.view(-1)[trial % idx.numel()] = -1 if trial % 2 else H * W
        for form in (True, False):
            with helpers.strategy(cpu_row_kernels=form), pytest.raises(RuntimeError, match="indices must lie in"):
                fops.max_unpool2d(v, idx, 2, 2, output_size=(H, W))
