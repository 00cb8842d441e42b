"""RoIAlign (docs/design.md §5.3): same results as torchvision.ops.roi_align (when importable) and
fastseg.reference, forward and backward, on random inputs: boxes partly or wholly outside the
map, degenerate and huge boxes, aligned both ways, sampling_ratio -1/0/1/2/4, spatial scales,
the list-of-boxes form, empty box sets, every dtype, channels-last; both CPU kernel forms (the
per-roi table path and the shared per-element bodies that CUDA runs). >= 500 generated inputs,
bad inputs in a subprocess."""
import importlib
import random

import pytest
import torch

import fastseg.nn as fnn
import fastseg.ops as fops
from fastseg.reference import roi_align as R_roi_align

import helpers
from helpers import BadCase, torch_gen

pytestmark = helpers.needs_ops

RA = importlib.import_module("fastseg.ops.roi_align")  # the module (fastseg.ops.roi_align is the function)

GOOD = 500


def random_case(seed: int, dtype=torch.float64, device="cpu"):
    rng, gen = random.Random(seed), torch_gen(seed)
    N, C, H, W = rng.randint(1, 3), rng.randint(1, 5), rng.randint(1, 12), rng.randint(1, 12)
    x = torch.randn(N, C, H, W, generator=gen, dtype=torch.float64)
    K = rng.choice((0, 1, rng.randint(2, 8)))
    scale = rng.choice((1.0, 0.5, 0.25, 2.0))
    size = torch.tensor([W, H], dtype=torch.float64) / scale
    xy = torch.rand(K, 2, generator=gen, dtype=torch.float64) * size * 1.6 - size * 0.3  # some outside
    wh = torch.rand(K, 2, generator=gen, dtype=torch.float64) * size * rng.choice((0.0, 0.2, 1.0, 3.0))
    rois = torch.cat([torch.randint(0, N, (K, 1), generator=gen).double(), xy, xy + wh], 1)
    layout = rng.choice(helpers.LAYOUTS)
    x = helpers.make_layout(x, layout).to(dtype).to(device)
    args = dict(output_size=(rng.randint(1, 4), rng.randint(1, 4)), spatial_scale=scale,
                sampling_ratio=rng.choice((-1, 0, 1, 2, 4)), aligned=rng.random() < 0.5)
    return x, rois.to(dtype).to(device), args, f"seed={seed} x{tuple(x.shape)} {layout} {dtype} K={K} {args}"


def check(x, rois, args, desc="", grad=True):
    got = fops.roi_align(x, rois, **args)
    helpers.assert_memory_format(got, x)
    ref = R_roi_align(x.cpu().double(), rois.cpu().double(), **args)
    tol = dict(atol=1e-9, rtol=1e-7) if x.dtype == torch.float64 else helpers.tol(x.dtype)
    if x.dtype in helpers.LOW_PRECISION:
        tol = dict(atol=tol["atol"] * 4, rtol=tol["rtol"] * 4)
    torch.testing.assert_close(got.cpu().double(), ref, **tol, msg=lambda m: f"{desc}: vs reference\n{m}")
    if helpers.HAS_TORCHVISION and x.dtype in (torch.float32, torch.float64):
        import torchvision
        tv = torchvision.ops.roi_align(x.cpu(), rois.cpu(), **args)
        torch.testing.assert_close(got.cpu(), tv, **tol, msg=lambda m: f"{desc}: vs torchvision\n{m}")
        if grad and got.numel():
            xa = x.detach().clone().requires_grad_()
            xb = x.detach().cpu().clone().requires_grad_()
            g = torch.randn(got.shape, generator=torch_gen(9), dtype=torch.float64).to(x.dtype)
            ga, = torch.autograd.grad(fops.roi_align(xa, rois, **args), xa, g.to(x.device))
            gb, = torch.autograd.grad(torchvision.ops.roi_align(xb, rois.cpu(), **args), xb, g)
            torch.testing.assert_close(ga.cpu(), gb, **tol, msg=lambda m: f"{desc}: grad vs torchvision\n{m}")
    return got


@pytest.mark.parametrize("form", helpers.KERNEL_FORMS)
def test_random(device, form):
    with helpers.kernel_form_or_skip(device, form):
        for seed in range(60):
            x, rois, args, desc = random_case(seed, device=device)
            check(x, rois, args, desc)


@pytest.mark.parametrize("dtype", [pytest.param(d, id=helpers.dtype_id(d)) for d in helpers.DTYPES])
def test_dtypes(device, dtype):
    for seed in range(100, 130):
        x, rois, args, desc = random_case(seed, dtype, device)
        check(x, rois, args, desc)


def test_list_of_boxes_and_layer(device):
    x = torch.randn(2, 3, 10, 12, device=device)
    boxes = [torch.tensor([[1.0, 1.0, 6.0, 7.0]], device=device), torch.tensor([[0.0, 2.0, 11.5, 9.0],
                                                                                [3.0, 3.0, 3.0, 3.0]], device=device)]
    got = fops.roi_align(x, boxes, 3, 1.0, 2, True)
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 7.0], [1, 0.0, 2.0, 11.5, 9.0], [1, 3.0, 3.0, 3.0, 3.0]], device=device)
    torch.testing.assert_close(got, fops.roi_align(x, rois, 3, 1.0, 2, True))
    layer = fnn.RoIAlign((3, 3), 1.0, 2, aligned=True)
    torch.testing.assert_close(layer(x, boxes), got)
    assert "aligned=True" in repr(layer)
    empty = fops.roi_align(x, torch.zeros(0, 5, device=device), 7)
    assert empty.shape == (0, 3, 7, 7)


@pytest.mark.parametrize("strategy", ("plane", "scatter"))
def test_backward_strategies(device, strategy):
    """Both backward bodies (what CUDA runs: the atomic scatter by default, the plane gather under
    torch.use_deterministic_algorithms) against autograd through the reference."""
    with helpers.strategy(roi_align_backward=strategy):
        for seed in range(200, 260):
            x, rois, args, desc = random_case(seed, device=device)
            x = x.detach().requires_grad_()
            out = fops.roi_align(x, rois, **args)
            if not out.numel():
                continue
            g = torch.randn(out.shape, generator=torch_gen(seed), dtype=torch.float64).to(device)
            got, = torch.autograd.grad(out, x, g)
            xr = x.detach().cpu().requires_grad_()
            ref = R_roi_align(xr, rois.cpu(), **args)
            # (the reference's output has no graph when no roi samples the map: gradient 0)
            exp = torch.autograd.grad(ref, xr, g.cpu())[0] if ref.requires_grad else torch.zeros_like(xr)
            torch.testing.assert_close(got.cpu(), exp, atol=1e-9, rtol=1e-7, msg=lambda m: f"{desc}\n{m}")
        x, rois, args, _ = random_case(7, device=device)
        args["sampling_ratio"] = 2
        assert torch.autograd.gradcheck(lambda t: fops.roi_align(t, rois, **args),
                                        (x.detach().contiguous().requires_grad_(),), nondet_tol=1e-12)


def test_gradcheck(device):
    x, rois, args, _ = random_case(7, device=device)
    x = x.detach().contiguous().requires_grad_()
    args["sampling_ratio"] = 2
    assert torch.autograd.gradcheck(lambda t: fops.roi_align(t, rois, **args), (x,))


def test_opcheck_compile(device):
    x, rois, args, _ = random_case(3, torch.float32, device)
    x = x.detach().requires_grad_()
    geo = (args["spatial_scale"], *args["output_size"], args["sampling_ratio"], args["aligned"])
    rois = torch.tensor([[0, 1.0, 1.0, 5.0, 6.0], [0, -2.0, 0.5, 3.0, 30.0]], device=device)
    helpers.run_opcheck(torch.ops.fastseg.roi_align.default, (x, rois, *geo))
    helpers.check_compile(lambda t, r: fops.roi_align(t, r, **args), x, rois)


def test_fuzz(device):
    failures = []
    for seed in range(GOOD):
        dtype = (torch.float32, torch.float64, torch.float16, torch.bfloat16)[seed % 4]
        x, rois, args, desc = random_case(1000 + seed, dtype, device)
        try:
            with helpers.kernel_form_or_skip(device, "element" if seed % 8 >= 4 else "row"):
                check(x, rois, args, desc, grad=seed % 5 == 0)
        except AssertionError as e:
            failures.append(str(e)[:1500])
    assert not failures, f"{len(failures)} of {GOOD} failed:\n" + "\n\n".join(failures[:4])


def bad_cases(device="cpu"):
    x = torch.randn(2, 3, 8, 8, device=device)
    r = torch.tensor([[0, 1.0, 1.0, 5.0, 5.0]], device=device)
    op = torch.ops.fastseg.roi_align.default
    m = r"^fastseg\.roi_align(_backward)?: ({})\b"
    nan = r.clone()
    nan[0, 3] = float("nan")
    inf = r.clone()
    inf[0, 2] = float("inf")
    return [
        BadCase("batch-too-big", lambda: op(x, torch.tensor([[2, 1.0, 1, 5, 5]], device=device), 1.0, 2, 2, 2, False),
                m.format("rois")),
        BadCase("batch-negative", lambda: op(x, torch.tensor([[-1, 1.0, 1, 5, 5]], device=device), 1.0, 2, 2, 2,
                                             False), m.format("rois")),
        BadCase("nan-box", lambda: op(x, nan, 1.0, 2, 2, -1, False), m.format("rois")),
        BadCase("inf-box", lambda: op(x, inf, 1.0, 2, 2, 2, True), m.format("rois")),
        BadCase("huge-adaptive", lambda: op(x, torch.tensor([[0, 0, 0, 1e30, 1e30]], device=device), 1.0, 2, 2, 0,
                                            False), m.format("rois")),
        BadCase("rois-shape", lambda: op(x, r[:, :4], 1.0, 2, 2, 2, False), m.format("rois")),
        BadCase("rois-int", lambda: op(x, r.long(), 1.0, 2, 2, 2, False), m.format("rois")),
        BadCase("input-rank", lambda: op(x[0], r, 1.0, 2, 2, 2, False), m.format("input")),
        BadCase("input-int", lambda: op(x.long(), r, 1.0, 2, 2, 2, False), m.format("input")),
        BadCase("pooled-zero", lambda: op(x, r, 1.0, 0, 2, 2, False), m.format("output_size")),
        BadCase("api-output-size", lambda: fops.roi_align(x, r, 0), m.format("output_size")),
        BadCase("api-boxes", lambda: fops.roi_align(x, [r[:, 1:].tolist()], 2), m.format("boxes")),
        BadCase("api-boxes-shape", lambda: fops.roi_align(x, [r], 2), m.format("boxes")),
        BadCase("backward-shape", lambda: torch.ops.fastseg.roi_align_backward.default(
            torch.zeros(2, 3, 2, 2, device=device), r, 1.0, 2, 2, 2, 3, 8, 8, 2, False), m.format("grad")),
    ]


helpers.register_bad_cases("roi-align-named", "test_roi_align:bad_cases")


def test_bad_inputs(device):
    results = helpers.bad_case_results("roi-align-named", device)
    assert len(results) >= 14
    helpers.assert_no_bad_case_failures(results)


# ----------------------------------------------------------------------------- multi-level

def fpn_case(seed, dtype=torch.float64, device="cpu", channels_last=False):
    rng, gen = random.Random(seed), torch_gen(seed)
    N, C = rng.randint(1, 2), rng.randint(1, 6)
    img = (rng.randint(60, 130), rng.randint(60, 130))
    feats = {}
    for i in range(2, 6):
        f = torch.randn(N, C, -(-img[0] // 2 ** i), -(-img[1] // 2 ** i), generator=gen, dtype=torch.float64)
        if channels_last:
            f = f.contiguous(memory_format=torch.channels_last)
        feats[f"p{i}"] = f.to(dtype).to(device)
    boxes = []
    for _ in range(N):
        k = rng.randint(0, 9)
        xy = torch.rand(k, 2, generator=gen, dtype=torch.float64) * torch.tensor([img[1], img[0]])
        wh = torch.exp(torch.rand(k, 2, generator=gen, dtype=torch.float64) * 5) * 2
        boxes.append(torch.cat([xy, xy + wh], 1).to(dtype).to(device))
    return feats, boxes, [img] * N


@pytest.mark.parametrize("form", helpers.KERNEL_FORMS)
def test_multi_scale_vs_reference_and_torchvision(device, form):
    names = ["p2", "p3", "p4", "p5"]
    with helpers.kernel_form_or_skip(device, form):
        for seed in range(20):
            feats, boxes, shapes = fpn_case(seed, device=device, channels_last=seed % 3 == 0)
            got = fnn.MultiScaleRoIAlign(names, 7, 2)(feats, boxes, shapes)
            # reference: the same level rule, each box through the reference roi_align of its level
            fl = list(feats.values())
            scales = RA.infer_scales(fl, shapes)
            levels = RA.map_levels(boxes, 2, 5)
            rois = RA.boxes_to_rois(boxes)
            for k in range(rois.shape[0]):
                l = int(levels[k])
                exp = R_roi_align(fl[l].cpu(), rois[k:k + 1].cpu(), 7, scales[l], 2)
                torch.testing.assert_close(got[k:k + 1].cpu().double(), exp.double(), atol=1e-9, rtol=1e-7)
            if helpers.HAS_TORCHVISION:
                import torchvision
                tv = torchvision.ops.MultiScaleRoIAlign(names, 7, 2)
                fa = {k: v.detach().clone().requires_grad_() for k, v in feats.items()}
                fb = {k: v.detach().cpu().clone().requires_grad_() for k, v in feats.items()}
                a = fnn.MultiScaleRoIAlign(names, 7, 2)(fa, boxes, shapes)
                b = tv(fb, [bx.cpu() for bx in boxes], shapes)
                torch.testing.assert_close(a.cpu(), b, atol=1e-9, rtol=1e-7)
                if a.numel():
                    g = torch.randn(a.shape, generator=torch_gen(seed), dtype=a.dtype)
                    ga = torch.autograd.grad(a, list(fa.values()), g.to(device))
                    gb = torch.autograd.grad(b, list(fb.values()), g, allow_unused=True)
                    for x, y in zip(ga, gb):
                        torch.testing.assert_close(x.cpu(), torch.zeros_like(x.cpu()) if y is None else y,
                                                   atol=1e-9, rtol=1e-7)


def test_multi_scale_opcheck_compile(device):
    feats, boxes, shapes = fpn_case(3, torch.float32, device)
    fl = [f.requires_grad_() for f in feats.values()]
    rois = RA.boxes_to_rois(boxes)
    levels = RA.map_levels(boxes, 2, 5)
    scales = RA.infer_scales(fl, shapes)
    helpers.run_opcheck(torch.ops.fastseg.multi_scale_roi_align.default, (fl, rois, levels, scales, 7, 7, 2))
    helpers.check_compile(lambda a, b, c, d: fops.multi_scale_roi_align([a, b, c, d], boxes, shapes, 7, 2), *fl)


def multi_scale_bad_cases(device="cpu"):
    feats, boxes, shapes = fpn_case(5, torch.float32, device)
    fl = list(feats.values())
    rois = torch.tensor([[0, 1.0, 1.0, 20.0, 20.0]], device=device)
    op = torch.ops.fastseg.multi_scale_roi_align.default
    lv = torch.zeros(1, dtype=torch.int64, device=device)
    m = r"^fastseg\.multi_scale_roi_align: ({})\b"
    return [
        BadCase("level-out-of-range", lambda: op(fl, rois, lv + 4, [0.25, 0.125, 0.0625, 0.03125], 7, 7, 2),
                m.format("levels")),
        BadCase("level-negative", lambda: op(fl, rois, lv - 1, [0.25, 0.125, 0.0625, 0.03125], 7, 7, 2),
                m.format("levels")),
        BadCase("levels-dtype", lambda: op(fl, rois, lv.int(), [0.25, 0.125, 0.0625, 0.03125], 7, 7, 2),
                m.format("levels")),
        BadCase("scales-count", lambda: op(fl, rois, lv, [0.25], 7, 7, 2), m.format("scales")),
        BadCase("scales-zero", lambda: op(fl, rois, lv, [0.25, 0.0, 0.0625, 0.03125], 7, 7, 2), m.format("scales")),
        BadCase("features-mixed", lambda: op([fl[0], fl[1].double()], rois, lv, [0.25, 0.125], 7, 7, 2),
                m.format("features")),
        BadCase("features-empty", lambda: op([], rois, lv, [], 7, 7, 2), m.format("features")),
        BadCase("api-boxes-tensor", lambda: fops.multi_scale_roi_align(fl, rois, shapes, 7, 2), m.format("boxes")),
        BadCase("api-no-images", lambda: fops.multi_scale_roi_align(fl, boxes, [], 7, 2), m.format("image_shapes")),
    ]


helpers.register_bad_cases("multi-scale-roi-align-named", "test_roi_align:multi_scale_bad_cases")


def test_multi_scale_bad_inputs(device):
    results = helpers.bad_case_results("multi-scale-roi-align-named", device)
    assert len(results) >= 9
    helpers.assert_no_bad_case_failures(results)
