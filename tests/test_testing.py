"""fastseg.testing.strategy: the one context manager for the kernel-path switches (which live in
torch.ops.fastseg_testing, outside the public op namespace)."""
import os

import pytest
import torch

import fastseg.ops as fops
import fastseg.testing as T

import helpers

pytestmark = helpers.needs_ops

# cpu_isa's default is the environment's cap (FASTSEG_CPU_ISA; unset: "auto").
DEFAULTS = {"conv_transpose": "auto", "nms": "auto", "roi_align_backward": "auto", "cpu_row_kernels": True,
            "cpu_isa": (os.environ.get("FASTSEG_CPU_ISA") or "auto").lower()}


def test_defaults_and_every_choice_set_and_restored():
    assert T.current() == DEFAULTS
    for setting, choices in T.SETTINGS.items():
        for choice in choices:
            with T.strategy(**{setting: choice}) as s:
                assert T.current() == {**DEFAULTS, setting: choice}, s
            assert T.current() == DEFAULTS


def test_several_settings_nested_and_restored_on_exception():
    with pytest.raises(KeyError):
        with T.strategy(conv_transpose="gemm", nms="bitmask"):
            with T.strategy(nms="greedy", roi_align_backward="scatter", cpu_row_kernels=False):
                assert T.current() == {**DEFAULTS, "conv_transpose": "gemm", "nms": "greedy",
                                       "roi_align_backward": "scatter", "cpu_row_kernels": False}
                raise KeyError("boom")
    assert T.current() == DEFAULTS


def test_reentrant_and_as_decorator():
    s = T.strategy(nms="bitmask")
    with s:
        with T.strategy(nms="greedy"):
            with s:
                assert T.current()["nms"] == "bitmask"
            assert T.current()["nms"] == "greedy"
        assert T.current()["nms"] == "bitmask"
    assert T.current() == DEFAULTS

    @T.strategy(cpu_row_kernels=False)
    def inside():
        return T.current()["cpu_row_kernels"]

    assert inside() is False and T.current() == DEFAULTS


@pytest.mark.parametrize("settings, words", [
    ({"conv_transpose": "fast"}, ("conv_transpose='fast'", "'auto', 'direct', 'gemm', 'aten'")),
    ({"conv_transpose": 2}, ("conv_transpose=2", "'gemm'")),  # no magic numbers
    ({"nms": "atomic"}, ("nms='atomic'", "'greedy'", "'bitmask'")),
    ({"roi_align_backward": None}, ("roi_align_backward=None", "'plane'", "'scatter'")),
    ({"cpu_row_kernels": "row"}, ("cpu_row_kernels='row'", "True, False")),
    ({"cpu_row_kernels": 0}, ("cpu_row_kernels=0",)),
    ({"conv": "auto"}, ("unknown setting 'conv'", "conv_transpose, nms, roi_align_backward, cpu_row_kernels")),
])
def test_bad_names_raise_and_change_nothing(settings, words):
    with pytest.raises(ValueError) as info:
        valid = {"conv_transpose": "gemm"} if "nms" in settings else {"nms": "bitmask"}
        T.strategy(**valid, **settings)  # the valid setting named first is not applied either
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    assert T.current() == DEFAULTS


def test_switches_left_the_public_namespace():
    for old in ("_set_cpu_row_kernels", "_set_conv_transpose_strategy", "_set_nms_strategy",
                "_set_roi_align_backward"):
        assert not hasattr(torch.ops.fastseg, old), old
    for setting in T.SETTINGS:
        assert hasattr(torch.ops.fastseg_testing, f"set_{setting}"), setting
    # out of range through the raw op: the C++ check names the switch
    with pytest.raises(RuntimeError, match="fastseg_testing.set_nms: strategy must be 0..2"):
        torch.ops.fastseg_testing.set_nms(3)
    assert T.current() == DEFAULTS


def _aten_calls(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


def test_conv_transpose_setting_changes_the_path():
    """Observable: "aten" calls ATen's convolution, "gemm" a matrix product, "direct" neither."""
    x, w = torch.randn(1, 8, 6, 6), torch.randn(8, 4, 4, 4)
    want = torch.nn.functional.conv_transpose2d(x, w, stride=2)
    seen = {}
    for name in ("direct", "gemm", "aten"):
        with T.strategy(conv_transpose=name):
            ops = _aten_calls(lambda: torch.testing.assert_close(fops.conv_transpose2d_crop(x, w, stride=2), want))
        seen[name] = ("aten::convolution" in ops, any(k in ops for k in ("aten::mm", "aten::mm_out")))
    assert seen == {"direct": (False, False), "gemm": (False, True), "aten": (True, False)}, seen


def test_cpu_row_kernels_and_roi_align_backward_same_results():
    """The forced paths compute the same values (their equality is tested per op; here: that each
    setting runs)."""
    x = torch.randn(2, 3, 10, 12, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 7.0, 8.0], [1, 0.5, 2.0, 11.0, 9.0]], dtype=torch.float64)
    grads = []
    for settings in ({}, {"roi_align_backward": "plane"}, {"roi_align_backward": "scatter"},
                     {"cpu_row_kernels": False}):
        with T.strategy(**settings):
            grads.append(torch.autograd.grad(fops.roi_align(x, rois, 3, 1.0, 2, True).sum(), x)[0])
    for g in grads[1:]:
        torch.testing.assert_close(g, grads[0])
    v, i = torch.nn.functional.max_pool2d(torch.randn(2, 3, 8, 8), 2, 2, return_indices=True)
    outs = []
    for rows in (True, False):
        with T.strategy(cpu_row_kernels=rows):
            outs.append(fops.max_unpool2d(v, i, 2))
    helpers.assert_same(outs[0], outs[1])


def test_missing_build_raises_runtime_error_and_tests_skip(monkeypatch):
    """No extension, or one without the switches: RuntimeError (helpers.strategy makes it a skip)."""
    monkeypatch.setattr(T._loader, "HAS_OPS", False)
    with pytest.raises(RuntimeError, match="fastseg._C is not available"):
        T.strategy(nms="greedy")
    with pytest.raises(RuntimeError):
        T.current()
    with pytest.raises(pytest.skip.Exception):
        helpers.strategy(nms="greedy")
    monkeypatch.setattr(T._loader, "HAS_OPS", True)
    monkeypatch.setattr(T, "_NAMESPACE", "fastseg_no_such_namespace")
    with pytest.raises(RuntimeError, match="no torch.ops.fastseg_no_such_namespace switch for conv_transpose"):
        T.strategy(nms="greedy")
    with pytest.raises(ValueError):  # bad names are reported first, build or not
        T.strategy(nms="fast")
