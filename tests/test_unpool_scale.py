"""unpool_nearest2d and unpool_bed_of_nails2d (integer scale factors), against F.interpolate /
F.max_unpool2d and fastseg.reference (unpool_cases/nearest.py, bed_of_nails.py). Part of the
unpooling family's tests (docs/design.md §5.1): test_unpool_*.py.
"""
import pytest
import torch

import fastseg.ops as fops

import helpers
from helpers import LAYOUTS, SHAPES, assert_same, make_layout, torch_gen
from unpool_cases import check_unpool_bed_of_nails2d, check_unpool_nearest2d, randn
from unpool_cases.samples import DTYPE_PARAMS

pytestmark = helpers.needs_ops


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
