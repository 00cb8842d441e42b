"""The layers' plain-PyTorch form (`reference`, `fastseg.nn.set_reference`), the per-call crop size
of ConvTranspose2dCrop / UpConcat, autocast of the transpose-convolution ops, and the unpooling
size rule in the kernels."""
import pytest
import torch
import torch.nn.functional as F

import helpers

import fastseg
from fastseg import nn as fnn

pytestmark = helpers.needs_ops


def _both(layer, *args, **kwargs):
    """(fastseg result, reference result) of one layer on the same arguments."""
    layer.reference = False
    a = layer(*args, **kwargs)
    layer.reference = True
    b = layer(*args, **kwargs)
    layer.reference = False
    return a, b


def test_unpool_layers_reference():
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
    pool = fnn.MaxPool2dCompact(2, 2, ceil_mode=True)
    (v, off), (v_ref, idx) = _both(pool, x)
    assert off.dtype == torch.uint8 and idx.dtype == torch.int64
    torch.testing.assert_close(v, v_ref, rtol=0, atol=0)
    torch.testing.assert_close(idx, F.max_pool2d(x, 2, 2, ceil_mode=True, return_indices=True)[1])
    unpool = fnn.MaxUnpool2dCompact(2, 2)
    unpool.reference = False
    fast = unpool(v, off, (9, 11))
    unpool.reference = True
    ref = unpool(v_ref, idx, (9, 11))
    torch.testing.assert_close(fast, ref, rtol=0, atol=0)
    torch.testing.assert_close(ref, F.max_unpool2d(v_ref, idx, 2, 2, 0, (9, 11)))
    a, b = _both(fnn.MaxUnpool2d(2, 2), v, idx, (9, 11))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    for layer in (fnn.UnpoolNearest2d((2, 3)), fnn.UnpoolBedOfNails2d((3, 2))):
        a, b = _both(layer, x)
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_conv_transpose_layers_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    layer = fnn.ConvTranspose2dCrop(4, 3, 4, 2, padding=1, crop=(1, 2), dtype=torch.float64)
    a, b = _both(layer, x)
    torch.testing.assert_close(a, b)
    full = F.conv_transpose2d(x, layer.weight, layer.bias, 2, 1)
    torch.testing.assert_close(b, full[..., 1:, 2:])
    a, b = _both(layer, x, crop_size=(5, 4))  # this call's crop size
    assert a.shape[-2:] == (5, 4)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, full[..., 1:6, 2:6])
    up = fnn.BilinearUpsample2d(4, 4)
    a, b = _both(up, x.float())
    torch.testing.assert_close(a, b)


def test_upconcat_reference_and_crop_size():
    torch.manual_seed(0)
    cat = fnn.UpConcat(6, 3, dtype=torch.float64)
    x, skip = torch.randn(2, 6, 5, 4, dtype=torch.float64), torch.randn(2, 3, 13, 9, dtype=torch.float64)
    a, b = _both(cat, x, skip)
    torch.testing.assert_close(a, b)
    up = F.conv_transpose2d(x, cat.weight, cat.bias, 2)
    torch.testing.assert_close(b, torch.cat([skip[..., 1:11, 0:8], up], 1))
    # "same" U-Net: the up-convolution cropped (top-left) to an odd skip
    skip_odd = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    a, b = _both(cat, x, skip_odd, crop_size=skip_odd.shape[-2:])
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, torch.cat([skip_odd, up[..., :9, :7]], 1))
    with pytest.raises(ValueError, match="UpConcat: crop_size"):
        cat(x, torch.randn(2, 3, 12, 12, dtype=torch.float64), crop_size=(12, 12))


def test_set_reference_reaches_subclasses_and_nothing_else():
    model = torch.nn.Sequential(fnn.UpConcat(4, 2), fnn.MaxPool2dCompact(2), torch.nn.Conv2d(1, 1, 1))
    fastseg.nn.set_reference(model)
    assert model[0].reference and model[1].reference and not hasattr(model[2], "reference")


@pytest.mark.parametrize("op", ["crop", "crop_cat"])
def test_conv_transpose_autocast(op):
    """Under torch.autocast the ops cast their floating operands to the autocast dtype, as
    F.conv_transpose2d does; float64 is left alone."""
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 4, 5, 5), torch.randn(4, 3, 2, 2), torch.randn(3)
    skip = torch.randn(2, 2, 10, 10)

    def run(x, w, b, skip):
        if op == "crop":
            return fastseg.ops.conv_transpose2d_crop(x, w, b, stride=2)
        return fastseg.ops.conv_transpose2d_crop_cat(x, w, b, skip, stride=2)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = run(x, w, b, skip)
        ref = F.conv_transpose2d(x, w, b, 2)
    assert y.dtype == ref.dtype == torch.bfloat16
    expected = run(x.bfloat16(), w.bfloat16(), b.bfloat16(), skip.bfloat16())
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y64 = run(x.double(), w.double(), b.double(), skip.double())
    assert y64.dtype == torch.float64


def test_unpool_kernel_checks_output_size():
    """The kernels check PyTorch's output_size rule themselves (the wrapper skips it on symbolic
    sizes, under torch.export with dynamic shapes)."""
    v, off = fastseg.ops.max_pool2d_compact(torch.randn(1, 1, 8, 8), 2)
    with pytest.raises(RuntimeError, match=r"max_unpool2d_compact: output_size \[11, 8\] is inconsistent"):
        torch.ops.fastseg.max_unpool2d_compact(v, off, [2, 2], [2, 2], [0, 0], [11, 8])
    idx = torch.zeros(1, 1, 4, 4, dtype=torch.int64)
    with pytest.raises(RuntimeError, match=r"max_unpool2d: output_size \[8, 5\] is inconsistent"):
        torch.ops.fastseg.max_unpool2d(v, idx, [2, 2], [2, 2], [0, 0], [8, 5])


@pytest.mark.parametrize("size,k,s,p", [(n, k, s, p) for n in range(1, 12) for k in (1, 2, 3) for s in (1, 2, 3)
                                        for p in range(0, k // 2 + 1)])
def test_pool_output_size_matches_pytorch(size, k, s, p):
    from fastseg.ops.unpool import pool_output_size

    if size + 2 * p < k:
        return
    expected = F.max_pool2d(torch.zeros(1, 1, size, size), k, s, p, ceil_mode=True).shape[-1]
    assert pool_output_size(size, k, s, p, True) == expected
