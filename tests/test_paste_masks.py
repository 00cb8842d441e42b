"""Mask pasting (docs/design.md §5.5): paste_masks equals detectron2's grid_sample paste
(fastseg.reference.paste_masks) on random masks and boxes: boxes partly or wholly outside the
image, degenerate and huge boxes, non-square masks, every dtype, non-contiguous masks, bool and
float outputs. >= 500 generated inputs; bad inputs in a subprocess."""
import importlib
import random

import torch

import fastseg.ops as fops

import helpers
from helpers import BadCase, torch_gen

pytestmark = helpers.needs_ops

R = importlib.import_module("fastseg.reference.paste_masks")
GOOD = 500


def random_case(seed, dtype=torch.float32, device="cpu"):
    rng, g = random.Random(seed), torch_gen(seed)
    K, M = rng.choice((0, 1, rng.randint(2, 6))), rng.choice((1, 2, 5, 14, 28))
    H, W = rng.randint(0 if rng.random() < 0.03 else 1, 50), rng.randint(1, 50)
    masks = torch.rand(K, M, M + rng.randint(0, 3), generator=g, dtype=torch.float64)
    xy = torch.rand(K, 2, generator=g, dtype=torch.float64) * torch.tensor([W, H]) * 1.4 - 5
    wh = torch.rand(K, 2, generator=g, dtype=torch.float64) * 40 * rng.choice((0, 0.1, 1, 3))
    boxes = torch.cat([xy, xy + wh], 1)
    if rng.random() < 0.2:
        masks = masks.transpose(1, 2).contiguous().transpose(1, 2)  # non-contiguous
    return masks.to(dtype).to(device), boxes.to(dtype).to(device), (H, W), rng.choice((None, 0.5, 0.3))


def check(masks, boxes, size, threshold, desc=""):
    got = fops.paste_masks(masks, boxes, size, threshold)
    exp = R.paste_masks(masks.cpu().double(), boxes.cpu().double(), size, None)
    assert got.shape == (masks.shape[0], *size), desc
    if threshold is None:
        assert got.dtype == masks.dtype, desc
        tol = dict(atol=1e-9, rtol=1e-7) if masks.dtype == torch.float64 else helpers.tol(masks.dtype)
        torch.testing.assert_close(got.cpu().double(), exp, **tol, msg=lambda m: f"{desc}\n{m}")
    else:
        assert got.dtype == torch.bool, desc
        # values within rounding of the threshold may go either way
        eps = 1e-9 if masks.dtype == torch.float64 else 2e-2 if masks.dtype in helpers.LOW_PRECISION else 1e-5
        sure = (exp - threshold).abs() > eps
        assert torch.equal(got.cpu()[sure], (exp >= threshold)[sure]), desc


def test_examples(device):
    m = torch.ones(1, 2, 2, device=device)
    out = fops.paste_masks(m, torch.tensor([[2.0, 1.0, 6.0, 3.0]], device=device), (5, 8), None)
    # interior of the box is 1; half a mask cell (1 px here) outside it fades linearly to 0
    assert out[0, 1:3, 3:5].eq(1).all()
    assert out[0, 4].eq(0).all() and out[0, :, 7].eq(0).all()
    assert fops.paste_masks(m, torch.tensor([[2.0, 1.0, 6.0, 3.0]], device=device), (5, 8)).dtype == torch.bool
    empty = fops.paste_masks(torch.zeros(0, 28, 28, device=device), torch.zeros(0, 4, device=device), (7, 9))
    assert empty.shape == (0, 7, 9)
    k1 = fops.paste_masks(m[:, None], torch.tensor([[2.0, 1.0, 6.0, 3.0]], device=device), (5, 8), None)
    torch.testing.assert_close(k1, out)  # [K, 1, M, M] as Mask R-CNN's head gives


def test_fuzz(device):
    failures = []
    for seed in range(GOOD):
        dtype = (torch.float32, torch.float64, torch.float16, torch.bfloat16)[seed % 4]
        masks, boxes, size, thr = random_case(seed, dtype, device)
        try:
            check(masks, boxes, size, thr, desc=f"seed {seed} {dtype} K={masks.shape[0]} size={size} thr={thr}")
        except AssertionError as e:
            failures.append(str(e)[:1000])
    assert not failures, f"{len(failures)} of {GOOD} failed:\n" + "\n".join(failures[:5])


def test_opcheck_compile(device):
    masks, boxes, size, _ = random_case(3, torch.float32, device)
    helpers.run_opcheck(torch.ops.fastseg.paste_masks.default, (masks, boxes, *size, 0.5),
                        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
    helpers.check_compile(lambda m, b: fops.paste_masks(m, b, size, None), masks, boxes, check_grad=False)
    into = torch.zeros(size, dtype=torch.int32, device=device)
    helpers.run_opcheck(torch.ops.fastseg.paste_masks_into.default, (masks, boxes, 0.5, into),
                        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
    int_boxes = (boxes * 1.1).long()
    helpers.run_opcheck(torch.ops.fastseg.paste_masks_in_image.default, (masks, int_boxes, 1, *size),
                        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
    helpers.check_compile(lambda m, b: fops.paste_masks_in_image(m, b, size), masks[:, None], boxes,
                          check_grad=False)


def test_into_forms(device):
    """into=: occupancy (bool) and instance ids (lowest index wins) equal the [K, H, W] paste
    reduced over K; pixels no mask covers keep their value; every into dtype; strided into."""
    checked = 0
    for seed in range(150):
        dtype = (torch.float32, torch.float64, torch.float16, torch.bfloat16)[seed % 4]
        masks, boxes, (h, w), thr = random_case(seed, dtype, device)
        thr = 0.5 if thr is None else thr
        full = fops.paste_masks(masks, boxes, (h, w), thr)
        start = torch.randint(0, 2, (h, w), generator=torch_gen(seed), dtype=torch.bool).to(device)
        occ = fops.paste_masks(masks, boxes, (h, w), thr, into=start.clone())
        assert torch.equal(occ, start | full.any(0)), f"seed {seed}"
        for id_dtype in (torch.uint8, torch.int16, torch.int32, torch.int64):
            fill = torch.full((w, h), -1 if id_dtype != torch.uint8 else 200, dtype=id_dtype, device=device).t()
            ids = fops.paste_masks(masks, boxes, (h, w), thr, into=fill)  # a transposed (strided) view
            exp = torch.full((h, w), -1 if id_dtype != torch.uint8 else 200, dtype=id_dtype)
            for k in reversed(range(masks.shape[0])):
                exp[full[k].cpu()] = k + 1
            assert ids is fill and torch.equal(ids.cpu(), exp), f"seed {seed} {id_dtype}"
        checked += int(full.any())
    assert checked > 50


def test_paste_masks_in_image(device):
    """The torchvision drop-in equals fastseg.reference.paste_masks_in_image (torchvision's
    algorithm, written out) and, when importable, torchvision itself."""
    ref = R.paste_masks_in_image
    tv = None
    if helpers.HAS_TORCHVISION:
        from torchvision.models.detection.roi_heads import paste_masks_in_image as tv
    compared_tv = 0
    for seed in range(300):
        rng, g = random.Random(seed), torch_gen(seed)
        dtype = (torch.float32, torch.float64)[seed % 2]
        K, M, pad = rng.choice((0, 1, 3, 7)), rng.choice((1, 2, 7, 28)), rng.choice((0, 1, 2))
        H, W = rng.randint(1, 60), rng.randint(1, 60)
        masks = torch.rand(K, 1, M, M, generator=g, dtype=dtype)
        xy = torch.rand(K, 2, generator=g, dtype=dtype) * torch.tensor([W, H], dtype=dtype) * 1.3 - 8
        boxes = torch.cat([xy, xy + torch.rand(K, 2, generator=g, dtype=dtype) * rng.choice((2, 30, 80))], 1)
        if seed % 5 == 0:
            masks = masks.transpose(2, 3).contiguous().transpose(2, 3)
        got = fops.paste_masks_in_image(masks.to(device), boxes.to(device), (H, W), pad)
        assert got.shape == (K, 1, H, W) and got.dtype == dtype
        tol = dict(atol=4e-6, rtol=0) if dtype == torch.float32 else dict(atol=1e-12, rtol=0)
        torch.testing.assert_close(got.cpu(), ref(masks, boxes, (H, W), pad), **tol, msg=f"seed {seed}")
        if tv is not None:
            try:
                exp = tv(masks, boxes, (H, W), pad)
            except RuntimeError:  # torchvision's shape mismatch for boxes outside the image
                continue
            torch.testing.assert_close(got.cpu(), exp, **tol, msg=f"seed {seed} vs torchvision")
            compared_tv += 1
    assert tv is None or compared_tv > 100


def test_large_outputs(device):
    """Outputs of >= 8 MiB come from fresh zero pages that only the boxes' pixels touch
    (zeros_sparse): they equal the reference, are zero elsewhere, and behave as ordinary tensors
    (written in place, cloned, freed and allocated again)."""
    g = torch_gen(7)
    K, H, W = 6, 1024, 1536  # 9 MiB of bool, 36 MiB of float
    masks = torch.rand(K, 28, 28, generator=g).to(device)
    boxes = torch.tensor([[10.0, 20.0, 300.0, 200.0], [-50.0, 900.0, 100.0, 1100.0], [0.0, 0.0, 1536.0, 1024.0],
                          [700.0, 500.0, 700.5, 500.5], [2000.0, 10.0, 2100.0, 50.0], [1400.0, 3.0, 1536.0, 1000.0]],
                         device=device)
    for _ in range(2):  # the second round reuses the freed address range
        for thr in (0.5, None):
            got = fops.paste_masks(masks, boxes, (H, W), thr)
            check(masks, boxes, (H, W), thr, desc=f"large thr={thr}")
            assert got[4].count_nonzero() == 0 and got[0, 300:, :].count_nonzero() == 0
            copy = got.clone()
            got[1].fill_(1)
            assert torch.equal(got[0], copy[0]) and bool(got[1].all())
            del got, copy
    resized = fops.paste_masks_in_image(masks[:, None], boxes, (H, W))
    torch.testing.assert_close(resized.cpu(), R.paste_masks_in_image(masks[:, None].cpu(), boxes.cpu(), (H, W), 1),
                               atol=4e-6, rtol=0)


def bad_cases(device="cpu"):
    m, b = torch.rand(2, 5, 5, device=device), torch.rand(2, 4, device=device) * 10
    op = torch.ops.fastseg.paste_masks.default
    op_into = torch.ops.fastseg.paste_masks_into.default
    r = r"^fastseg\.paste_masks: ({})\b"
    return [
        BadCase("masks-rank", lambda: op(m[0], b, 8, 8, 0.5), r.format("masks")),
        BadCase("masks-int", lambda: op(m.long(), b, 8, 8, 0.5), r.format("masks")),
        BadCase("masks-empty-plane", lambda: op(m[:, :0], b, 8, 8, 0.5), r.format("masks")),
        BadCase("boxes-shape", lambda: op(m, b[:, :3], 8, 8, 0.5), r.format("boxes")),
        BadCase("boxes-count", lambda: op(m, b[:1], 8, 8, 0.5), r.format("boxes")),
        BadCase("boxes-int", lambda: op(m, b.long(), 8, 8, 0.5), r.format("boxes")),
        BadCase("size-negative", lambda: op(m, b, -1, 8, 0.5), r.format("image_size")),
        BadCase("threshold-nan", lambda: op(m, b, 8, 8, float("nan")), r.format("threshold")),
        BadCase("api-size", lambda: fops.paste_masks(m, b, (8,)), r.format("image_size")),
        BadCase("api-threshold", lambda: fops.paste_masks(m, b, (8, 8), "0.5"), r.format("threshold")),
        BadCase("api-masks", lambda: fops.paste_masks(m.tolist(), b, (8, 8)), r.format("masks")),
        BadCase("into-shape", lambda: fops.paste_masks(m, b, (8, 8), into=torch.zeros(8, 9, dtype=torch.bool)),
                r.format("into")),
        BadCase("into-dtype", lambda: fops.paste_masks(m, b, (8, 8), into=torch.zeros(8, 8)), r.format("into")),
        BadCase("into-no-threshold", lambda: fops.paste_masks(m, b, (8, 8), None, into=torch.zeros(8, 8, dtype=torch.int32)),
                r.format("into")),
        BadCase("into-expanded", lambda: fops.paste_masks(m, b, (8, 8), into=torch.zeros(1, 8, dtype=torch.int32).expand(8, 8)),
                r.format("into")),
        BadCase("into-rank", lambda: op_into(m, b, 0.5, torch.zeros(1, 8, 8, dtype=torch.bool, device=device)),
                r.format("into")),
        BadCase("into-uint8-too-many", lambda: op_into(m[:1].expand(300, 5, 5), b[:1].expand(300, 4), 0.5,
                                                       torch.zeros(8, 8, dtype=torch.uint8, device=device)),
                r.format("into")),
        BadCase("in-image-masks", lambda: fops.paste_masks_in_image(m, b, (8, 8)), r"^fastseg\.paste_masks_in_image: masks"),
        BadCase("in-image-boxes", lambda: fops.paste_masks_in_image(m[:, None], b.long(), (8, 8)),
                r"^fastseg\.paste_masks_in_image: boxes"),
        BadCase("in-image-padding", lambda: fops.paste_masks_in_image(m[:, None], b, (8, 8), -1),
                r"^fastseg\.paste_masks_in_image: padding"),
        BadCase("in-image-count", lambda: fops.paste_masks_in_image(m[:, None], b[:1], (8, 8)),
                r"^fastseg\.paste_masks_in_image: boxes"),
    ]


helpers.register_bad_cases("paste-masks-named", "test_paste_masks:bad_cases")


def test_bad_inputs(device):
    results = helpers.bad_case_results("paste-masks-named", device)
    assert len(results) >= 20
    helpers.assert_no_bad_case_failures(results)
