"""NMS and batched NMS (docs/design.md §5.4): identical index lists to torchvision (when importable)
and to fastseg.reference, for both kernel strategies (greedy, bitmask: the body CUDA runs),
on random boxes with many overlaps, duplicates, degenerate boxes, exact score ties and IoUs
exactly at the threshold. >= 500 generated inputs per op, and bad inputs run in a subprocess."""
import importlib
import random

import pytest
import torch

import fastseg.ops as fops
import fastseg.testing

import helpers
from helpers import BadCase, torch_gen

pytestmark = helpers.needs_ops

R = importlib.import_module("fastseg.reference.nms")  # the module (fastseg.reference.nms is the function)

STRATEGIES = fastseg.testing.SETTINGS["nms"]  # "auto", "greedy", "bitmask"
GOOD = 500


@pytest.fixture(params=STRATEGIES)
def strat(request):
    with helpers.strategy(nms=request.param):
        yield request.param


def random_boxes(rng: random.Random, gen, k: int, dtype=torch.float32, device="cpu", *, integer=False):
    """Clustered boxes (so that many overlap), some duplicated, some degenerate; scores with ties."""
    centers = torch.rand(max(1, k // 8 + 1), 2, generator=gen) * 100
    c = centers[torch.randint(len(centers), (k,), generator=gen)] + torch.randn(k, 2, generator=gen) * 4
    wh = torch.rand(k, 2, generator=gen) * 30 + 0.5
    boxes = torch.cat([c - wh / 2, c + wh / 2], 1)
    if integer:
        boxes = boxes.round()
    if k > 2 and rng.random() < 0.5:  # duplicates and degenerate boxes
        boxes[rng.randrange(k)] = boxes[rng.randrange(k)]
        j = rng.randrange(k)
        boxes[j, 2] = boxes[j, 0]
    if rng.random() < 0.5:
        scores = torch.randint(0, 5, (k,), generator=gen).float() / 4  # many exact ties
    else:
        scores = torch.rand(k, generator=gen)
    return boxes.to(dtype).to(device), scores.to(dtype).to(device)


def check_nms(boxes, scores, thr, desc=""):
    got = fops.nms(boxes, scores, thr)
    assert got.dtype == torch.int64 and got.device == boxes.device, desc
    ref = R.nms(boxes.cpu(), scores.cpu(), thr)
    assert torch.equal(got.cpu(), ref), f"{desc}: fastseg {got.tolist()} != reference {ref.tolist()}"
    if helpers.HAS_TORCHVISION and boxes.dtype in (torch.float32, torch.float64):
        import torchvision
        tv = torchvision.ops.nms(boxes.cpu(), scores.cpu(), thr)
        assert torch.equal(got.cpu(), tv), f"{desc}: fastseg {got.tolist()} != torchvision {tv.tolist()}"
    return got


def check_batched(boxes, scores, idxs, thr, desc=""):
    got = fops.batched_nms(boxes, scores, idxs, thr)
    ref = R.batched_nms(boxes.cpu(), scores.cpu(), idxs.cpu(), thr)
    assert torch.equal(got.cpu(), ref), f"{desc}: fastseg {got.tolist()} != reference {ref.tolist()}"
    if helpers.HAS_TORCHVISION and boxes.dtype in (torch.float32, torch.float64):
        from torchvision.ops import boxes as B
        tv = B._batched_nms_vanilla(boxes.cpu(), scores.cpu(), idxs.cpu(), thr)
        # torchvision's final sort is not stable: order its kept set by (score desc, index)
        sc = scores.cpu()
        tv_sorted = sorted(tv.tolist(), key=lambda i: (-float(sc[i]), i))
        assert got.cpu().tolist() == tv_sorted, f"{desc}: fastseg {got.tolist()} != torchvision {tv_sorted}"
    return got


def test_exact_threshold_and_ties(device, strat):
    # IoU of boxes 0 and 1 is exactly 0.5: kept at threshold 0.5 (suppression needs IoU > thr)
    boxes = torch.tensor([[0, 0, 2, 2], [0, 0, 2, 1], [0, 0, 2, 2], [10, 10, 11, 11]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.9, 0.9])
    boxes, scores = boxes.to(device), scores.to(device)
    assert fops.nms(boxes, scores, 0.5).tolist() == [0, 3, 1]  # 2 == 0 (IoU 1) suppressed; ties by index
    assert fops.nms(boxes, scores, 0.49).tolist() == [0, 3]
    assert fops.nms(boxes, scores, 1.0).tolist() == [0, 2, 3, 1]
    check_nms(boxes, scores, 0.5)


def test_empty_and_single(device, strat):
    e = fops.nms(torch.zeros(0, 4, device=device), torch.zeros(0, device=device), 0.5)
    assert e.shape == (0,) and e.dtype == torch.int64
    e = fops.batched_nms(torch.zeros(0, 4, device=device), torch.zeros(0, device=device),
                         torch.zeros(0, dtype=torch.int64, device=device), 0.5)
    assert e.shape == (0,)
    assert fops.nms(torch.tensor([[0., 0, 1, 1]], device=device), torch.tensor([0.3], device=device), 0.5).tolist() == [0]


@pytest.mark.parametrize("dtype", [pytest.param(d, id=helpers.dtype_id(d)) for d in helpers.DTYPES])
def test_nms_random(device, strat, dtype):
    rng, gen = random.Random(1), torch_gen(1)
    for k in (2, 7, 64, 65, 130, 300):
        for thr in (0.0, 0.3, 0.5, 0.7, 1.0):
            boxes, scores = random_boxes(rng, gen, k, dtype, device)
            check_nms(boxes, scores, thr, desc=f"k={k} thr={thr} {dtype}")


def test_nms_non_contiguous(device, strat):
    rng, gen = random.Random(2), torch_gen(2)
    boxes, scores = random_boxes(rng, gen, 100, device=device)
    wide = torch.zeros(100, 8, device=device)
    wide[:, ::2] = boxes
    check_nms(wide[:, ::2], torch.stack([scores, scores], 1)[:, 0], 0.5)


def test_batched_nms(device, strat):
    rng, gen = random.Random(3), torch_gen(3)
    for k, classes in ((10, 1), (100, 3), (300, 20), (129, 129)):
        for thr in (0.3, 0.5, 0.7):
            boxes, scores = random_boxes(rng, gen, k, device=device)
            idxs = torch.randint(0, classes, (k,), generator=gen).to(device)
            check_batched(boxes, scores, idxs, thr, desc=f"k={k} classes={classes} thr={thr}")


@helpers.needs_torchvision
def test_batched_nms_matches_torchvision_public(device, strat):
    """With integer coordinates torchvision's coordinate-offset path is exact too, so its public
    batched_nms (either path) gives our indices, up to the order of exact score ties."""
    import torchvision
    rng, gen = random.Random(4), torch_gen(4)
    for k in (50, 900, 1200):  # both sides of torchvision's 4000-element switch
        boxes, scores = random_boxes(rng, gen, k, device=device, integer=True)
        scores = torch.rand(k, generator=gen).to(device)  # no ties: the order is unique
        idxs = torch.randint(0, 10, (k,), generator=gen).to(device)
        got = fops.batched_nms(boxes, scores, idxs, 0.5)
        assert torch.equal(got.cpu(), torchvision.ops.batched_nms(boxes.cpu(), scores.cpu(), idxs.cpu(), 0.5))


def test_fuzz(device):
    """>= 500 generated inputs per op, cycling through the strategies."""
    failures = []
    for seed in range(GOOD):
        rng, gen = random.Random(seed), torch_gen(seed)
        k = rng.choice((0, 1, 2, 3, rng.randint(4, 70), rng.randint(60, 200)))
        dtype = rng.choice((torch.float32, torch.float32, torch.float64, torch.float16, torch.bfloat16))
        thr = rng.choice((0.0, 0.1, 0.5, 0.7, 0.9, 1.0, rng.random()))
        try:
            with helpers.strategy(nms=STRATEGIES[seed % 3]):
                boxes, scores = random_boxes(rng, gen, k, dtype, device) if k else (
                    torch.zeros(0, 4, dtype=dtype, device=device), torch.zeros(0, dtype=dtype, device=device))
                check_nms(boxes, scores, thr, desc=f"seed {seed}")
                idxs = torch.randint(0, rng.randint(1, 6), (k,), generator=gen).to(device)
                check_batched(boxes, scores, idxs, thr, desc=f"seed {seed}")
        except AssertionError as e:
            failures.append(str(e)[:1000])
    assert not failures, f"{len(failures)} of {GOOD} failed:\n" + "\n".join(failures[:5])


def test_opcheck_and_compile(device):
    rng, gen = random.Random(5), torch_gen(5)
    boxes, scores = random_boxes(rng, gen, 50, device=device)
    idxs = torch.randint(0, 3, (50,), generator=gen).to(device)
    utils = ("test_schema", "test_faketensor")
    helpers.run_opcheck(torch.ops.fastseg.nms.default, (boxes, scores, 0.5), test_utils=utils)
    helpers.run_opcheck(torch.ops.fastseg.batched_nms.default, (boxes, scores, idxs, 0.5), test_utils=utils)
    import torch._dynamo.config as dynamo_config
    with dynamo_config.patch(capture_dynamic_output_shape_ops=True):
        helpers.check_compile(lambda b, s, i: (fops.nms(b, s, 0.5), fops.batched_nms(b, s, i, 0.5)),
                              boxes, scores, idxs, exact=True, check_grad=False)


# ----------------------------------------------------------------------------- bad inputs

def bad_cases(device="cpu"):
    b, s = torch.rand(5, 4, device=device), torch.rand(5, device=device)
    i = torch.zeros(5, dtype=torch.int64, device=device)
    n, bn = torch.ops.fastseg.nms.default, torch.ops.fastseg.batched_nms.default
    m = r"^fastseg\.(batched_)?nms: ({})\b"
    cases = [
        BadCase("boxes-shape", lambda: n(b[:, :3], s, 0.5), m.format("boxes")),
        BadCase("boxes-rank", lambda: n(b.view(-1), s, 0.5), m.format("boxes")),
        BadCase("boxes-int", lambda: n(b.long(), s.long(), 0.5), m.format("boxes")),
        BadCase("scores-len", lambda: n(b, s[:4], 0.5), m.format("scores")),
        BadCase("scores-rank", lambda: n(b, s.view(5, 1), 0.5), m.format("scores")),
        BadCase("scores-dtype", lambda: n(b, s.double(), 0.5), m.format("scores")),
        BadCase("idxs-len", lambda: bn(b, s, i[:3], 0.5), m.format("idxs")),
        BadCase("idxs-float", lambda: bn(b, s, i.float(), 0.5), m.format("idxs")),
        BadCase("idxs-rank", lambda: bn(b, s, i.view(5, 1), 0.5), m.format("idxs")),
        BadCase("api-not-tensor", lambda: fops.nms(b.tolist(), s, 0.5), m.format("boxes")),
        BadCase("api-threshold", lambda: fops.nms(b, s, "0.5"), m.format("iou_threshold")),
        BadCase("api-idxs", lambda: fops.batched_nms(b, s, [0] * 5, 0.5), m.format("idxs")),
    ]
    return cases


helpers.register_bad_cases("nms-named", "test_nms:bad_cases")


def test_bad_inputs(device):
    results = helpers.bad_case_results("nms-named", device)
    assert len(results) >= 12
    helpers.assert_no_bad_case_failures(results)
