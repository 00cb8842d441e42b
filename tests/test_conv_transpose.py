"""Transpose convolution + crop (docs/design.md §5.2): conv_transpose2d_crop (functional and out=),
conv_transpose2d_crop_cat, bilinear_upsample_weight and the layers.

Expectations come from PyTorch (F.conv_transpose2d in float64, then the slice; torch.cat) and
from fastseg.reference (einsum + F.fold). Every kernel strategy is tested on every case (the
`strategy` fixture forces it); generated inputs (>= 500, good and bad) are in
test_conv_transpose_fuzz.py.
"""
import pytest
import torch
import torch.nn.functional as F

import fastseg.nn as fnn
import fastseg.ops as fops
from fastseg.reference import conv_transpose as R

import conv_transpose_cases as C
import helpers
from helpers import LAYOUTS, make_layout, torch_gen

pytestmark = helpers.needs_ops

DTYPE_PARAMS = [pytest.param(d, id=helpers.dtype_id(d)) for d in helpers.DTYPES]


@pytest.fixture(params=C.STRATEGIES)
def strategy(request):
    with helpers.strategy(conv_transpose=request.param):
        yield request.param


@pytest.mark.parametrize("form", helpers.KERNEL_FORMS)
@pytest.mark.parametrize("name", ["direct", "gemm"])
def test_kernel_forms_agree(device, form, name):
    """The CPU row kernels and the per-element bodies (what CUDA runs) give the same values."""
    with helpers.strategy(conv_transpose=name), helpers.kernel_form_or_skip(device, form):
        for seed in range(60):
            c = C.good(3000 + seed, device)
            C.check(c["x"], c["w"], c["b"], c["s"], c["p"], c["d"], c["g"], c["crop"], c["size"], grad=False,
                    desc=c["desc"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=["f32", "f64", "bf16"])
def test_direct_row_form_bit_exact(dtype):
    """The direct gather's CPU row form (phase by phase) sums the same terms in the same order as
    the per-element body (what CUDA runs): the same bits, for FCN/bilinear strides, crops that
    start and end mid-phase, padding, groups, kernels that are not multiples of the stride, and a
    strided output."""
    geometries = [  # cin, cout, groups, hw, k, s, p, crop, size
        (1, 1, 1, (9, 11), 16, 8, 0, (4, 3), (60, 70)),         # bilinear x8, crop mid-block
        (6, 6, 6, (5, 7), 16, 8, 0, (0, 0), None),              # depthwise, whole output
        (3, 4, 1, (4, 5), 32, 16, 3, (5, 9), (40, 50)),         # FCN-16s-like, padding
        (2, 2, 2, (3, 3), 13, 4, 1, (2, 0), (9, 8)),            # k not a multiple of s
        (2, 3, 1, (2, 6), 5, 4, 0, (1, 2), (4, 19)),            # k < 2s, short rows
        (4, 2, 2, (3, 2), 64, 32, 0, (19, 7), (33, 32)),        # FCN-32s-like, s == n_out
    ]
    for i, (cin, cout, g, hw, k, s, p, crop, size) in enumerate(geometries):
        x = randn((2, cin, *hw), dtype, "cpu", 10 + i)
        w = randn((cin, cout // g, k, k), dtype, "cpu", 20 + i)
        b = randn((cout,), dtype, "cpu", 30 + i)
        outs = []
        for form in ("row", "element"):
            with helpers.strategy(conv_transpose="direct", cpu_row_kernels=form == "row"):
                outs.append(fops.conv_transpose2d_crop(x, w, b, s, p, 1, g, crop, size))
                oh, ow = outs[-1].shape[-2:]
                view = torch.zeros(2, cout, oh, 3 * ow, dtype=dtype)[..., ::3]  # x stride 3
                fops.conv_transpose2d_crop(x, w, b, s, p, 1, g, crop, size, out=view)
                outs.append(view.clone())
        helpers.assert_same(outs[0], outs[2], f"geometry {i}")
        helpers.assert_same(outs[1], outs[3], f"geometry {i}, strided out")
        helpers.assert_same(outs[0], outs[1], f"geometry {i}, strided out vs contiguous")
        C.check(x, w, b, (s, s), (p, p), (1, 1), g, crop, size, grad=False, desc=f"geometry {i}")


def randn(shape, dtype=torch.float32, device="cpu", seed=0):
    return torch.randn(shape, generator=torch_gen(seed), dtype=torch.float64).to(dtype).to(device)


def test_lecture_example(device, strategy):
    """3x3 / stride 2 / pad 1 made exactly 2x: padding=0, crop=(1, 1), output_size=(2H, 2W) equals
    PyTorch's padding=1, output_padding=1; with padding=1 the full output is 2H-1, so a 2H crop
    raises."""
    x, w, b = randn((2, 3, 5, 7), seed=1), randn((3, 4, 3, 3), seed=2), randn((4,), seed=3)
    got = fops.conv_transpose2d_crop(x, w, b, stride=2, crop=(1, 1), output_size=(10, 14))
    torch.testing.assert_close(got, F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1))
    C.check(x.double(), w.double(), b.double(), (2, 2), (0, 0), (1, 1), 1, (1, 1), (10, 14))
    with pytest.raises((RuntimeError, ValueError), match="crop"):
        fops.conv_transpose2d_crop(x, w, b, stride=2, padding=1, crop=(0, 0), output_size=(10, 14))


@pytest.mark.parametrize("k,s,crop", [(64, 32, 19), (32, 16, 27), (16, 8, 31), (4, 2, 5)],
                         ids=["fcn32s", "fcn16s", "fcn8s", "upscore2"])
def test_fcn_score_upsampling(device, strategy, k, s, crop):
    """FCN's Caffe Deconvolution + Crop geometries (offsets as in the 500x500 models), on small
    score maps; float64 so that every strategy is compared tightly, with gradients."""
    h = 3
    full = (h - 1) * s + k
    size = min(full - crop, 2 * s + 3)
    x, w, b = randn((1, 5, h, h + 1), torch.float64, device, 1), randn((5, 5, k, k), torch.float64, device, 2), None
    C.check(x, w, b, (s, s), (0, 0), (1, 1), 1, (crop, crop), (size, size + s))


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_random_shapes(device, strategy, dtype):
    """Random geometries, shapes and layouts in every dtype (the fuzz test covers more)."""
    ran = 0
    for seed in range(40):
        c = C.good(1000 + seed, device)
        x, w, b = c["x"].to(dtype), c["w"].to(dtype), None if c["b"] is None else c["b"].to(dtype)
        C.check(x, w, b, c["s"], c["p"], c["d"], c["g"], c["crop"], c["size"], grad=seed % 4 == 0, desc=c["desc"])
        ran += 1
    assert ran == 40


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts(device, strategy, layout):
    """Non-contiguous and channels-last inputs (and weights/biases that are views) give the
    same values; channels-last in, channels-last out."""
    x = make_layout(randn((2, 6, 5, 4), seed=1), layout).to(device)
    w = randn((6, 8, 4, 4), seed=2).to(device)[:, ::2]  # a strided view, [6, 4, 4, 4]
    b = randn((8,), seed=3).to(device)[::2]
    for s, p, crop, size in (((2, 2), (0, 0), (1, 1), (9, 7)), ((4, 4), (1, 1), (0, 0), None),
                             ((1, 1), (1, 1), (1, 0), (3, 5)), ((2, 3), (0, 1), (2, 0), (6, 8))):
        C.check(x, w, b, s, p, (1, 1), 1, crop, size, desc=f"{layout} s={s}")
        C.check(x, w, None, s, p, (1, 1), 2, crop, size, desc=f"{layout} s={s} groups=2")


def test_empty(device, strategy):
    """Empty batch, empty crop, no input channels."""
    w = randn((3, 2, 4, 4)).to(device)
    b = randn((2,)).to(device)
    out = fops.conv_transpose2d_crop(randn((0, 3, 5, 5)).to(device), w, b, 2)
    assert out.shape == (0, 2, 12, 12)
    out = fops.conv_transpose2d_crop(randn((2, 3, 5, 5)).to(device), w, b, 2, crop=(3, 1), output_size=(0, 4))
    assert out.shape == (2, 2, 0, 4)
    out = fops.conv_transpose2d_crop(randn((2, 0, 5, 5)).to(device), randn((0, 2, 4, 4)).to(device), b, 2)
    torch.testing.assert_close(out, b.view(1, 2, 1, 1).expand(2, 2, 12, 12))


def test_unbatched(device, strategy):
    x, w, b = randn((3, 5, 6)).to(device), randn((3, 2, 3, 3), seed=1).to(device), randn((2,), seed=2).to(device)
    got = fops.conv_transpose2d_crop(x, w, b, 2, crop=(1, 2), output_size=(8, 9))
    torch.testing.assert_close(got, F.conv_transpose2d(x, w, b, 2)[:, 1:9, 2:11])


def test_dilation_groups_depthwise(device, strategy):
    x = randn((2, 6, 5, 7), torch.float64, device, 1)
    C.check(x, randn((6, 1, 3, 3), torch.float64, device, 2), randn((6,), torch.float64, device, 3), (2, 2), (1, 1),
            (2, 3), 6, (1, 2), None, desc="depthwise dilated")
    C.check(x, randn((6, 2, 5, 3), torch.float64, device, 4), None, (3, 1), (2, 0), (1, 2), 3, (0, 3), (4, 5),
            desc="groups=3")


# ----------------------------------------------------------------------------- out=

@pytest.mark.parametrize("buffer_layout", ["contiguous", "channels_last"])
def test_out_slice_of_concat_buffer(device, strategy, buffer_layout):
    """out = a channel slice of a bigger buffer: written there, nothing else touched."""
    x, w, b = randn((2, 4, 5, 6), seed=1).to(device), randn((4, 3, 2, 2), seed=2).to(device), randn((3,), seed=3)
    b = b.to(device)
    fmt = torch.channels_last if buffer_layout == "channels_last" else torch.contiguous_format
    buf = randn((2, 9, 10, 12), seed=4).to(device).contiguous(memory_format=fmt)
    before = buf.clone()
    out = buf[:, 2:5]
    with torch.no_grad():
        ret = fops.conv_transpose2d_crop(x, w, b, 2, out=out)
    assert ret is out
    torch.testing.assert_close(buf[:, 2:5], F.conv_transpose2d(x, w, b, 2))
    assert torch.equal(buf[:, :2], before[:, :2]) and torch.equal(buf[:, 5:], before[:, 5:])


def test_out_any_strided_view(device, strategy):
    """A crop of a wider plane, every other column: the rest stays untouched."""
    x, w = randn((1, 3, 5, 6), seed=1).to(device), randn((3, 2, 3, 3), seed=2).to(device)
    buf = torch.full((1, 4, 12, 24), float("nan"), device=device)
    out = buf[:, 1:3, 1:11, ::2][..., 1:11]
    fops.conv_transpose2d_crop(x, w, None, 2, crop=(0, 1), output_size=(10, 10), out=out)
    torch.testing.assert_close(out, F.conv_transpose2d(x, w, None, 2)[:, :, :10, 1:11])
    assert int(torch.isnan(buf).sum()) == buf.numel() - out.numel()


def test_out_autograd(device, strategy):
    """With autograd recording, out= copies the functional result into out: gradients reach the
    operands through the buffer."""
    x = randn((2, 4, 3, 3), torch.float64, device, 1).requires_grad_()
    w = randn((4, 2, 2, 2), torch.float64, device, 2).requires_grad_()
    b = randn((2,), torch.float64, device, 3).requires_grad_()
    skip = randn((2, 3, 6, 6), torch.float64, device, 4).requires_grad_()
    buf = torch.empty(2, 5, 6, 6, dtype=torch.float64, device=device)
    buf[:, :3] = skip
    fops.conv_transpose2d_crop(x, w, b, 2, out=buf[:, 3:])
    cot = randn(buf.shape, torch.float64, device, 5)
    got = torch.autograd.grad(buf, (x, w, b, skip), cot)
    ref = torch.cat([skip, F.conv_transpose2d(x, w, b, 2)], 1)
    exp = torch.autograd.grad(ref, (x, w, b, skip), cot)
    for a, e in zip(got, exp):
        torch.testing.assert_close(a, e)


# ----------------------------------------------------------------------------- concat

@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_cat_matches_torch_cat(device, strategy, layout):
    x = make_layout(randn((2, 6, 5, 5), seed=1), layout).to(device)
    w, b = randn((6, 3, 2, 2), seed=2).to(device), randn((3,), seed=3).to(device)
    skip = make_layout(randn((2, 4, 13, 14), seed=4), layout).to(device)
    got = fops.conv_transpose2d_crop_cat(x, w, b, skip, 2)
    exp = torch.cat([skip[:, :, 1:11, 2:12], F.conv_transpose2d(x, w, b, 2)], 1)
    torch.testing.assert_close(got, exp)
    helpers.assert_memory_format(got, x)
    torch.testing.assert_close(R.conv_transpose2d_crop_cat(x, w, b, skip, 2), exp)
    got = fops.conv_transpose2d_crop_cat(x, w, None, skip, 2, skip_crop=(3, 0), crop=(1, 1), output_size=(8, 9))
    torch.testing.assert_close(got, torch.cat([skip[:, :, 3:11, 0:9], F.conv_transpose2d(x, w, None, 2)[:, :, 1:9, 1:10]], 1))


def test_cat_gradcheck(device, strategy):
    x = randn((1, 3, 3, 2), torch.float64, device, 1).requires_grad_()
    w = randn((3, 2, 2, 2), torch.float64, device, 2).requires_grad_()
    b = randn((2,), torch.float64, device, 3).requires_grad_()
    skip = randn((1, 2, 7, 5), torch.float64, device, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: fops.conv_transpose2d_crop_cat(*a, 2), (x, w, b, skip))


@pytest.mark.parametrize("needs", ["x", "w", "b", "skip", "x+skip", "w+b"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
def test_cat_partial_grads(device, needs, with_bias):
    """Gradients when only some operands require them, with and without a bias (the C++ autograd
    numbers its tensor inputs without the absent bias: skip is then input 2)."""
    if "b" in needs.split("+") and not with_bias:
        pytest.skip("no bias to differentiate")
    names = needs.split("+")
    x = randn((2, 3, 4, 3), torch.float64, device, 1).requires_grad_("x" in names)
    w = randn((3, 2, 2, 2), torch.float64, device, 2).requires_grad_("w" in names)
    b = randn((2,), torch.float64, device, 3).requires_grad_("b" in names) if with_bias else None
    skip = randn((2, 4, 10, 7), torch.float64, device, 4).requires_grad_("skip" in names)
    leaves = [t for t in (x, w, b, skip) if t is not None and t.requires_grad]
    got = fops.conv_transpose2d_crop_cat(x, w, b, skip, 2)
    cot = randn(got.shape, torch.float64, device, 5)
    exp = torch.cat([skip[:, :, 1:9, 0:6], F.conv_transpose2d(x, w, b, 2)], 1)
    for a, e in zip(torch.autograd.grad(got, leaves, cot), torch.autograd.grad(exp, leaves, cot)):
        torch.testing.assert_close(a, e)
    got = fops.conv_transpose2d_crop(x, w, b, 2, crop=(1, 0), output_size=(6, 5))
    exp = F.conv_transpose2d(x, w, b, 2)[:, :, 1:7, 0:5]
    leaves = [t for t in leaves if t is not skip]
    if leaves:
        cot = randn(got.shape, torch.float64, device, 6)
        for a, e in zip(torch.autograd.grad(got, leaves, cot), torch.autograd.grad(exp, leaves, cot)):
            torch.testing.assert_close(a, e)


# ----------------------------------------------------------------------------- autograd, PyTorch machinery

@pytest.mark.parametrize("geometry", [((2, 2), (0, 0), (1, 1), 1, (1, 1), (6, 8)),
                                      ((3, 2), (1, 0), (1, 2), 2, (0, 1), None),
                                      ((1, 1), (1, 0), (1, 1), 1, (1, 0), (2, 4)),
                                      ((4, 4), (0, 0), (1, 1), 1, (2, 3), (5, 6))],
                         ids=["s2-crop", "dilated-groups", "s1", "k8s4"])
def test_gradcheck(device, strategy, geometry):
    s, p, d, g, crop, size = geometry
    k = (8, 8) if s == (4, 4) else (3, 3)
    x = randn((2, 4, 3, 4), torch.float64, device, 1).requires_grad_()
    w = randn((4, 2, *k), torch.float64, device, 2).requires_grad_()
    b = randn((2 * g,), torch.float64, device, 3).requires_grad_()
    fn = lambda x, w, b: fops.conv_transpose2d_crop(x, w, b, s, p, d, g, crop, size)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_opcheck(device):
    x, w, b = randn((2, 4, 3, 5), device=device), randn((4, 3, 4, 4), seed=1, device=device), randn((6,), device=device)
    x.requires_grad_()
    w.requires_grad_()
    geo = ([2, 2], [1, 0], [1, 1], 2, [1, 2], [5, 7])
    helpers.run_opcheck(torch.ops.fastseg.conv_transpose2d_crop.default, (x, w, b, *geo))
    helpers.run_opcheck(torch.ops.fastseg.conv_transpose2d_crop.default, (x.detach(), w.detach(), None, *geo))
    skip = randn((2, 2, 9, 9), device=device)
    helpers.run_opcheck(torch.ops.fastseg.conv_transpose2d_crop_cat.default, (x, w, b, skip, *geo, [2, 1]))
    out = torch.empty(2, 6, 5, 7, device=device)
    helpers.run_opcheck(torch.ops.fastseg.conv_transpose2d_crop_out.default,
                        (x.detach(), w.detach(), b, *geo[:5], out),
                        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


def test_compile(device):
    x = randn((2, 4, 5, 5), device=device).requires_grad_()
    w = randn((4, 3, 4, 4), seed=1, device=device).requires_grad_()
    b = randn((3,), seed=2, device=device).requires_grad_()
    skip = randn((2, 2, 13, 13), seed=3, device=device).requires_grad_()
    helpers.check_compile(lambda x, w, b: fops.conv_transpose2d_crop(x, w, b, 2, crop=(1, 1), output_size=(10, 10)),
                          x, w, b)
    helpers.check_compile(lambda x, w, b, skip: fops.conv_transpose2d_crop_cat(x, w, b, skip, 2, crop=1,
                                                                               output_size=(10, 10)), x, w, b, skip)

    def inference_out(x, w, b, skip):
        buf = torch.empty(2, 5, 10, 10, device=x.device)
        buf[:, :2] = skip[:, :, 1:11, 1:11]
        fops.conv_transpose2d_crop(x, w, b, 2, crop=1, output_size=(10, 10), out=buf[:, 2:])
        return buf

    with torch.no_grad():
        helpers.check_compile(inference_out, x.detach(), w.detach(), b.detach(), skip.detach(), check_grad=False)


def test_export(device):
    m = fnn.UpConcat(4, 3).to(device).eval()
    x, skip = randn((2, 4, 5, 5), device=device), randn((2, 2, 12, 12), seed=1, device=device)
    ep = helpers.check_export(m, (x, skip))
    assert "fastseg.conv_transpose2d_crop_cat.default" in helpers.graph_targets(ep)


# ----------------------------------------------------------------------------- layers and helpers

@pytest.mark.parametrize("cfg", [dict(kernel_size=3, stride=2, padding=1, output_padding=1),
                                 dict(kernel_size=4, stride=2, padding=1, groups=2),
                                 dict(kernel_size=(2, 3), stride=(2, 1), dilation=(1, 2), bias=False),
                                 dict(kernel_size=3, stride=3, padding=2, output_padding=2)])
def test_conv_transpose2d_crop_layer_is_drop_in(device, cfg):
    ref = torch.nn.ConvTranspose2d(4, 6, **cfg).to(device)
    ours = fnn.ConvTranspose2dCrop(4, 6, **cfg).to(device)
    ours.load_state_dict(ref.state_dict())
    assert set(ours.state_dict()) == set(ref.state_dict())
    x = randn((2, 4, 5, 7), device=device)
    torch.testing.assert_close(ours(x), ref(x))
    s = ref.stride
    osz = [(5 - 1) * s[0] - 2 * ref.padding[0] + ref.dilation[0] * (ref.kernel_size[0] - 1) + 1 + s[0] - 1,
           (7 - 1) * s[1] - 2 * ref.padding[1] + ref.dilation[1] * (ref.kernel_size[1] - 1) + 1]
    torch.testing.assert_close(ours(x, output_size=osz), ref(x, output_size=osz))
    cropped = fnn.ConvTranspose2dCrop(4, 6, **cfg, crop=(1, 2), output_size=(4, 5)).to(device)
    cropped.load_state_dict(ref.state_dict())
    torch.testing.assert_close(cropped(x), ref(x)[:, :, 1:5, 2:7])
    assert "crop=(1, 2)" in repr(cropped)


def test_bilinear_upsample_weight():
    w = fops.bilinear_upsample_weight(3, 2)
    assert w.shape == (3, 3, 4, 4)
    f = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(w[1, 1], f[:, None] * f[None, :])
    assert w[0, 1].abs().sum() == 0
    w3 = fops.bilinear_upsample_weight(2, 3, dtype=torch.float64, depthwise=True)
    assert w3.shape == (2, 1, 5, 5) and w3.dtype == torch.float64
    torch.testing.assert_close(w3[0, 0, 2], torch.tensor([1 / 3, 2 / 3, 1, 2 / 3, 1 / 3], dtype=torch.float64))
    with pytest.raises(ValueError, match="factor"):
        fops.bilinear_upsample_weight(3, 0)


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_bilinear_upsample_layer(device, strategy, factor):
    """Away from the borders (zero padding there), FCN's bilinear upsampling equals
    F.interpolate(bilinear, align_corners=False); a constant stays constant."""
    x = randn((2, 3, 6, 5), device=device)
    m = fnn.BilinearUpsample2d(3, factor).to(device)
    y = m(x)
    assert y.shape == (2, 3, 6 * factor, 5 * factor)
    r = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    torch.testing.assert_close(y[..., factor:-factor, factor:-factor], r[..., factor:-factor, factor:-factor])


def test_up_concat_layer(device):
    m = fnn.UpConcat(6, 3).to(device)
    x = randn((2, 6, 4, 4), device=device).requires_grad_()
    skip = randn((2, 3, 12, 11), seed=1, device=device).requires_grad_()
    y = m(x, skip)
    exp = torch.cat([skip[:, :, 2:10, 1:9], F.conv_transpose2d(x, m.weight, m.bias, 2)], 1)
    torch.testing.assert_close(y, exp)
    cot = randn(y.shape, seed=2, device=device)
    got = torch.autograd.grad(y, (x, skip, m.weight, m.bias), cot)
    want = torch.autograd.grad(exp, (x, skip, m.weight, m.bias), cot)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e)
    with pytest.raises(ValueError, match="skip"):
        m(x, skip[:, :, :7])


def test_reference_matches_pytorch():
    for seed in range(30):
        c = C.good(2000 + seed)
        x, w, b = c["x"].double(), c["w"].double(), None if c["b"] is None else c["b"].double()
        if x.shape[1] == 0:
            continue
        full = C.full_size(x.shape[-2:], w.shape[-2:], c["s"], c["p"], c["d"])
        crop = tuple(c["crop"])
        size = c["size"] or (full[0] - crop[0], full[1] - crop[1])
        torch.testing.assert_close(R.conv_transpose2d_crop(x, w, b, c["s"], c["p"], c["d"], c["g"], crop, size),
                                   C.expected(x, w, b, c["s"], c["p"], c["d"], c["g"], crop, size))
