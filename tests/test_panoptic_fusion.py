"""Panoptic fusion (docs/design.md §5.6): the Panoptic FPN heuristic and the EfficientPS fusion equal
the literal loops of fastseg.reference.panoptic_fusion on random scenes (overlapping, nested,
empty, degenerate and out-of-image boxes, empty masks, score ties, everything under the score
threshold, K = 0, one-pixel images, every dtype, non-contiguous inputs), both instance-mask
forms (pasted [K, H, W] and per-box [K, M, M] + boxes) give the same result, both CPU kernel
forms (row and shared per-pixel body) agree, and >= 500 generated bad inputs raise clear errors
in a subprocess without crashing."""
import importlib
import random

import pytest
import torch

import fastseg.ops as fops

import helpers
from helpers import BadCase, torch_gen

pytestmark = helpers.needs_ops

R = importlib.import_module("fastseg.reference.panoptic_fusion")
SCENES = 150
FLOATS = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def opmath(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def random_boxes(rng, g, K, H, W):
    rows = []
    for k in range(K):
        kind = rng.choice(("in", "in", "in", "nested", "outside", "empty", "huge", "edge"))
        w, h = rng.uniform(0.5, W * 0.7 + 1), rng.uniform(0.5, H * 0.7 + 1)
        x, y = rng.uniform(-w / 2, W - w / 2), rng.uniform(-h / 2, H - h / 2)
        if kind == "nested" and rows:
            px1, py1, px2, py2 = rows[rng.randrange(len(rows))]
            w, h = (px2 - px1) * rng.uniform(0.1, 1), (py2 - py1) * rng.uniform(0.1, 1)
            x, y = px1 + rng.uniform(0, px2 - px1 - w), py1 + rng.uniform(0, py2 - py1 - h)
        elif kind == "outside":
            x, y = rng.choice((-w - 3, W + 2)), rng.choice((-h - 1.5, H + 0.5))
        elif kind == "empty":
            w, h = rng.choice(((0, h), (w, 0), (-1, h)))
        elif kind == "huge":
            x, y, w, h = -5, -3, W + 12, H + 7
        elif kind == "edge":  # box edges on half pixels: pixel centres exactly on the border
            x, y = rng.randint(-1, W) + 0.5, rng.randint(-1, H) + 0.5
            w, h = rng.randint(1, W + 1), rng.randint(1, H + 1)
        rows.append((x, y, x + w, y + h))
    return torch.tensor(rows, dtype=torch.float64).reshape(K, 4)


def random_scene(seed, big=False):
    """Everything in float64 on the CPU; callers convert. Returns a dict."""
    rng, g = random.Random(seed), torch_gen(seed)
    if big:
        H, W = 512, 1024
    else:
        H = rng.choice((1, rng.randint(1, 8), rng.randint(8, 40)))
        W = rng.choice((1, rng.randint(1, 8), rng.randint(8, 40)))
    K = rng.choice((0, 1, rng.randint(2, 6), rng.randint(6, 16)))
    C = rng.randint(1, 7)
    M = rng.choice((1, 2, 5, 14))
    boxes = random_boxes(rng, g, K, H, W)
    probs = torch.rand(K, M, M + rng.randint(0, 2), generator=g, dtype=torch.float64)
    for k in range(K):
        if rng.random() < 0.1:
            probs[k] = 0  # an empty mask
    logits = torch.randn(K, *probs.shape[1:], generator=g, dtype=torch.float64) * 3
    decimals = rng.choice((0, 1, 3))  # coarse scores: ties
    scores = torch.rand(K, generator=g, dtype=torch.float64).round(decimals=decimals)
    labels = torch.randint(0, C, (K,), generator=g)
    # Blocky semantic maps, so that classes have areas on both sides of the stuff thresholds.
    low = torch.randn(C, max(1, H // 4), max(1, W // 4), generator=g, dtype=torch.float64) * 2
    sem_logits = torch.nn.functional.interpolate(low[None], size=(H, W), mode="nearest")[0]
    sem_logits = sem_logits + 0.3 * torch.randn(C, H, W, generator=g, dtype=torch.float64)
    n_thing = rng.randint(0, C)
    return dict(
        H=H, W=W, K=K, C=C, boxes=boxes, probs=probs, logits=logits, scores=scores, labels=labels,
        semantic=sem_logits.argmax(0), sem_logits=sem_logits,
        overlap=rng.choice((0.0, 0.3, 0.5, 0.5, 1.0)),
        stuff_area=rng.choice((0, 1, 5, 30, 4096)),
        score_thr=rng.choice((0.0, 0.5, 0.5, 1.5)),
        thing_ids=rng.choice((None, [0], list(range(C - n_thing, C)))),
        stuff_ids=rng.sample(range(C), rng.randint(0, C)),
        noncontig=rng.random() < 0.2,
    )


def noncontig(t):
    """Same values, transposed strides (the kernels read through strides)."""
    return t.transpose(-1, -2).contiguous().transpose(-1, -2) if t.dim() >= 2 else t


def assert_same_result(got, exp, desc):
    (pan, info), (epan, einfo) = got, exp
    assert pan.dtype == torch.int32 and pan.shape == epan.shape, desc
    mism = (pan.cpu() != epan).sum().item()
    assert mism == 0 and info == einfo, f"{desc}: {mism} pixels differ\n got {info}\n exp {einfo}"


def heuristic_inputs(s, dtype, device):
    to = dict(device=device)
    masks, boxes = s["probs"].to(dtype), s["boxes"].to(dtype)
    if s["noncontig"]:
        masks = noncontig(masks)
    # The per-box kernel pastes in opmath; the reference gets the same paste, done beforehand.
    pasted = fops.paste_masks(masks.to(opmath(dtype)), boxes.to(opmath(dtype)), (s["H"], s["W"]), None)
    kw = dict(overlap_threshold=s["overlap"], stuff_area_threshold=s["stuff_area"],
              score_threshold=s["score_thr"], thing_ids=s["thing_ids"])
    return masks.to(**to), boxes.to(**to), pasted, kw


def check_heuristic(s, dtype, device, desc):
    masks, boxes, pasted, kw = heuristic_inputs(s, dtype, device)
    sem, scores, labels = s["semantic"].to(device), s["scores"].to(dtype).to(device), s["labels"].to(device)
    if s["noncontig"]:
        sem = noncontig(sem)
    exp = R.panoptic_fusion_heuristic(s["semantic"], pasted, None, scores.cpu(), s["labels"], **kw)
    got = fops.panoptic_fusion_heuristic(sem, masks, boxes, scores, labels, pasted=False, **kw)
    assert_same_result(got, exp, desc + " per-box form")
    if dtype in (torch.float32, torch.float64):  # the reference's own paste, in the same precision
        exp_r = R.panoptic_fusion_heuristic(s["semantic"], masks.cpu(), boxes.cpu(), scores.cpu(), s["labels"],
                                            pasted=False, **kw)
        assert_same_result(exp_r, exp, desc + " reference per-box")
    # Pasted form: identical to the per-box one in float32/float64; in half precision the pasted
    # values are rounded first, so it is compared with the reference on the same rounded masks.
    pasted_dt = pasted.to(dtype)
    exp_p = exp if dtype in (torch.float32, torch.float64) else R.panoptic_fusion_heuristic(
        s["semantic"], pasted_dt, None, scores.cpu(), s["labels"], **kw)
    got_p = fops.panoptic_fusion_heuristic(sem, pasted_dt.to(device), None, scores, labels, **kw)
    assert_same_result(got_p, exp_p, desc + " pasted form")
    # pasted masks with boxes (what detectron2 passes): the boxes change nothing
    got_pb = fops.panoptic_fusion_heuristic(sem, pasted_dt.to(device), boxes, scores, labels, pasted=True, **kw)
    assert_same_result(got_pb, exp_p, desc + " pasted form with boxes")
    got_b = fops.panoptic_fusion_heuristic(sem, (pasted_dt >= 0.5).to(device), None, scores, labels, **kw)
    assert_same_result(got_b, exp_p, desc + " bool masks")
    return exp


def efficientps_inputs(s, dtype, device):
    sem, logits, boxes = s["sem_logits"].to(dtype), s["logits"].to(dtype), s["boxes"].to(dtype)
    if s["noncontig"]:
        sem, logits = noncontig(sem), noncontig(logits)
    pasted = fops.paste_masks(logits.to(opmath(dtype)), boxes.to(opmath(dtype)), (s["H"], s["W"]), None)
    kw = dict(stuff_ids=s["stuff_ids"], score_threshold=s["score_thr"], overlap_threshold=s["overlap"],
              stuff_area_threshold=s["stuff_area"])
    return sem.to(device), logits.to(device), boxes.to(device), pasted, kw


def check_efficientps(s, dtype, device, desc):
    sem, logits, boxes, pasted, kw = efficientps_inputs(s, dtype, device)
    scores, labels = s["scores"].to(dtype).to(device), s["labels"].to(device)
    exp = R.panoptic_fusion_efficientps(sem.cpu().to(opmath(dtype)), pasted, boxes.cpu(), scores.cpu(),
                                        s["labels"], pasted=True, **kw)
    got = fops.panoptic_fusion_efficientps(sem, logits, boxes, scores, labels, pasted=False, **kw)
    got_p = fops.panoptic_fusion_efficientps(sem, pasted.to(device).to(dtype), boxes, scores, labels,
                                             pasted=True, **kw)
    if dtype == torch.float64:
        assert_same_result(got, exp, desc + " per-box form")
    else:
        # Our sigmoid and torch's differ in the last bit, which may flip a near tie of the fused
        # argmax: allow a handful of pixels, not a different segmentation.
        mism = (got[0].cpu() != exp[0]).float().mean().item()
        assert mism <= 2e-3 and len(got[1]) == len(exp[1]), f"{desc}: {mism:.2%} pixels differ"
    if dtype in (torch.float32, torch.float64):
        assert_same_result(got_p, got, desc + " pasted form vs per-box form")
    return exp


@pytest.mark.parametrize("fusion", ("heuristic", "efficientps"))
@pytest.mark.parametrize("dtype", FLOATS, ids=helpers.dtype_id)
def test_fuzz(device, dtype, fusion):
    check = check_heuristic if fusion == "heuristic" else check_efficientps
    n_segments = 0
    for seed in range(SCENES):
        s = random_scene(seed)
        exp = check(s, dtype, device, f"seed {seed} {dtype} K={s['K']} {s['H']}x{s['W']}")
        n_segments += len(exp[1])
    assert n_segments > SCENES  # the scenes do make segments


@pytest.mark.parametrize("form", helpers.KERNEL_FORMS)
def test_kernel_forms(device, form):
    helpers.kernel_form_or_skip(device, form)
    with helpers.cpu_kernel_form(form):
        for seed in range(40):
            s = random_scene(1000 + seed)
            check_heuristic(s, torch.float64, device, f"seed {seed} {form}")
            check_efficientps(s, torch.float64, device, f"seed {seed} {form}")


def test_large_scene(device):
    s = random_scene(7, big=True)
    s.update(K=40, stuff_area=500, score_thr=0.3, overlap=0.5)
    rng, g = random.Random(7), torch_gen(7)
    s["boxes"] = random_boxes(rng, g, 40, s["H"], s["W"])
    s["probs"] = torch.rand(40, 28, 28, generator=g, dtype=torch.float64)
    s["logits"] = torch.randn(40, 28, 28, generator=g, dtype=torch.float64)
    s["scores"] = torch.rand(40, generator=g, dtype=torch.float64)
    s["labels"] = torch.randint(0, s["C"], (40,), generator=g)
    assert len(check_heuristic(s, torch.float32, device, "512x1024 heuristic")[1]) > 5
    assert len(check_efficientps(s, torch.float64, device, "512x1024 efficientps")[1]) > 5


def test_hand_example_heuristic(device):
    # 4x6 image; instance 1 (score .9) covers columns 0-2, instance 0 (score .8) columns 2-4:
    # a third of it is taken (<= 0.5), so it gets columns 3-4. Instance 2 (score .4) is under
    # the threshold. Semantic: class 1 left half, class 2 right half; stuff area threshold 4.
    masks = torch.zeros(3, 4, 6, device=device)
    masks[1, :, 0:3] = 0.9
    masks[0, :, 2:5] = 0.6
    masks[2, :, :] = 1.0
    sem = torch.tensor([[1, 1, 1, 2, 2, 2]] * 4, device=device)
    scores = torch.tensor([0.8, 0.9, 0.4], device=device)
    labels = torch.tensor([7, 8, 9], device=device)
    pan, info = fops.panoptic_fusion_heuristic(sem, masks, None, scores, labels, stuff_area_threshold=4)
    expected = torch.tensor([[1, 1, 1, 2, 2, 3]] * 4, dtype=torch.int32)
    assert torch.equal(pan.cpu(), expected)
    assert info == [
        {"id": 1, "category_id": 8, "isthing": True, "score": pytest.approx(0.9), "area": 12},
        {"id": 2, "category_id": 7, "isthing": True, "score": pytest.approx(0.8), "area": 8},
        {"id": 3, "category_id": 2, "isthing": False, "area": 4},
    ]
    # detectron2's thing_ids=[0] convention and a stricter overlap threshold: instance 0 is
    # dropped (1/3 > 0.2), its columns go to stuff class 2.
    pan, info = fops.panoptic_fusion_heuristic(sem, masks, None, scores, labels, overlap_threshold=0.2,
                                               stuff_area_threshold=4, thing_ids=[0, 2])
    assert torch.equal(pan.cpu(), torch.tensor([[1] * 3 + [0] * 3] * 4, dtype=torch.int32))
    assert [d["category_id"] for d in info] == [8]


def test_hand_example_efficientps(device):
    # 2x4 image, stuff channel 0 (logit 1 everywhere), thing class channel 1 (logit 0). One
    # instance with box over columns 1-2, mask logit 3: FL = (s(3) + s(0)) * 3 = 4.36 > 1.
    sem = torch.zeros(2, 2, 4, device=device, dtype=torch.float64)
    sem[0] = 1.0
    masks = torch.full((1, 2, 4), 3.0, device=device, dtype=torch.float64)
    boxes = torch.tensor([[1.0, 0.0, 3.0, 2.0]], device=device, dtype=torch.float64)
    pan, info = fops.panoptic_fusion_efficientps(sem, masks, boxes, torch.tensor([0.9], device=device,
                                                 dtype=torch.float64), torch.tensor([1], device=device),
                                                 stuff_ids=[0], stuff_area_threshold=4)
    assert torch.equal(pan.cpu(), torch.tensor([[2, 1, 1, 2]] * 2, dtype=torch.int32))
    assert [(d["id"], d["category_id"], d["isthing"], d["area"]) for d in info] == [(1, 1, True, 4), (2, 0, False, 4)]
    # The stuff segment of 4 pixels is under stuff_area_threshold=5: void.
    pan, info = fops.panoptic_fusion_efficientps(sem, masks, boxes, torch.tensor([0.9], device=device,
                                                 dtype=torch.float64), torch.tensor([1], device=device),
                                                 stuff_ids=[0], stuff_area_threshold=5)
    assert torch.equal(pan.cpu(), torch.tensor([[0, 1, 1, 0]] * 2, dtype=torch.int32)) and len(info) == 1


def test_empty_inputs(device):
    sem = torch.zeros(0, 5, dtype=torch.long, device=device)
    pan, info = fops.panoptic_fusion_heuristic(sem, torch.zeros(0, 0, 5, device=device), None,
                                               torch.zeros(0, device=device), torch.zeros(0, dtype=torch.long,
                                                                                          device=device))
    assert pan.shape == (0, 5) and info == []
    semlog = torch.zeros(3, 4, 0, device=device)
    pan, info = fops.panoptic_fusion_efficientps(semlog, torch.zeros(2, 4, 4, device=device),
                                                 torch.zeros(2, 4, device=device), torch.ones(2, device=device),
                                                 torch.zeros(2, dtype=torch.long, device=device), [0])
    assert pan.shape == (4, 0) and info == []


def test_opcheck_compile(device):
    s = random_scene(11)
    masks, boxes, pasted, kw = heuristic_inputs(s, torch.float32, device)
    sem, scores, labels = s["semantic"].to(device), s["scores"].float().to(device), s["labels"].to(device)
    tids = kw["thing_ids"] or []
    utils = ("test_schema", "test_faketensor")
    helpers.run_opcheck(torch.ops.fastseg.panoptic_fusion_heuristic.default,
                        (sem, masks, boxes, scores, labels, 0.5, 5, 0.3, tids), test_utils=utils)
    helpers.run_opcheck(torch.ops.fastseg.panoptic_fusion_heuristic.default,
                        (sem, pasted.to(device), None, scores, labels, 0.5, 5, 0.3, tids), test_utils=utils)
    seml, logits, eboxes, _, ekw = efficientps_inputs(s, torch.float32, device)
    helpers.run_opcheck(torch.ops.fastseg.panoptic_fusion_efficientps.default,
                        (seml, logits, eboxes, scores, labels, ekw["stuff_ids"], 0.3, 0.5, 5, False), test_utils=utils)
    # compile fullgraph of the tensor-only op (segments_info is Python data, built outside).
    op = torch.ops.fastseg.panoptic_fusion_efficientps.default
    torch._dynamo.reset()
    compiled = torch.compile(lambda a, b, c, d, e: op(a, b, c, d, e, ekw["stuff_ids"], 0.3, 0.5, 5, False),
                             fullgraph=True, backend="aot_eager")
    got, exp = compiled(seml, logits, eboxes, scores, labels), op(seml, logits, eboxes, scores, labels,
                                                                  ekw["stuff_ids"], 0.3, 0.5, 5, False)
    assert torch.equal(got[0], exp[0]) and torch.equal(got[1], exp[1])


# ---- the `pasted` keyword (issue 14: one rule for both fusions) -------------------------------

def _pasted_scene(device, h, w, k=5, m=7, seed=3):
    g = torch_gen(seed)
    boxes = torch.rand(k, 4, generator=g, dtype=torch.float64) * torch.tensor([w, h, w, h]) * 0.6
    boxes[:, 2:] += 2 + torch.rand(k, 2, generator=g, dtype=torch.float64) * torch.tensor([w, h]) * 0.5
    logits = torch.randn(k, m, m, generator=g, dtype=torch.float64) * 3
    sem_logits = torch.randn(4, h, w, generator=g, dtype=torch.float64)
    pasted = fops.paste_masks(logits, boxes, (h, w), None)
    pasted_probs = fops.paste_masks(logits.sigmoid(), boxes, (h, w), None)  # 0 outside the boxes
    return dict(sem_logits=sem_logits.to(device), semantic=sem_logits.argmax(0).to(device), boxes=boxes.to(device),
                logits=logits.to(device), pasted=pasted.to(device), probs=logits.sigmoid().to(device),
                pasted_probs=pasted_probs.to(device),
                scores=torch.rand(k, generator=g, dtype=torch.float64).to(device),
                labels=torch.randint(0, 4, (k,), generator=g).to(device))


HEUR_KW = dict(score_threshold=0.2, overlap_threshold=0.6, stuff_area_threshold=3, thing_ids=[3])
EPS_KW = dict(score_threshold=0.2, overlap_threshold=0.6, stuff_area_threshold=3)


def _cpu(*ts):
    return [t.cpu() for t in ts]


def test_heuristic_pasted_masks_with_boxes(device):
    """detectron2 passes pasted [K, H, W] masks *and* boxes: the boxes change nothing (they used
    to re-paste the pasted masks into the boxes)."""
    s = _pasted_scene(device, 12, 17)
    probs = s["pasted_probs"]
    args = (s["semantic"], probs)
    rest = (s["scores"], s["labels"])
    no_boxes = fops.panoptic_fusion_heuristic(*args, None, *rest, **HEUR_KW)
    assert len(no_boxes[1]) > 2
    assert_same_result(fops.panoptic_fusion_heuristic(*args, s["boxes"], *rest, **HEUR_KW), no_boxes, "by shape")
    assert_same_result(fops.panoptic_fusion_heuristic(*args, s["boxes"], *rest, pasted=True, **HEUR_KW), no_boxes,
                       "pasted=True")
    assert_same_result(fops.panoptic_fusion_heuristic(*args, s["boxes"] * 0, *rest, pasted=True, **HEUR_KW),
                       no_boxes, "pasted=True, other boxes")
    assert_same_result(fops.panoptic_fusion_heuristic(s["semantic"], probs >= 0.5,
                                                      s["boxes"], *rest, **HEUR_KW), no_boxes, "bool, by shape")
    exp = R.panoptic_fusion_heuristic(*_cpu(s["semantic"], probs, s["boxes"], *rest), **HEUR_KW)
    assert_same_result(no_boxes, exp, "reference, by shape")


@pytest.mark.parametrize("pasted", (True, False))
@pytest.mark.parametrize("square", (False, True), ids=("12x17", "7x7"))
def test_explicit_pasted_equals_reference(device, pasted, square):
    """Each explicit keyword path, on an image shaped like the per-box masks (square: the
    ambiguous case) and not, equals the reference given the same keyword."""
    h, w = (7, 7) if square else (12, 17)
    s = _pasted_scene(device, h, w)
    masks = s["pasted"] if pasted else s["logits"]
    probs = s["pasted_probs"] if pasted else s["probs"]
    boxes, rest = s["boxes"], (s["scores"], s["labels"])
    got = fops.panoptic_fusion_heuristic(s["semantic"], probs, boxes, *rest, pasted=pasted, **HEUR_KW)
    exp = R.panoptic_fusion_heuristic(*_cpu(s["semantic"], probs, boxes, *rest), pasted=pasted, **HEUR_KW)
    assert_same_result(got, exp, f"heuristic pasted={pasted}")
    assert len(got[1]) > 2
    # the per-box form equals the pasted form of the same masks
    other = fops.panoptic_fusion_heuristic(s["semantic"], s["pasted_probs"], None, *rest, **HEUR_KW)
    assert_same_result(got, _cpu_result(other), "heuristic forms")
    got = fops.panoptic_fusion_efficientps(s["sem_logits"], masks, boxes, *rest, [0, 2], pasted=pasted, **EPS_KW)
    exp = R.panoptic_fusion_efficientps(*_cpu(s["sem_logits"], masks, boxes, *rest), [0, 2], pasted=pasted, **EPS_KW)
    assert_same_result(got, exp, f"efficientps pasted={pasted}")
    other = fops.panoptic_fusion_efficientps(s["sem_logits"], s["pasted"], boxes, *rest, [0, 2], pasted=True,
                                             **EPS_KW)
    assert_same_result(got, _cpu_result(other), "efficientps forms")
    assert len(got[1]) > 2


def _cpu_result(r):
    return r[0].cpu(), r[1]


def test_ambiguous_square_masks_ask_for_the_keyword(device):
    """[K, M, M] masks with boxes on an M x M image could be either form: both fusions (and the
    references) raise and name the keyword; K = 0 included (the rule does not look at values)."""
    for k in (5, 0):
        s = _pasted_scene(device, 7, 7, k=k)
        rest = (s["scores"], s["labels"])
        calls = [
            lambda: fops.panoptic_fusion_heuristic(s["semantic"], s["probs"], s["boxes"], *rest),
            lambda: fops.panoptic_fusion_efficientps(s["sem_logits"], s["logits"], s["boxes"], *rest, [0]),
            lambda: R.panoptic_fusion_heuristic(*_cpu(s["semantic"], s["probs"], s["boxes"], *rest)),
            lambda: R.panoptic_fusion_efficientps(*_cpu(s["sem_logits"], s["logits"], s["boxes"], *rest), [0]),
        ]
        for fn in calls:
            with pytest.raises(ValueError, match=r"^fastseg\.panoptic_fusion_\w+: .*pasted=True .*pasted=False"):
                fn()
        # without boxes the heuristic's masks can only be pasted: no question
        fops.panoptic_fusion_heuristic(s["semantic"], s["probs"], None, *rest)


def test_pasted_by_shape(device):
    """pasted=None: per-box masks whose shape is not the image's, and pasted masks of a
    non-square image, are recognised (EfficientPS: as with the explicit keyword)."""
    s = _pasted_scene(device, 12, 17)
    rest = (s["scores"], s["labels"])
    for masks, probs, pasted in ((s["logits"], s["probs"], False), (s["pasted"], s["pasted_probs"], True),
                                 (s["logits"][:, :, :5], s["probs"][:, :, :5], False)):
        got = fops.panoptic_fusion_efficientps(s["sem_logits"], masks, s["boxes"], *rest, [1], **EPS_KW)
        exp = fops.panoptic_fusion_efficientps(s["sem_logits"], masks, s["boxes"], *rest, [1], pasted=pasted,
                                               **EPS_KW)
        assert_same_result(got, _cpu_result(exp), f"efficientps {list(masks.shape)}")
        got = fops.panoptic_fusion_heuristic(s["semantic"], probs, s["boxes"], *rest, **HEUR_KW)
        exp = fops.panoptic_fusion_heuristic(s["semantic"], probs, s["boxes"], *rest, pasted=pasted, **HEUR_KW)
        assert_same_result(got, _cpu_result(exp), f"heuristic {list(masks.shape)}")


def test_pasted_keyword_errors(device):
    s = _pasted_scene(device, 12, 17)
    rest = (s["scores"], s["labels"])
    for bad in ("yes", 0.5, 2, [True]):
        with pytest.raises(TypeError, match=r"^fastseg\.panoptic_fusion_heuristic: pasted must be a bool"):
            fops.panoptic_fusion_heuristic(s["semantic"], s["pasted"], s["boxes"], *rest, pasted=bad)
        with pytest.raises(TypeError, match=r"^fastseg\.panoptic_fusion_efficientps: pasted must be a bool"):
            fops.panoptic_fusion_efficientps(s["sem_logits"], s["pasted"], s["boxes"], *rest, [0], pasted=bad)
        with pytest.raises(TypeError, match="pasted must be a bool"):
            R.panoptic_fusion_heuristic(*_cpu(s["semantic"], s["pasted"], s["boxes"], *rest), pasted=bad)
    # per-box masks need boxes
    with pytest.raises(ValueError, match=r"^fastseg\.panoptic_fusion_heuristic: pasted=False .*needs boxes"):
        fops.panoptic_fusion_heuristic(s["semantic"], s["logits"], None, *rest, pasted=False)
    # pasted=True: the masks must be the image's size
    with pytest.raises(RuntimeError, match=r"^fastseg\.panoptic_fusion_heuristic: pasted masks must be"):
        fops.panoptic_fusion_heuristic(s["semantic"], s["logits"], s["boxes"], *rest, pasted=True)
    with pytest.raises(RuntimeError, match=r"^fastseg\.panoptic_fusion_efficientps: pasted mask_logits must be"):
        fops.panoptic_fusion_efficientps(s["sem_logits"], s["logits"], s["boxes"], *rest, [0], pasted=True)


def test_threshold_names_and_order():
    """Both fusions (and the references) name and order their thresholds alike, keyword-only; the
    call of the EfficientPS model works as written."""
    import inspect
    common = ["score_threshold", "overlap_threshold", "stuff_area_threshold", "pasted"]
    for fn, extra in ((fops.panoptic_fusion_heuristic, ["thing_ids"]),
                      (fops.panoptic_fusion_efficientps, ["segments_format"]),
                      (R.panoptic_fusion_heuristic, ["thing_ids"]), (R.panoptic_fusion_efficientps, ["segments_format"])):
        params = inspect.signature(fn).parameters
        kw_only = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        assert kw_only == common + extra, (fn.__module__, kw_only)
        assert params["pasted"].default is None and params["score_threshold"].default == 0.5
    assert inspect.signature(fops.panoptic_fusion_heuristic).parameters["stuff_area_threshold"].default == 4096
    assert inspect.signature(fops.panoptic_fusion_efficientps).parameters["stuff_area_threshold"].default == 2048
    s = _pasted_scene("cpu", 12, 17)
    with pytest.raises(TypeError):
        fops.panoptic_fusion_heuristic(s["semantic"], s["pasted"], None, s["scores"], s["labels"], 0.5)
    with pytest.raises(TypeError):
        fops.panoptic_fusion_efficientps(s["sem_logits"], s["pasted"], s["boxes"], s["scores"], s["labels"], [0], 0.5)
    pan, info = fops.panoptic_fusion_efficientps(s["sem_logits"], s["logits"], s["boxes"], s["scores"], s["labels"],
                                                 [0, 1], score_threshold=0.3, overlap_threshold=0.5,
                                                 stuff_area_threshold=4, pasted=False)
    assert pan.shape == (12, 17) and info


# ---- bad inputs ------------------------------------------------------------------------------

def _heuristic_bad(rng, device):
    K, H, W = rng.randint(1, 4), rng.randint(2, 9), rng.randint(2, 9)
    sem = torch.randint(0, 5, (H, W), device=device)
    masks, boxes = torch.rand(K, 5, 5, device=device), torch.rand(K, 4, device=device) * 8
    boxes[:, 2:] += boxes[:, :2]
    pasted = torch.rand(K, H, W, device=device)
    scores, labels = torch.rand(K, device=device), torch.randint(0, 5, (K,), device=device)
    f = fops.panoptic_fusion_heuristic
    r = r"^fastseg\.panoptic_fusion_heuristic: .*{}"
    cases = [
        ("semantic-rank", lambda: f(sem[None], pasted, None, scores, labels), "semantic"),
        ("semantic-float", lambda: f(sem.float(), pasted, None, scores, labels), "semantic"),
        ("semantic-negative", lambda: f(sem - 10, pasted, None, scores, labels), "semantic"),
        ("semantic-huge", lambda: f(sem + (1 << 20), pasted, None, scores, labels), "semantic"),
        ("masks-rank", lambda: f(sem, pasted[0], None, scores, labels), "masks"),
        ("masks-int", lambda: f(sem, pasted.long(), None, scores, labels), "masks"),
        ("masks-size", lambda: f(sem, pasted[:, :-1], None, scores, labels), "masks"),
        ("masks-bool-boxes", lambda: f(sem, masks > 0.5, boxes, scores, labels), "masks"),
        ("masks-empty-plane", lambda: f(sem, masks[:, :0], boxes, scores, labels), "masks"),
        ("scores-count", lambda: f(sem, pasted, None, scores[1:], labels), "scores"),
        ("scores-extra", lambda: f(sem, pasted, None, torch.cat([scores, scores]), labels), "scores"),
        ("scores-rank", lambda: f(sem, pasted, None, scores[:, None], labels), "scores"),
        ("scores-int", lambda: f(sem, pasted, None, scores.long(), labels), "scores"),
        ("scores-nan", lambda: f(sem, pasted, None, scores * float("nan"), labels), "scores"),
        ("labels-count", lambda: f(sem, pasted, None, scores, labels[1:]), "labels"),
        ("labels-negative", lambda: f(sem, pasted, None, scores, labels - 9), "labels"),
        ("labels-float", lambda: f(sem, pasted, None, scores, labels.float()), "labels"),
        ("boxes-shape", lambda: f(sem, masks, boxes[:, :3], scores, labels), "boxes"),
        ("boxes-count", lambda: f(sem, masks, boxes[1:], scores, labels), "boxes"),
        ("boxes-int", lambda: f(sem, masks, boxes.long(), scores, labels), "boxes"),
        ("overlap-nan", lambda: f(sem, pasted, None, scores, labels, overlap_threshold=float("nan")),
         "overlap_threshold"),
        ("stuff-area-float", lambda: f(sem, pasted, None, scores, labels, stuff_area_threshold=1.5),
         "stuff_area_threshold"),
        ("thing-ids", lambda: f(sem, pasted, None, scores, labels, thing_ids=["a"]), "thing_ids"),
        ("raw-overlap-nan", lambda: torch.ops.fastseg.panoptic_fusion_heuristic.default(
            sem, pasted, None, scores, labels, float("nan"), 1, 0.5, []), "overlap_threshold"),
        ("raw-score-nan", lambda: torch.ops.fastseg.panoptic_fusion_heuristic.default(
            sem, pasted, None, scores, labels, 0.5, 1, float("nan"), []), "score_threshold"),
        ("masks-list", lambda: f(sem, pasted.tolist(), None, scores, labels), "masks"),
        ("pasted-str", lambda: f(sem, pasted, None, scores, labels, pasted="yes"), "pasted"),
        ("pasted-float", lambda: f(sem, pasted, None, scores, labels, pasted=0.5), "pasted"),
        ("pasted-false-no-boxes", lambda: f(sem, masks, None, scores, labels, pasted=False), "boxes"),
        ("pasted-true-wrong-size", lambda: f(sem, pasted[:, :-1], boxes, scores, labels, pasted=True), "masks"),
    ]
    return [BadCase(name, fn, r.format(arg)) for name, fn, arg in cases]


def _efficientps_bad(rng, device):
    K, H, W, C = rng.randint(1, 4), rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 6)
    sem = torch.randn(C, H, W, device=device)
    masks, boxes = torch.randn(K, 5, 5, device=device), torch.rand(K, 4, device=device) * 8
    boxes[:, 2:] += boxes[:, :2]
    scores, labels = torch.rand(K, device=device), torch.randint(0, C, (K,), device=device)
    f = fops.panoptic_fusion_efficientps
    r = r"^fastseg\.panoptic_fusion_efficientps: .*{}"
    cases = [
        ("semantic-rank", lambda: f(sem[0], masks, boxes, scores, labels, [0]), "semantic_logits"),
        ("semantic-int", lambda: f(sem.long(), masks, boxes, scores, labels, [0]), "semantic_logits"),
        ("masks-dtype", lambda: f(sem, masks.double(), boxes, scores, labels, [0]), "mask_logits"),
        ("masks-bool", lambda: f(sem, masks > 0, boxes, scores, labels, [0]), "mask_logits"),
        ("masks-pasted-size", lambda: f(sem, masks, boxes, scores, labels, [0], pasted=True), "mask_logits"),
        ("masks-rank", lambda: f(sem, masks[0], boxes, scores, labels, [0]), "mask_logits"),
        ("labels-range", lambda: f(sem, masks, boxes, scores, labels + C, [0]), "labels"),
        ("labels-negative", lambda: f(sem, masks, boxes, scores, labels - C, [0]), "labels"),
        ("labels-count", lambda: f(sem, masks, boxes, scores, labels[:-1], [0]), "labels"),
        ("scores-count", lambda: f(sem, masks, boxes, scores[:-1], labels, [0]), "scores"),
        ("boxes-count", lambda: f(sem, masks, boxes[:-1], scores, labels, [0]), "boxes"),
        ("boxes-none", lambda: f(sem, masks, None, scores, labels, [0]), "boxes"),
        ("stuff-range", lambda: f(sem, masks, boxes, scores, labels, [C]), "stuff_ids"),
        ("stuff-negative", lambda: f(sem, masks, boxes, scores, labels, [-1]), "stuff_ids"),
        ("stuff-repeat", lambda: f(sem, masks, boxes, scores, labels, [0, 0]), "stuff_ids"),
        ("stuff-type", lambda: f(sem, masks, boxes, scores, labels, [0.5]), "stuff_ids"),
        ("score-threshold", lambda: f(sem, masks, boxes, scores, labels, [0], score_threshold="x"),
         "score_threshold"),
        ("stuff-area", lambda: f(sem, masks, boxes, scores, labels, [0], stuff_area_threshold=None),
         "stuff_area_threshold"),
        ("pasted-str", lambda: f(sem, masks, boxes, scores, labels, [0], pasted="no"), "pasted"),
    ]
    return [BadCase(name, fn, r.format(arg)) for name, fn, arg in cases]


def bad_cases(device="cpu"):
    """>= 500 generated cases: every kind of bad input over random scenes."""
    rng = random.Random(0)
    out = []
    for i in range(12):
        out += [BadCase(f"{c.id}-{i}", c.fn, c.match) for c in _heuristic_bad(rng, device)]
        out += [BadCase(f"{c.id}-{i}", c.fn, c.match) for c in _efficientps_bad(rng, device)]
    return out


helpers.register_bad_cases("panoptic-fusion", "test_panoptic_fusion:bad_cases")


def test_bad_inputs(device):
    results = helpers.bad_case_results("panoptic-fusion", device)
    assert len(results) >= 500
    helpers.assert_no_bad_case_failures(results)


def test_example_script(tmp_path):
    """examples/panoptic_fusion.py (the README's picture) runs and both fusions score well."""
    pytest.importorskip("PIL.Image", reason="the example writes a PNG: needs Pillow (pip install pillow)")
    import subprocess
    import sys
    out = tmp_path / "pan.png"
    res = subprocess.run([sys.executable, "examples/panoptic_fusion.py", "--out", str(out), "--size", "128", "256"],
                         cwd=helpers.REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    pqs = [float(line.split("PQ ")[1].split()[0]) for line in res.stdout.splitlines() if " PQ " in line]
    assert len(pqs) == 2 and all(0.5 < pq <= 1 for pq in pqs), res.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wrapper_arguments(device):
    """Review regressions: thing_ids as a tensor / numpy array / generator, numpy scalars, and
    tiny positive logits (sigmoid(l) > 0.5 is evaluated exactly, as l > 0)."""
    import numpy as np
    sem = torch.zeros(4, 4, dtype=torch.long, device=device)
    masks = torch.zeros(0, 4, 4, device=device)
    empty = (torch.zeros(0, device=device), torch.zeros(0, dtype=torch.long, device=device))
    for tids in ([0], torch.tensor([0]), np.array([0]), (i for i in [0])):
        _, info = fops.panoptic_fusion_heuristic(sem, masks, None, *empty, stuff_area_threshold=np.int64(1),
                                                 overlap_threshold=np.float32(0.5), thing_ids=tids)
        assert info == [], f"class 0 is a thing class here ({type(tids).__name__})"
    d = torch.float64
    sem_logits = torch.tensor([[[-5.0]], [[0.0]]], dtype=d, device=device)
    tiny = torch.full((1, 1, 1), 1e-17, dtype=d, device=device)
    args = (sem_logits, tiny, torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=d, device=device),
            torch.tensor([0.9], dtype=d, device=device), torch.tensor([1], device=device), [0])
    got = fops.panoptic_fusion_efficientps(*args, stuff_area_threshold=0, pasted=False)
    exp = R.panoptic_fusion_efficientps(*[a.cpu() if isinstance(a, torch.Tensor) else a for a in args],
                                        stuff_area_threshold=0, pasted=False)
    assert got[1] == exp[1] and got[1][0]["isthing"]
