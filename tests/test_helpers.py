"""Tests of the shared test helpers: a harness that cannot fail would make every test that uses
it worthless."""
import pytest
import torch

import helpers


@pytest.mark.parametrize("layout", helpers.LAYOUTS)
def test_make_layout(layout):
    t = torch.randn(2, 3, 4, 5)
    u = helpers.make_layout(t, layout)
    assert torch.equal(u, t) and u.shape == t.shape
    if layout == "contiguous":
        assert u.is_contiguous()
    elif layout == "channels_last":
        assert u.is_contiguous(memory_format=torch.channels_last) and not u.is_contiguous()
    else:
        assert not u.is_contiguous() and not u.is_contiguous(memory_format=torch.channels_last)
    t3 = torch.randn(3, 4, 5)
    if layout != "channels_last":
        assert torch.equal(helpers.make_layout(t3, layout), t3)
    empty = torch.randn(0, 3, 4, 5)
    assert helpers.make_layout(empty, layout).shape == empty.shape


def test_assert_memory_format_catches_lost_channels_last():
    x = helpers.make_layout(torch.randn(1, 3, 4, 4), "channels_last")
    helpers.assert_memory_format(x.clone(), x)
    with pytest.raises(AssertionError):
        helpers.assert_memory_format(x.contiguous(), x)


def test_assert_same_is_exact():
    a = torch.tensor([1.0, float("nan")])
    helpers.assert_same(a, a.clone())
    with pytest.raises(AssertionError):
        helpers.assert_same(a, a + torch.tensor([1e-7, 0.0]))


def test_tol_and_devices():
    for d in helpers.DTYPES:
        assert set(helpers.tol(d)) == {"atol", "rtol"}
    assert helpers.devices()[0] == "cpu"
    assert ("cuda" in helpers.devices()) == (torch.cuda.is_available() and helpers.HAS_CUDA_KERNELS)


def test_raises_in_subprocess_detects_crash_and_success():
    helpers.raises_in_subprocess("raise ValueError('fastseg.op: indices bad')", "ValueError", "indices")
    with pytest.raises(pytest.fail.Exception, match="died"):
        helpers.raises_in_subprocess("import ctypes; ctypes.string_at(0)", "RuntimeError", "x")
    with pytest.raises(pytest.fail.Exception, match="nothing was raised"):
        helpers.raises_in_subprocess("x = 1", "RuntimeError", "x")
    with pytest.raises(AssertionError):
        helpers.raises_in_subprocess("raise KeyError('indices')", "RuntimeError", "indices")
    with pytest.raises(AssertionError):
        helpers.raises_in_subprocess("raise RuntimeError('other')", "RuntimeError", "indices")
    with pytest.raises(pytest.fail.Exception, match="hung"):
        helpers.raises_in_subprocess("import time; time.sleep(60)", "RuntimeError", "x", timeout=3)


def test_batched_harness_survives_crashes_and_reports_each_case():
    results = helpers.run_cases_in_subprocess([("harness_selftest_cases:cases", dict(hang=True))], timeout=5)
    failures = helpers.bad_case_failures(results)
    failed_ids = sorted(f.split(":")[0] for f in failures)
    assert failed_ids == ["01-segfault", "03-abort", "04-wrong-type", "05-wrong-message", "06-no-raise",
                          "08-rejected-result", "09-hang"], failures
    assert any("CRASHED" in f for f in failures) and any("HUNG" in f for f in failures)
    with pytest.raises(AssertionError, match="7 of 11"):
        helpers.assert_no_bad_case_failures(results)
