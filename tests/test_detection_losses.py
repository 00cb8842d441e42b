"""fastseg.models.detection.matching / .losses against torchvision's counterparts.

box_area / box_iou vs torchvision.ops (degenerate boxes, nan for a zero union, empty sets, every
dtype); Matcher vs torchvision's _utils.Matcher (ties, thresholds, low-quality matches, the
errors of an empty matrix); BalancedPositiveNegativeSampler vs torchvision's under the same seed
(same masks and the same RNG state afterwards); rpn_losses vs RegionProposalNetwork.compute_loss,
fastrcnn_loss / project_masks_on_boxes / maskrcnn_loss vs torchvision.models.detection.roi_heads
on random inputs (several seeds and sizes, images with no ground truth / no positives / no
proposals): same values and the same gradients, within 1e-6 relative; every loss is 0-dim and
gives a (finite) gradient to every prediction tensor, also when there are no positives. Library
code never imports torchvision (checked in a subprocess).
"""
import random
import subprocess
import sys

import pytest
import torch

from fastseg.models.detection.losses import fastrcnn_loss, maskrcnn_loss, project_masks_on_boxes, rpn_losses
from fastseg.models.detection.matching import BalancedPositiveNegativeSampler, Matcher, box_area, box_iou

import helpers

SEEDS = range(6)


def tv():
    return pytest.importorskip("torchvision")


def close(actual, expected, dtype=torch.float32, **kw):
    atol = {torch.float64: 1e-12, torch.float32: 1e-7}.get(dtype, 1e-3)
    rtol = 1e-6 if dtype in (torch.float32, torch.float64) else 1e-3
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=True, **kw)


def random_boxes(gen, n, size=32.0, dtype=torch.float32, degenerate=0.2):
    """[n, 4] boxes, some of zero width/height (and a few duplicates, for ties)."""
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * size / 2
    wh[torch.rand(n, 2, generator=gen) < degenerate] = 0
    b = torch.cat([xy, xy + wh], 1).round()  # integer corners: exact ties in IoU
    if n > 2:
        b[-1] = b[0]
    return b.to(dtype)


# ----------------------------------------------------------------------------- box_area / box_iou

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
                                   torch.int32, torch.int16, torch.uint8], ids=helpers.dtype_id)
def test_box_iou_and_area_match_torchvision(dtype):
    ops = tv().ops
    for seed in SEEDS:
        gen = helpers.torch_gen(seed)
        for n, m in ((5, 7), (1, 1), (0, 4), (3, 0), (0, 0), (17, 9)):
            b1, b2 = random_boxes(gen, n).to(dtype), random_boxes(gen, m).to(dtype)
            a = box_area(b1)
            ea = ops.box_area(b1)
            assert a.dtype == ea.dtype and a.shape == ea.shape == (n,)
            close(a.double(), ea.double(), ea.dtype if ea.is_floating_point() else torch.float64)
            iou, exp = box_iou(b1, b2), ops.box_iou(b1, b2)
            assert iou.dtype == exp.dtype and iou.shape == exp.shape == (n, m)
            close(iou, exp, exp.dtype)


def test_box_iou_degenerate_values():
    b = torch.tensor([[0.0, 0, 2, 2], [1, 1, 1, 1], [1, 1, 3, 3], [5, 5, 5, 9]])
    iou = box_iou(b, b)
    close(iou, tv().ops.box_iou(b, b))
    assert torch.isnan(iou[1, 1]) and iou[0, 1] == 0 and iou[0, 0] == 1
    assert torch.allclose(iou[0, 2], torch.tensor(1 / 7))


def test_box_iou_gradients_match_torchvision():
    gen = helpers.torch_gen(3)
    b1 = (random_boxes(gen, 6, degenerate=0) + torch.rand(6, 4, generator=gen)).double().requires_grad_()
    b2 = (random_boxes(gen, 5, degenerate=0) + torch.rand(5, 4, generator=gen)).double().requires_grad_()
    w = torch.rand(6, 5, generator=gen, dtype=torch.float64)
    g = torch.autograd.grad((box_iou(b1, b2) * w).sum(), (b1, b2))
    e = torch.autograd.grad((tv().ops.box_iou(b1, b2) * w).sum(), (b1, b2))
    for x, y in zip(g, e):
        close(x, y, torch.float64)


# ----------------------------------------------------------------------------- Matcher

MATCHER_ARGS = [(0.7, 0.3, True), (0.7, 0.3, False), (0.5, 0.5, False), (0.5, 0.5, True), (0.5, 0.0, False),
                (0.0, 0.0, True)]


@pytest.mark.parametrize("args", MATCHER_ARGS, ids=lambda a: "-".join(map(str, a)))
def test_matcher_matches_torchvision(args):
    TV = tv().models.detection._utils.Matcher
    ours, theirs = Matcher(*args), TV(*args)
    assert Matcher.BELOW_LOW_THRESHOLD == -1 and Matcher.BETWEEN_THRESHOLDS == -2
    for seed in SEEDS:
        gen = helpers.torch_gen(seed)
        for g, p in ((1, 1), (1, 9), (4, 30), (7, 3), (12, 200)):
            gt, props = random_boxes(gen, g), random_boxes(gen, p)
            q = torch.nan_to_num(box_iou(gt, props), nan=0.0)
            if seed % 2:
                q = torch.rand(g, p, generator=gen).mul(4).round().div(4)  # many ties and exact thresholds
            m = ours(q.clone())
            assert m.dtype == torch.int64 and m.shape == (p,)
            assert torch.equal(m, theirs(q.clone()))
            assert ((m >= -2) & (m < g)).all()


def test_matcher_low_quality_rule():
    q = torch.tensor([[0.1, 0.2, 0.2, 0.9], [0.4, 0.1, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    m = Matcher(0.7, 0.3, allow_low_quality_matches=True)(q)
    # without the rule: p0 0.4 (between), p1/p2 0.2 (below), p3 0.9 -> gt0. gt1's best is p0, and
    # gt2 (all 0) ties every proposal, so each proposal gets back its own best match
    assert m.tolist() == [1, 0, 0, 0]
    assert Matcher(0.7, 0.3)(q).tolist() == [-2, -1, -1, 0]


def test_matcher_errors():
    for q, msg in ((torch.zeros(0, 5), "No ground-truth boxes available for one of the images during training"),
                   (torch.zeros(3, 0), "No proposal boxes available for one of the images during training"),
                   (torch.zeros(0, 0), "No ground-truth boxes available")):
        with pytest.raises(ValueError, match=msg):
            Matcher(0.7, 0.3)(q)
        with pytest.raises(ValueError, match=msg):
            tv().models.detection._utils.Matcher(0.7, 0.3)(q)
    with pytest.raises(ValueError, match="low_threshold"):
        Matcher(0.3, 0.7)


# ----------------------------------------------------------------------------- sampler

def random_labels(rng, gen, n, kind, device, dtype=torch.float32, num_classes=2):
    """Per-image labels: -1 ignored, 0 background, >= 1 foreground (class ids when num_classes > 2)."""
    if kind == "none":
        return torch.zeros(0, dtype=dtype, device=device)
    lab = torch.randint(1, num_classes, (n,), generator=gen).to(dtype)
    u = torch.rand(n, generator=gen)
    lab[u < 0.8] = 0
    lab[u < 0.3] = -1
    if kind == "no_pos":
        lab[lab > 0] = 0
    elif kind == "ignored":
        lab[:] = -1
    elif kind == "all_pos":
        lab[:] = 1
    return lab.to(device)


KINDS = ("mixed", "mixed", "no_pos", "ignored", "all_pos", "none")


def random_batch(seed, device, dtype=torch.float32, num_classes=2, max_images=4, max_n=300):
    rng, gen = random.Random(seed), helpers.torch_gen(seed)
    return [random_labels(rng, gen, rng.randint(1, max_n), rng.choice(KINDS), device, dtype, num_classes)
            for _ in range(rng.randint(1, max_images))]


@pytest.mark.parametrize("bs, frac", [(256, 0.5), (16, 0.25), (512, 0.25), (4, 1.0), (7, 0.0)])
def test_sampler_matches_torchvision(device, bs, frac):
    TV = tv().models.detection._utils.BalancedPositiveNegativeSampler
    for seed in SEEDS:
        for dtype, nc in ((torch.float32, 2), (torch.int64, 5)):
            labels = random_batch(seed, device, dtype, nc)
            torch.manual_seed(100 + seed)
            pos, neg = BalancedPositiveNegativeSampler(bs, frac)(labels)
            state = torch.get_rng_state(), (torch.cuda.get_rng_state() if device == "cuda" else None)
            torch.manual_seed(100 + seed)
            epos, eneg = TV(bs, frac)(labels)
            assert torch.equal(state[0], torch.get_rng_state())
            if device == "cuda":
                assert torch.equal(state[1], torch.cuda.get_rng_state())
            assert len(pos) == len(neg) == len(labels)
            for p, n, ep, en, lab in zip(pos, neg, epos, eneg, labels):
                assert p.dtype == n.dtype == torch.uint8 and p.shape == n.shape == lab.shape
                assert p.device == lab.device
                assert torch.equal(p, ep) and torch.equal(n, en)
                assert int(p.sum()) <= int(bs * frac) and int(p.sum() + n.sum()) <= bs
                assert (lab[p.bool()] >= 1).all() and (lab[n.bool()] == 0).all()


# ----------------------------------------------------------------------------- rpn_losses

def tv_rpn(bs, frac):
    det = tv().models.detection
    anchor_gen = det.anchor_utils.AnchorGenerator(((32,),), ((1.0,),))
    head = det.rpn.RPNHead(1, 1)
    return det.rpn.RegionProposalNetwork(anchor_gen, head, 0.7, 0.3, bs, frac, dict(training=10, testing=10),
                                         dict(training=10, testing=10), 0.7)


def rpn_inputs(seed, device, dtype, flat):
    labels = random_batch(seed, device)
    gen = helpers.torch_gen(1000 + seed)
    A = sum(len(x) for x in labels)
    targets = [torch.randn(len(x), 4, generator=gen, dtype=dtype).to(device) for x in labels]
    obj = torch.randn(A, 1, generator=gen, dtype=dtype).mul(3).to(device)
    deltas = torch.randn(A, 4, generator=gen, dtype=dtype).to(device)
    if flat:
        obj = obj[:, 0]
    return obj.requires_grad_(), deltas.requires_grad_(), [x.to(dtype) for x in labels], targets


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=helpers.dtype_id)
@pytest.mark.parametrize("bs, frac", [(256, 0.5), (8, 0.25)])
def test_rpn_losses_match_torchvision(device, dtype, bs, frac):
    rpn = tv_rpn(bs, frac)
    sampler = BalancedPositiveNegativeSampler(bs, frac)
    for seed in range(10):
        obj, deltas, labels, targets = rpn_inputs(seed, device, dtype, flat=seed % 2 == 1)
        torch.manual_seed(seed)
        lo, lb = rpn_losses(obj, deltas, labels, targets, sampler)
        g = torch.autograd.grad(lo + lb, (obj, deltas))
        torch.manual_seed(seed)
        eo, eb = rpn.compute_loss(obj, deltas, labels, targets)
        e = torch.autograd.grad(eo + eb, (obj, deltas))
        assert lo.shape == lb.shape == () and lo.dtype == lb.dtype == dtype
        close(lo, eo, dtype)
        close(lb, eb, dtype)
        for x, y in zip(g, e):
            close(x, y, dtype)
        if any(((x >= 0).any() for x in labels)):  # something sampled: finite
            assert torch.isfinite(lo) and torch.isfinite(lb)
            assert all(torch.isfinite(x).all() for x in g)


def test_rpn_losses_no_positives_still_connected(device):
    gen = helpers.torch_gen(0)
    labels = [torch.zeros(50, device=device), torch.full((20,), -1.0, device=device), torch.zeros(0, device=device)]
    targets = [torch.randn(len(x), 4, generator=gen).to(device) for x in labels]
    obj = torch.randn(70, 1, generator=gen).to(device).requires_grad_()
    deltas = torch.randn(70, 4, generator=gen).to(device).requires_grad_()
    lo, lb = rpn_losses(obj, deltas, labels, targets, BalancedPositiveNegativeSampler(32, 0.5))
    assert lb.item() == 0 and lo.item() > 0 and lb.requires_grad and lo.requires_grad
    go, gd = torch.autograd.grad(lo + lb, (obj, deltas), retain_graph=True)
    assert torch.count_nonzero(go) == 32 and torch.count_nonzero(gd) == 0
    # only the box loss reached by deltas: still a (zero) gradient, not "unused"
    (gd2,) = torch.autograd.grad(lb, (deltas,))
    assert torch.equal(gd2, torch.zeros_like(deltas))


def test_zero_normaliser_is_nan_as_in_torchvision():
    # nothing sampled at all (every anchor ignored): torchvision divides by 0, and so do we
    labels = [torch.full((5,), -1.0), torch.zeros(0)]
    targets = [torch.randn(5, 4), torch.zeros(0, 4)]
    obj, deltas = torch.randn(5, 1, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    lo, lb = rpn_losses(obj, deltas, labels, targets, BalancedPositiveNegativeSampler(8, 0.5))
    eo, eb = tv_rpn(8, 0.5).compute_loss(obj, deltas, labels, targets)
    assert torch.isnan(lo) and torch.isnan(lb)
    close(lo, eo)
    close(lb, eb)
    # no sampled proposal in the box head
    logits, reg = torch.randn(0, 3, requires_grad=True), torch.randn(0, 12, requires_grad=True)
    lc, lr = fastrcnn_loss(logits, reg, [torch.zeros(0, dtype=torch.int64)], [torch.zeros(0, 4)])
    ec, er = tv().models.detection.roi_heads.fastrcnn_loss(logits, reg, [torch.zeros(0, dtype=torch.int64)],
                                                           [torch.zeros(0, 4)])
    close(lc, ec)
    close(lr, er)


# ----------------------------------------------------------------------------- fastrcnn_loss

def fastrcnn_inputs(seed, device, dtype, C):
    rng, gen = random.Random(seed), helpers.torch_gen(seed)
    labels = [random_labels(rng, gen, rng.randint(1, 64), rng.choice(("mixed", "mixed", "no_pos", "all_pos", "none")),
                            device, torch.int64, C).clamp(min=0) for _ in range(rng.randint(1, 3))]
    if sum(len(x) for x in labels) == 0:
        labels.append(torch.zeros(3, dtype=torch.int64, device=device))
    K = sum(len(x) for x in labels)
    targets = [torch.randn(len(x), 4, generator=gen, dtype=dtype).to(device) for x in labels]
    logits = torch.randn(K, C, generator=gen, dtype=dtype).to(device).requires_grad_()
    reg = torch.randn(K, 4 * C, generator=gen, dtype=dtype).mul(0.3).to(device).requires_grad_()
    return logits, reg, labels, targets


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=helpers.dtype_id)
@pytest.mark.parametrize("C", [2, 5, 91])
def test_fastrcnn_loss_matches_torchvision(device, dtype, C):
    TV = tv().models.detection.roi_heads.fastrcnn_loss
    for seed in range(8):
        logits, reg, labels, targets = fastrcnn_inputs(seed, device, dtype, C)
        lc, lb = fastrcnn_loss(logits, reg, labels, targets)
        ec, eb = TV(logits, reg, labels, targets)
        assert lc.shape == lb.shape == () and lc.dtype == lb.dtype == dtype
        close(lc, ec, dtype)
        close(lb, eb, dtype)
        g = torch.autograd.grad(lc + lb, (logits, reg))
        e = torch.autograd.grad(ec + eb, (logits, reg))
        for x, y in zip(g, e):
            assert torch.isfinite(x).all()
            close(x, y, dtype)


def test_fastrcnn_loss_no_positives_still_connected(device):
    logits = torch.randn(6, 3, device=device, requires_grad=True)
    reg = torch.randn(6, 12, device=device, requires_grad=True)
    labels = [torch.zeros(4, dtype=torch.int64, device=device), torch.zeros(2, dtype=torch.int64, device=device)]
    targets = [torch.randn(4, 4, device=device), torch.randn(2, 4, device=device)]
    lc, lb = fastrcnn_loss(logits, reg, labels, targets)
    assert lb.item() == 0 and lb.requires_grad
    (gr,) = torch.autograd.grad(lb, (reg,), retain_graph=True)
    assert torch.equal(gr, torch.zeros_like(reg))
    gl, gr = torch.autograd.grad(lc + lb, (logits, reg))
    assert torch.count_nonzero(gl) > 0 and torch.equal(gr, torch.zeros_like(reg))


# ----------------------------------------------------------------------------- masks

def mask_image(rng, gen, device, dtype, H, W, num_classes, kind):
    """One image's (gt_masks [G,H,W], gt_labels [G], proposals [P,4], matched_idxs [P])."""
    G = 0 if kind == "no_gt" else rng.randint(1, 4)
    masks = torch.rand(G, H, W, generator=gen) > 0.5
    mask_dtype = rng.choice((torch.uint8, torch.bool, torch.float32))
    gt_labels = torch.randint(1, num_classes, (G,), generator=gen)
    P = 0 if kind in ("no_gt", "no_pos") else rng.randint(1, 12)
    xy = torch.rand(P, 2, generator=gen, dtype=torch.float64) * torch.tensor([W, H]) * 1.2 - 2
    wh = torch.rand(P, 2, generator=gen, dtype=torch.float64) * torch.tensor([W, H]) * 0.8
    proposals = torch.cat([xy, xy + wh], 1).to(dtype)
    matched = torch.randint(0, max(G, 1), (P,), generator=gen)
    return masks.to(mask_dtype).to(device), gt_labels.to(device), proposals.to(device), matched.to(device)


@helpers.needs_ops
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=helpers.dtype_id)
def test_project_masks_on_boxes_matches_torchvision(device, dtype):
    TV = tv().models.detection.roi_heads.project_masks_on_boxes
    for seed in SEEDS:
        rng, gen = random.Random(seed), helpers.torch_gen(seed)
        for M in (1, 7, 28):
            masks, _, boxes, idx = mask_image(rng, gen, device, dtype, rng.randint(1, 40), rng.randint(1, 40), 3,
                                              rng.choice(("mixed", "mixed", "no_pos")))
            out, exp = project_masks_on_boxes(masks, boxes, idx, M), TV(masks, boxes, idx, M)
            assert out.shape == exp.shape == (len(boxes), M, M) and out.dtype == exp.dtype == dtype
            close(out, exp, dtype)


def mask_inputs(seed, device, dtype, C, M, kinds=("mixed", "mixed", "no_pos", "no_gt")):
    rng, gen = random.Random(seed), helpers.torch_gen(seed)
    H, W = rng.randint(4, 48), rng.randint(4, 48)
    imgs = [mask_image(rng, gen, device, dtype, H, W, C, rng.choice(kinds)) for _ in range(rng.randint(1, 3))]
    gt_masks, gt_labels, proposals, matched = (list(x) for x in zip(*imgs))
    P = sum(len(p) for p in proposals)
    logits = torch.randn(P, C, M, M, generator=gen, dtype=dtype).mul(2).to(device).requires_grad_()
    return logits, proposals, gt_masks, gt_labels, matched


@helpers.needs_ops
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=helpers.dtype_id)
@pytest.mark.parametrize("C, M", [(2, 7), (5, 14), (91, 28)])
def test_maskrcnn_loss_matches_torchvision(device, dtype, C, M):
    TV = tv().models.detection.roi_heads.maskrcnn_loss
    for seed in SEEDS:
        logits, proposals, gt_masks, gt_labels, matched = mask_inputs(seed, device, dtype, C, M)
        loss = maskrcnn_loss(logits, proposals, gt_masks, gt_labels, matched)
        exp = TV(logits, proposals, gt_masks, gt_labels, matched)
        assert loss.shape == () and loss.dtype == dtype and torch.isfinite(loss)
        close(loss, exp, dtype)
        (g,) = torch.autograd.grad(loss, (logits,))
        (e,) = torch.autograd.grad(exp, (logits,))
        close(g, e, dtype)
        # only each proposal's own class gets a gradient
        P = logits.shape[0]
        if P:
            lab = torch.cat([gl[i] for gl, i in zip(gt_labels, matched)])
            other = torch.ones(P, C, dtype=torch.bool, device=device)
            other[torch.arange(P, device=device), lab] = False
            assert torch.count_nonzero(g[other]) == 0


@helpers.needs_ops
def test_maskrcnn_loss_no_positives_is_connected_zero(device):
    for seed in SEEDS:
        logits, proposals, gt_masks, gt_labels, matched = mask_inputs(seed, device, torch.float32, 3, 7,
                                                                      kinds=("no_pos", "no_gt"))
        assert logits.shape[0] == 0
        loss = maskrcnn_loss(logits, proposals, gt_masks, gt_labels, matched)
        assert loss.shape == () and loss.item() == 0 and loss.requires_grad
        (g,) = torch.autograd.grad(loss, (logits,))
        assert g.shape == logits.shape
        close(loss, tv().models.detection.roi_heads.maskrcnn_loss(logits, proposals, gt_masks, gt_labels, matched))


# ----------------------------------------------------------------------------- no torchvision at run time

def test_library_does_not_import_torchvision():
    code = ("import sys\n"
            "import fastseg.models.detection.matching, fastseg.models.detection.losses\n"
            "assert 'torchvision' not in sys.modules, sorted(m for m in sys.modules if 'torchvision' in m)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=helpers._child_env())
    assert r.returncode == 0, r.stderr
