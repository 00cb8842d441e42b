"""Errors of the unpooling family: every documented precondition (named bad inputs, huge arguments;
in a subprocess, unpool_cases/named.py) and PyTorch's output-size bounds. Part of the unpooling
family's tests (docs/design.md §5.1): test_unpool_*.py; generated bad inputs in
test_unpool_fuzz.py.
"""
import pytest
import torch
import torch.nn.functional as F

import fastseg.ops as fops

import helpers

pytestmark = helpers.needs_ops

helpers.register_bad_cases("unpool-named", "unpool_cases:named_bad_cases")
helpers.register_bad_cases("unpool-overflow", "unpool_cases:overflow_bad_cases")


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
