"""The unpooling layers of fastseg.nn against torch.nn's. Part of the unpooling family's tests
(docs/design.md §5.1): test_unpool_*.py.
"""
import pytest
import torch

import fastseg.nn as fnn
from fastseg.reference import unpool as R

import helpers
from helpers import assert_same, torch_gen
import unpool_cases as U
from unpool_cases import norm_geometry, randn
from unpool_cases.samples import GEOM_PARAMS

pytestmark = helpers.needs_ops


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
