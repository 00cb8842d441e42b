"""fastseg.metrics: PanopticQuality against hand-worked maps and against the loop-based
fastseg.reference.panoptic_quality on random scenes; streaming == merge == all_reduce (a real
2-process gloo group); MeanIoU against numpy; bad inputs raise ValueError naming the argument.
Pure PyTorch: runs without the compiled extension."""
import importlib
import json
import math

import numpy as np
import pytest
import torch

from fastseg.metrics import MeanIoU, PanopticQuality

R = importlib.import_module("fastseg.reference.panoptic_quality")

THINGS, STUFF = (1, 2), (3, 4)
CATS = {1: True, 2: True, 3: False, 4: False}  # category id -> isthing
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


def seg(sid, cat, crowd=0):
    return {"id": sid, "category_id": cat, "isthing": CATS[cat], "area": -1, "iscrowd": crowd}  # area is not read


def m(rows):
    return torch.tensor(rows, dtype=torch.int32)


def new_pq(**kw):
    return PanopticQuality(THINGS, STUFF, **kw)


def counts_of(metric):
    """{cat: (tp, fp, fn)} and {cat: iou_sum} of a PanopticQuality."""
    c, s = metric.counts.cpu().tolist(), metric.iou_sum.cpu().tolist()
    return ({cat: tuple(row) for cat, row in zip(metric.category_ids, c)},
            dict(zip(metric.category_ids, s)))


def assert_stats(metric, expected, msg=""):
    """expected: {cat: (tp, fp, fn, iou_sum)}; unlisted categories must be all zero."""
    counts, ious = counts_of(metric)
    for cat in metric.category_ids:
        tp, fp, fn, iou = expected.get(cat, (0, 0, 0, 0.0))
        assert counts[cat] == (tp, fp, fn), f"{msg} category {cat}"
        assert ious[cat] == pytest.approx(iou, abs=1e-12), f"{msg} category {cat}"


def assert_summary(res, expected):
    for key, value in expected.items():
        assert res[key] == pytest.approx(value, abs=1e-12), key


# ----------------------------------------------------------------------------- hand-worked cases
# Categories: things 1, 2; stuff 3, 4. Each case: gt map + segments, pred map + segments, the
# expected per-category (tp, fp, fn, iou_sum), and the summary worked out in the comment.

HAND_CASES = {
    # Relabelled copy: cat 1 gets 2 tp (iou 1 each), cat 3 one tp. Categories 2, 4 unseen.
    # PQ = SQ = RQ = 1 over n = 2 (n_th = n_st = 1).
    "perfect": (
        m([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3], [3, 3, 3, 3]]),
        [seg(1, 1), seg(2, 1), seg(3, 3)],
        m([[5, 5, 7, 7], [5, 5, 7, 7], [9, 9, 9, 9], [9, 9, 9, 9]]),
        [seg(5, 1), seg(7, 1), seg(9, 3)],
        {1: (2, 0, 0, 2.0), 3: (1, 0, 0, 1.0)},
        {"pq": 1, "sq": 1, "rq": 1, "n": 2, "pq_th": 1, "n_th": 1, "pq_st": 1, "n_st": 1},
    ),
    # gt 1 (cat 1, 8 px) vs pred 1 (4 px inside it): IoU = 4 / (4 + 8 - 4) = 0.5, not > 0.5, so
    # cat 1 has fp 1, fn 1. gt 2 (cat 3, 8 px) vs pred 2 (12 px): IoU = 8 / 12, a tp.
    # PQ: cat 1 = 0, cat 3 = (2/3) / 1 -> pq = 1/3, sq = 1/3, rq = (0 + 1) / 2 = 0.5.
    "iou_exactly_half": (
        m([[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 2, 2]]),
        [seg(1, 1), seg(2, 3)],
        m([[1, 1, 2, 2], [1, 1, 2, 2], [2, 2, 2, 2], [2, 2, 2, 2]]),
        [seg(1, 1), seg(2, 3)],
        {1: (0, 1, 1, 0.0), 3: (1, 0, 0, 2 / 3)},
        {"pq": 1 / 3, "sq": 1 / 3, "rq": 0.5, "n": 2, "pq_th": 0, "pq_st": 2 / 3},
    ),
    # As above but pred 1 has 5 px of gt 1: IoU = 5 / 8 > 0.5, a tp; pred 2 then has 11 px:
    # IoU = 8 / 11. PQ = (5/8 + 8/11) / 2, RQ = 1.
    "iou_just_above_half": (
        m([[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 2, 2]]),
        [seg(1, 1), seg(2, 3)],
        m([[1, 1, 2, 2], [1, 1, 2, 2], [1, 2, 2, 2], [2, 2, 2, 2]]),
        [seg(1, 1), seg(2, 3)],
        {1: (1, 0, 0, 5 / 8), 3: (1, 0, 0, 8 / 11)},
        {"pq": (5 / 8 + 8 / 11) / 2, "sq": (5 / 8 + 8 / 11) / 2, "rq": 1, "n": 2},
    ),
    # VOID is left out of the union: pred 5 (cat 1, 8 px) covers gt 1 (4 px) and 4 void px:
    # union = 8 + 4 - 4 - 4 = 4, IoU 1, a tp. pred 6 (cat 2; (2,0) (2,1) (3,0)) is 2/3 void:
    # exempt. pred 7 (cat 4; (2,2) (2,3) (3,2) (3,3)) is exactly 1/2 void: not > 1/2, an fp.
    # pred 8 (cat 3, 1 px of gt 2): IoU 1 / (1 + 4 - 1) = 1/4, an fp; gt 2 (cat 3) an fn.
    # Per class pq: cat 1 = 1, cat 3 = 0, cat 4 = 0 (cat 2 unseen): pq = sq = rq = 1/3,
    # pq_th = 1 (n_th = 1), pq_st = 0 (n_st = 2).
    "void_overlap": (
        m([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [2, 2, 2, 2]]),
        [seg(1, 1), seg(2, 3)],
        m([[5, 5, 5, 5], [5, 5, 5, 5], [6, 6, 7, 7], [6, 8, 7, 7]]),
        [seg(5, 1), seg(6, 2), seg(7, 4), seg(8, 3)],
        {1: (1, 0, 0, 1.0), 3: (0, 1, 1, 0.0), 4: (0, 1, 0, 0.0)},
        {"pq": 1 / 3, "sq": 1 / 3, "rq": 1 / 3, "n": 3, "pq_th": 1, "n_th": 1, "pq_st": 0, "n_st": 2},
    ),
    # gt 1 (cat 1, crowd, 6 px) is neither matched nor fn. pred 5 (cat 1, 3 px inside it) is
    # exempt (3/3 in its category's crowd); pred 8 (cat 2, 3 px inside it) is an fp (cat 2 has
    # no crowd region). pred 6 = gt 2 (cat 1) and pred 7 = gt 3 (cat 3) are exact tps.
    # per class pq: 1, 0, 1 -> pq = sq = rq = 2/3, pq_th = 1/2, pq_st = 1.
    "crowd": (
        m([[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3]]),
        [seg(1, 1, crowd=1), seg(2, 1), seg(3, 3)],
        m([[5, 8, 6, 6], [5, 8, 6, 6], [5, 8, 6, 6], [7, 7, 7, 7]]),
        [seg(5, 1), seg(8, 2), seg(6, 1), seg(7, 3)],
        {1: (1, 0, 0, 1.0), 2: (0, 1, 0, 0.0), 3: (1, 0, 0, 1.0)},
        {"pq": 2 / 3, "sq": 2 / 3, "rq": 2 / 3, "n": 3, "pq_th": 0.5, "n_th": 2, "pq_st": 1, "n_st": 1},
    ),
    # Same pixels, different categories: never compared. cat 1 fn 1, cat 2 fp 1: everything 0.
    "category_mismatch": (
        m([[1, 1], [1, 1]]),
        [seg(1, 1)],
        m([[1, 1], [1, 1]]),
        [seg(1, 2)],
        {1: (0, 0, 1, 0.0), 2: (0, 1, 0, 0.0)},
        {"pq": 0, "sq": 0, "rq": 0, "n": 2, "n_th": 2, "n_st": 0},
    ),
    # Nothing predicted: every gt segment is an fn.
    "empty_prediction": (
        m([[1, 1, 2], [1, 1, 2]]),
        [seg(1, 2), seg(2, 4)],
        m([[0, 0, 0], [0, 0, 0]]),
        [],
        {2: (0, 0, 1, 0.0), 4: (0, 0, 1, 0.0)},
        {"pq": 0, "n": 2, "n_th": 1, "n_st": 1},
    ),
    # gt all void: the prediction lies entirely in VOID, so it is exempt. Nothing counts: n = 0 and
    # every average is reported as 0.0.
    "all_void": (
        m([[0, 0, 0], [0, 0, 0]]),
        [],
        m([[4, 4, 4], [4, 0, 9]]),
        [seg(4, 3), seg(9, 1)],
        {},
        {"pq": 0, "sq": 0, "rq": 0, "n": 0, "n_th": 0, "n_st": 0},
    ),
    # panopticapi keeps ONE crowd region per category, the last listed: pred 5 (cat 1) lies in the
    # first crowd segment (id 1), which is forgotten, so pred 5 is an fp.
    "two_crowds_last_listed_wins": (
        m([[1, 1, 2, 2], [1, 1, 2, 2]]),
        [seg(1, 1, crowd=1), seg(2, 1, crowd=1)],
        m([[5, 5, 0, 0], [5, 5, 0, 0]]),
        [seg(5, 1)],
        {1: (0, 1, 0, 0.0)},
        {"pq": 0, "n": 1},
    ),
}

@pytest.mark.parametrize("name", list(HAND_CASES))
def test_hand_cases(name):
    gt, gt_info, pred, pred_info, expected, summary = HAND_CASES[name]
    pq = new_pq()
    pq.update(pred, pred_info, gt, gt_info)
    assert_stats(pq, expected)
    res = pq.compute()
    assert_summary(res, summary)
    for cat in CATS:
        tp, fp, fn, _ = expected.get(cat, (0, 0, 0, 0.0))
        assert (res["per_class"][cat]["tp"], res["per_class"][cat]["fp"], res["per_class"][cat]["fn"]) == (tp, fp, fn)
    # the reference agrees with the hand-worked numbers too
    ref = R.pq_compute_single(pred, pred_info, gt, gt_info, CATS)
    for cat in CATS:
        tp, fp, fn, iou = expected.get(cat, (0, 0, 0, 0.0))
        assert ref[cat][:3] == [tp, fp, fn] and ref[cat][3] == pytest.approx(iou, abs=1e-12), cat
    assert_summary(R.pq_from_stats(ref, CATS), summary)


def test_crowd_not_ignored():
    """ignore_crowd=False: the crowd gt 1 (cat 1, 6 px) is an ordinary segment. pred 5 (3 px
    inside it): IoU 3/6 = 0.5, no match: cat 1 gets fp 1 and fn 1 besides the tp, so
    pq_1 = 1 / (1 + 0.5 + 0.5) = 0.5; pred 8 (cat 2) stays an fp."""
    gt, gt_info, pred, pred_info, _, _ = HAND_CASES["crowd"]
    pq = new_pq(ignore_crowd=False)
    pq.update(pred, pred_info, gt, gt_info)
    assert_stats(pq, {1: (1, 1, 1, 1.0), 2: (0, 1, 0, 0.0), 3: (1, 0, 0, 1.0)})
    assert pq.compute()["per_class"][1]["pq"] == pytest.approx(0.5)
    ref = R.pq_compute_single(pred, pred_info, gt, gt_info, CATS, ignore_crowd=False)
    assert ref[1][:3] == [1, 1, 1]


def test_areas_come_from_the_maps():
    """The dicts' "area" (here absurd) is not read; a listed gt segment with no pixels is an fn."""
    gt, gt_info, pred, pred_info, expected, _ = HAND_CASES["perfect"]
    gt_info = [{**s, "area": 1000} for s in gt_info] + [seg(40, 4)]
    pred_info = [{**s, "area": 1} for s in pred_info]
    pq = new_pq()
    pq.update(pred, pred_info, gt, gt_info)
    assert_stats(pq, {**expected, 4: (0, 0, 1, 0.0)})


def test_large_ids_and_dtypes():
    """Ids up to 2**31 - 1 (no overflow in gt * OFFSET + pred), and any integer dtype."""
    big = 2**31 - 1
    gt = torch.tensor([[big, big, 3], [big, 0, 3]], dtype=torch.int64)
    pred = torch.tensor([[big, big, 1], [big, big, 1]], dtype=torch.int64)
    gt_info, pred_info = [seg(big, 1), seg(3, 3)], [seg(big, 1), seg(1, 3)]
    pq = new_pq()
    pq.update(pred, pred_info, gt, gt_info)
    # pred big: 4 px (1 void), gt big 3 px: union 4 + 3 - 3 - 1 = 3, IoU 1. 3 <-> 1: IoU 1.
    assert_stats(pq, {1: (1, 0, 0, 1.0), 3: (1, 0, 0, 1.0)})
    small = new_pq()
    for dtype in (torch.uint8, torch.int16, torch.int32):
        g, gi, p, pi, _, _ = HAND_CASES["crowd"]
        small.update(p.to(dtype), pi, g.to(torch.int64), gi)
    counts, _ = counts_of(small)
    assert counts[1] == (3, 0, 0) and counts[2] == (0, 3, 0)


# ----------------------------------------------------------------------------- random scenes

SIZES = [(1, 1), (1, 6), (5, 1), (2, 2), (3, 4), (4, 4), (6, 6), (7, 5), (9, 9), (12, 10)]


def _ri(gen, lo, hi):
    """Uniform int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _paint_rects(gen, canvas, values):
    h, w = canvas.shape
    for v in values:
        y0, x0 = _ri(gen, 0, h - 1), _ri(gen, 0, w - 1)
        canvas[y0:_ri(gen, y0 + 1, h), x0:_ri(gen, x0 + 1, w)] = v


def random_scene(seed, h, w):
    """gt: up to 6 overlapping rectangles, void holes, ~20% crowd, sometimes a listed segment with
    no pixels. pred: the gt relabelled (same category 75% of the time), then perturbed by
    rectangles of existing ids, new ids and void."""
    gen = torch.Generator().manual_seed(seed)
    cats = list(CATS)
    gt = torch.zeros(h, w, dtype=torch.int32)
    gt_ids = (torch.randperm(60, generator=gen)[:_ri(gen, 0, 6)] + 1).tolist()
    _paint_rects(gen, gt, gt_ids)
    _paint_rects(gen, gt, [0] * _ri(gen, 0, 2))
    gt_cat = {i: cats[_ri(gen, 0, 3)] for i in gt_ids}
    present = sorted(set(gt.flatten().tolist()) - {0})
    gt_info = [seg(i, gt_cat[i], crowd=int(_ri(gen, 0, 4) == 0)) for i in present]
    if _ri(gen, 0, 9) == 0:
        gt_info.append(seg(99, cats[_ri(gen, 0, 3)]))
    perm = torch.randperm(len(gt_info), generator=gen).tolist()
    gt_info = [gt_info[k] for k in perm]  # listing order matters for crowds: shuffle it

    to_pred = {i: 100 + k for k, i in enumerate(present)}
    pred = gt.clone()
    for i, j in to_pred.items():
        pred[gt == i] = j
    extra = [to_pred[i] for i in present] + [200 + k for k in range(3)] + [0]
    _paint_rects(gen, pred, [extra[_ri(gen, 0, len(extra) - 1)] for _ in range(_ri(gen, 0, 4))])
    pred_cat = {j: gt_cat[i] if _ri(gen, 0, 3) else cats[_ri(gen, 0, 3)] for i, j in to_pred.items()}
    pred_info = [seg(j, pred_cat.get(j, cats[_ri(gen, 0, 3)])) for j in sorted(set(pred.flatten().tolist()) - {0})]
    return pred, pred_info, gt, gt_info


SCENES = [random_scene(seed, *SIZES[seed % len(SIZES)]) for seed in range(300)]


def ref_total(scenes, ignore_crowd=True):
    total = {cat: [0, 0, 0, 0.0] for cat in CATS}
    for scene in scenes:
        for cat, stat in R.pq_compute_single(*scene, CATS, ignore_crowd=ignore_crowd).items():
            total[cat] = [a + b for a, b in zip(total[cat], stat)]
    return total


@pytest.mark.parametrize("ignore_crowd", [True, False])
def test_random_scenes_match_reference(ignore_crowd):
    """Every scene alone, then the stream: the same counts as the loop reference, iou_sum to
    1e-12, and the same summary. The scenes must exercise every rule (guards against a
    generator that only makes easy cases)."""
    total = new_pq(ignore_crowd=ignore_crowd)
    for k, scene in enumerate(SCENES):
        one = new_pq(ignore_crowd=ignore_crowd)
        one.update(*scene)
        ref = R.pq_compute_single(*scene, CATS, ignore_crowd=ignore_crowd)
        assert_stats(one, {cat: tuple(v) for cat, v in ref.items()}, f"scene {k}")
        total.update(*scene)
    ref = ref_total(SCENES, ignore_crowd)
    assert_stats(total, {cat: tuple(v) for cat, v in ref.items()})
    res, ref_res = total.compute(), R.pq_from_stats(ref, CATS)
    assert_summary(res, {k: v for k, v in ref_res.items() if k != "per_class"})
    for cat in CATS:
        assert_summary(res["per_class"][cat], ref_res["per_class"][cat])
    tp, fp, fn = (sum(v[i] for v in ref.values()) for i in range(3))
    assert min(tp, fp, fn) >= 20 and 0.1 < res["pq"] < 0.9


def test_random_scenes_exercise_crowd_and_void():
    """ignore_crowd changes the counts, and some preds are exempted (fewer fp than unmatched)."""
    with_crowd, without = ref_total(SCENES, True), ref_total(SCENES, False)
    assert with_crowd != without
    assert sum(t[3] for t in with_crowd.values()) > 0


def test_stream_equals_merge_of_halves():
    """One metric fed every image == two metrics fed half each, merged; reset empties it."""
    whole, a, b = new_pq(), new_pq(), new_pq()
    for k, scene in enumerate(SCENES[:40]):
        whole.update(*scene)
        (a if k % 2 else b).update(*scene)
    assert a.merge(b) is a
    assert torch.equal(a.counts, whole.counts)
    assert torch.allclose(a.iou_sum, whole.iou_sum, rtol=0, atol=1e-12)
    assert a.compute()["pq"] == pytest.approx(whole.compute()["pq"], abs=1e-12)
    assert whole.counts.sum() > 0
    whole.reset()
    assert whole.counts.sum() == 0 and whole.iou_sum.sum() == 0 and whole.compute()["n"] == 0


def test_state_dict_roundtrip():
    src = new_pq()
    for scene in SCENES[:5]:
        src.update(*scene)
    dst = new_pq()
    dst.load_state_dict(src.state_dict())
    assert dst.compute() == src.compute()
    with pytest.raises(ValueError, match="category_ids"):
        PanopticQuality((1,), (3, 4)).load_state_dict(src.state_dict())


def test_all_reduce_without_distributed_is_a_noop():
    pq, miou = new_pq(), MeanIoU(3)
    pq.update(*SCENES[3])
    miou.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))
    before = (pq.counts.clone(), pq.iou_sum.clone(), miou.confusion_matrix.clone())
    assert pq.all_reduce() is False and miou.all_reduce() is False
    assert torch.equal(before[0], pq.counts) and torch.equal(before[1], pq.iou_sum)
    assert torch.equal(before[2], miou.confusion_matrix)


def _dist_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        pq, miou = new_pq(), MeanIoU(5)
        for scene in SCENES[rank::world]:
            pq.update(*scene)
            miou.update(scene[0] % 5, scene[2] % 5)
        assert pq.all_reduce() and miou.all_reduce()
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump({"counts": pq.counts.tolist(), "iou_sum": pq.iou_sum.tolist(),
                       "cm": miou.confusion_matrix.tolist()}, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                    reason="needs torch.distributed with gloo")
def test_all_reduce_two_processes(tmp_path):
    """Two gloo ranks, each fed half the scenes: after all_reduce both hold the single-process total."""
    torch.multiprocessing.spawn(_dist_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    pq, miou = new_pq(), MeanIoU(5)
    for scene in SCENES:
        pq.update(*scene)
        miou.update(scene[0] % 5, scene[2] % 5)
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["counts"] == pq.counts.tolist()
        assert got["iou_sum"] == pytest.approx(pq.iou_sum.tolist(), abs=1e-12)
        assert got["cm"] == miou.confusion_matrix.tolist()


# ----------------------------------------------------------------------------- PQ bad inputs

def _bad_update(**over):
    gt, gt_info, pred, pred_info, _, _ = HAND_CASES["perfect"]
    args = {"pred_panoptic": pred, "pred_segments_info": pred_info,
            "target_panoptic": gt, "target_segments_info": gt_info, **over}
    new_pq().update(**args)


P, G = HAND_CASES["perfect"][2], HAND_CASES["perfect"][0]
PQ_BAD = {
    "pred id not listed": ({"pred_segments_info": [seg(5, 1), seg(7, 1)]}, r"pred_panoptic has segment ids \[9\]"),
    "gt id not listed": ({"target_segments_info": [seg(1, 1), seg(2, 1)]}, r"target_panoptic has segment ids \[3\]"),
    "listed pred absent": ({"pred_segments_info": [seg(5, 1), seg(7, 1), seg(9, 3), seg(11, 2)]},
                           r"pred_segments_info lists segment ids \[11\]"),
    "unknown pred category": ({"pred_segments_info": [seg(5, 1), seg(7, 1), {"id": 9, "category_id": 17}]},
                              "pred_segments_info: segment 9 has unknown category_id 17"),
    "unknown gt category": ({"target_segments_info": [seg(1, 1), seg(2, 1), {"id": 3, "category_id": 0}]},
                            "target_segments_info: segment 3 has unknown category_id 0"),
    "duplicate id": ({"pred_segments_info": [seg(5, 1), seg(5, 1), seg(7, 1), seg(9, 3)]},
                     r"pred_segments_info lists segment ids \[5\] more than once"),
    "id 0 listed": ({"target_segments_info": [seg(0, 1), seg(1, 1), seg(2, 1), seg(3, 3)]},
                    r"target_segments_info\[0\] has id 0"),
    "missing key": ({"pred_segments_info": [{"id": 5}]}, r"pred_segments_info\[0\] needs"),
    "negative id": ({"pred_panoptic": P - 6}, "pred_panoptic ids must be in"),
    "float map": ({"target_panoptic": G.float()}, "target_panoptic must be an integer tensor"),
    "bool map": ({"pred_panoptic": P > 5}, "pred_panoptic must be an integer tensor"),
    "shape": ({"pred_panoptic": P[:3]}, "pred_panoptic and target_panoptic must have the same shape"),
}


@pytest.mark.parametrize("name", list(PQ_BAD))
def test_pq_bad_inputs(name):
    over, match = PQ_BAD[name]
    with pytest.raises(ValueError, match=match):
        _bad_update(**over)


def test_pq_bad_construction_and_merge():
    with pytest.raises(ValueError, match="both thing_ids and stuff_ids"):
        PanopticQuality([1, 2], [2, 3])
    with pytest.raises(ValueError, match="duplicates"):
        PanopticQuality([1, 1], [3])
    with pytest.raises(ValueError, match="both empty"):
        PanopticQuality([], [])
    with pytest.raises(ValueError, match="differ"):
        new_pq().merge(PanopticQuality([1, 2, 3], [4]))
    with pytest.raises(ValueError, match="differ"):
        new_pq().merge(new_pq(ignore_crowd=False))
    with pytest.raises(TypeError, match="pred_panoptic must be a Tensor"):
        _bad_update(pred_panoptic=[[1]])


# ----------------------------------------------------------------------------- MeanIoU

def numpy_miou(pred, target, c, ignore):
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    keep = target != ignore
    cm = np.zeros((c, c), dtype=np.int64)
    np.add.at(cm, (target[keep], pred[keep]), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
        acc = np.diag(cm) / cm.sum(1)
    return cm, iou, np.nanmean(iou), np.diag(cm).sum() / cm.sum(), np.nanmean(acc)


def test_miou_hand_case():
    """3 classes, 255 ignored. Non-ignored pixels (target, pred): (0,0) (0,0) (0,1) (1,1) (1,1)
    (1,0) (2,2) — class 0: tp 2, fp 1, fn 1 -> IoU 2/4; class 1: tp 2, fp 1, fn 1 -> 2/4;
    class 2: 1/1. mIoU = 2/3, pixel acc = 5/7, mean acc = (2/3 + 2/3 + 1) / 3."""
    target = torch.tensor([[0, 0, 0, 1], [1, 1, 2, 255]])
    pred = torch.tensor([[0, 0, 1, 1], [1, 0, 2, 7]])  # 7 sits on an ignored pixel: allowed
    metric = MeanIoU(3)
    metric.update(pred, target)
    res = metric.compute()
    assert res["iou"] == pytest.approx([0.5, 0.5, 1.0])
    assert res["miou"] == pytest.approx(2 / 3)
    assert res["pixel_accuracy"] == pytest.approx(5 / 7)
    assert res["mean_accuracy"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_miou_absent_class_is_nan_and_excluded():
    metric = MeanIoU(4)
    metric.update(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]))
    res = metric.compute()
    assert math.isnan(res["iou"][2]) and math.isnan(res["iou"][3])
    assert res["miou"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert math.isnan(MeanIoU(2).compute()["miou"])


@pytest.mark.parametrize("ignore", [255, 0, None])
def test_miou_random_vs_numpy(ignore):
    """Batched [N, H, W] uint8/int64 maps, streamed and merged, against numpy's confusion matrix."""
    gen = torch.Generator().manual_seed(7)
    c = 6
    whole, a, b = MeanIoU(c, ignore), MeanIoU(c, ignore), MeanIoU(c, ignore)
    preds, targets = [], []
    for k in range(12):
        shape = (_ri(gen, 1, 3), _ri(gen, 1, 9), _ri(gen, 1, 9))
        target = torch.randint(0, c, shape, generator=gen)
        if ignore is not None:
            target[torch.rand(shape, generator=gen) < 0.2] = ignore
        pred = torch.where(torch.rand(shape, generator=gen) < 0.6, target.clamp(max=c - 1),
                           torch.randint(0, c, shape, generator=gen)).to(torch.uint8)
        whole.update(pred, target)
        (a if k % 2 else b).update(pred, target)
        preds.append(pred.long().flatten())
        targets.append(target.flatten())
    cm, iou, miou, pacc, macc = numpy_miou(torch.cat(preds).numpy(), torch.cat(targets).numpy(), c,
                                           -1 if ignore is None else ignore)
    assert whole.confusion_matrix.tolist() == cm.tolist()
    assert torch.equal(a.merge(b).confusion_matrix, whole.confusion_matrix)
    res = whole.compute()
    np.testing.assert_allclose(res["iou"], iou, rtol=1e-12)
    assert res["miou"] == pytest.approx(miou, rel=1e-12)
    assert res["pixel_accuracy"] == pytest.approx(pacc, rel=1e-12)
    assert res["mean_accuracy"] == pytest.approx(macc, rel=1e-12)


MIOU_BAD = {
    "pred too large": (torch.tensor([0, 3]), torch.tensor([0, 1]), ValueError, r"pred has labels in \[0, 3\]"),
    "pred negative": (torch.tensor([-1, 0]), torch.tensor([0, 1]), ValueError, "pred has labels"),
    "target out of range": (torch.tensor([0, 1]), torch.tensor([0, 9]), ValueError, "target has values"),
    "shape": (torch.tensor([0, 1]), torch.tensor([[0, 1]]), ValueError, "pred and target must have the same shape"),
    "float pred": (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), ValueError, "pred must be an integer tensor"),
    "list target": (torch.tensor([0, 1]), [0, 1], TypeError, "target must be a Tensor"),
}


@pytest.mark.parametrize("name", list(MIOU_BAD))
def test_miou_bad_inputs(name):
    pred, target, exc, match = MIOU_BAD[name]
    with pytest.raises(exc, match=match):
        MeanIoU(3).update(pred, target)


def test_miou_bad_construction_and_merge():
    with pytest.raises(ValueError, match="num_classes"):
        MeanIoU(0)
    with pytest.raises(ValueError, match="differ"):
        MeanIoU(3).merge(MeanIoU(3, ignore_index=None))


# ----------------------------------------------------------------------------- CUDA

@CUDA
def test_cuda_matches_cpu():
    """The same scenes on the GPU: state moves there and the results equal the CPU ones."""
    cpu, gpu = new_pq(), new_pq()
    for pred, pred_info, gt, gt_info in SCENES[:30]:
        cpu.update(pred, pred_info, gt, gt_info)
        gpu.update(pred.cuda(), pred_info, gt.cuda(), gt_info)
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.counts.cpu(), cpu.counts)
    assert torch.allclose(gpu.iou_sum.cpu(), cpu.iou_sum, rtol=0, atol=1e-12)
    assert gpu.compute()["pq"] == pytest.approx(cpu.compute()["pq"], abs=1e-12)
    m_cpu, m_gpu = MeanIoU(4), MeanIoU(4)
    target = torch.randint(0, 4, (2, 9, 9), generator=torch.Generator().manual_seed(1))
    pred = (target + (torch.arange(target.numel()).view_as(target) % 3 == 0)) % 4
    m_cpu.update(pred, target)
    m_gpu.update(pred.cuda(), target.cuda())
    assert m_gpu.device.type == "cuda"
    assert torch.equal(m_gpu.confusion_matrix.cpu(), m_cpu.confusion_matrix)


def test_mean_iou_ignore_index_inside_the_label_range():
    """Target pixels of the ignored class are skipped; predictions of it still count against the
    other classes, and its IoU (0 here: predicted, never a counted target) enters the mean, as the
    docstring says."""
    from fastseg.metrics import MeanIoU
    m = MeanIoU(3, ignore_index=1)
    m.update(torch.tensor([0, 2, 2, 1]), torch.tensor([0, 1, 2, 2]))  # (prediction, target)
    result = m.compute()
    assert result["iou"] == [1.0, 0.0, 0.5] and result["miou"] == 0.5
