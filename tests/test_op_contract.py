"""One contract for every op (issue 14): no silent wrong results.

For every public op of fastseg.ops, generated from one table (`SPECS`) of good arguments:

- devices: each tensor argument on `meta` (and on cuda when there is one) while the others are on
  the CPU raises, naming the argument, both through the Python wrapper and through the dispatcher
  op (`torch.ops.fastseg.*`, i.e. the fake kernels); all-meta arguments still work (the fake path);
- scalars: every float argument NaN / +-inf raises a ValueError naming it; every bool / int / float
  argument given as a str, a float (for ints and bools) or a bool (for ints and floats) raises a
  TypeError naming it; numpy scalars (and 0-dim tensors where torchvision takes them) are accepted
  and give the results of the Python scalars;
- bounded work and sizes: a huge sampling_ratio, sizes whose product wraps int64 (run in a
  subprocess: on the old code they hang, abort or crash);
- paste_masks(into=) refuses an `into` that shares memory with what it reads;
- batched_nms on empty boxes returns before looking at the other arguments (torchvision's rule);
- messages blame the user's argument (boxes, image_shapes, padding), not an internal one.
"""
import importlib
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastseg.ops as fops

import helpers
from helpers import BadCase

pytestmark = helpers.needs_ops

RA = importlib.import_module("fastseg.ops.roi_align")  # the module (fastseg.ops.roi_align is the function)
MAX_SAMPLING_RATIO = getattr(RA, "MAX_SAMPLING_RATIO", 4096)

OTHER_DEVICES = ["meta"] + (["cuda"] if torch.cuda.is_available() and helpers.HAS_CUDA_KERNELS else [])


# ----------------------------------------------------------------------------- the table

class Spec:
    """An op called as fn(**args) with good CPU arguments, and which scalar argument is which kind.

    ints: int arguments (and int pairs); bools; floats: (name, may_be_none). dynamic: the output
    size depends on values (nms, panoptic), so the all-meta call is not checked."""

    def __init__(self, id, fn, make, ints=(), bools=(), floats=(), dynamic=False):
        self.id, self.fn, self.make = id, fn, make
        self.ints, self.bools, self.floats, self.dynamic = tuple(ints), tuple(bools), tuple(floats), dynamic

    @property
    def op(self):
        return self.id.split("[")[0]


def _pool():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g)
    v, i = F.max_pool2d(x, 2, return_indices=True)
    return x, v, i


def _unpool_args():
    _, v, i = _pool()
    return dict(input=v, indices=i, kernel_size=2, stride=2, padding=0)


def _compact_args():
    x, _, _ = _pool()
    v, off = fops.max_pool2d_compact(x, 2)
    return dict(values=v, offsets=off, kernel_size=2, stride=2, padding=0)


def _ct_args(out=False, cat=False):
    g = torch.Generator().manual_seed(1)
    a = dict(input=torch.randn(2, 4, 5, 5, generator=g), weight=torch.randn(4, 3, 4, 4, generator=g),
             bias=torch.randn(3, generator=g), stride=2, padding=1, dilation=1, groups=1, crop=(1, 1))
    if out:
        a["out"] = torch.empty(2, 3, 9, 9)
    if cat:
        a["skip"] = torch.randn(2, 2, 12, 12, generator=g)
        a["skip_crop"] = (1, 2)
    return a


def _rois():
    return torch.tensor([[0, 1.0, 1.0, 6.0, 7.0], [1, 0.0, 2.0, 7.5, 5.0]])


def _roi_args(list_boxes=False):
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    r = _rois()
    boxes = [r[:1, 1:], r[1:, 1:]] if list_boxes else r
    return dict(input=x, boxes=boxes, output_size=2, spatial_scale=0.5, sampling_ratio=2, aligned=False)


def _ms_args():
    g = torch.Generator().manual_seed(3)
    feats = [torch.randn(2, 3, 32, 32, generator=g), torch.randn(2, 3, 16, 16, generator=g),
             torch.randn(2, 3, 8, 8, generator=g)]
    boxes = [torch.tensor([[1.0, 1.0, 20.0, 30.0], [3.0, 3.0, 100.0, 110.0]]), torch.tensor([[5.0, 6.0, 60.0, 50.0]])]
    return dict(features=feats, boxes=boxes, image_shapes=[(128, 128), (120, 128)], output_size=2, sampling_ratio=2,
                canonical_scale=224, canonical_level=4, eps=1e-6)


def _nms_boxes():
    g = torch.Generator().manual_seed(4)
    xy = torch.rand(12, 2, generator=g) * 20
    return torch.cat([xy, xy + 2 + torch.rand(12, 2, generator=g) * 10], 1), torch.rand(12, generator=g)


def _nms_args(batched=False):
    b, s = _nms_boxes()
    a = dict(boxes=b, scores=s, iou_threshold=0.3)
    if batched:
        a = dict(boxes=b, scores=s, idxs=torch.arange(12) % 3, iou_threshold=0.3)
    return a


def _paste_args(into=False):
    g = torch.Generator().manual_seed(5)
    a = dict(masks=torch.rand(3, 5, 5, generator=g), boxes=torch.tensor([[1.0, 1, 6, 7], [0, 2, 9, 5], [3, 3, 4, 9]]),
             image_size=(10, 9), threshold=0.5)
    if into:
        a["into"] = torch.zeros(10, 9, dtype=torch.int32)
    return a


def _paste_in_image_args():
    g = torch.Generator().manual_seed(6)
    return dict(masks=torch.rand(3, 1, 5, 5, generator=g), boxes=torch.tensor([[1.0, 1, 6, 7], [0, 2, 9, 5],
                                                                               [3, 3, 4, 9]]),
                img_shape=(10, 9), padding=1)


def _heuristic_args():
    g = torch.Generator().manual_seed(7)
    return dict(semantic=torch.randint(0, 4, (6, 7), generator=g), masks=torch.rand(3, 6, 7, generator=g),
                boxes=None, scores=torch.tensor([0.9, 0.8, 0.7]), labels=torch.tensor([1, 2, 1]),
                score_threshold=0.5, overlap_threshold=0.5, stuff_area_threshold=2, pasted=True, thing_ids=[0])


def _heuristic_box_args():
    a = _heuristic_args()
    a["masks"] = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(8))
    a["boxes"] = torch.tensor([[0.0, 0, 4, 4], [2, 1, 7, 6], [1, 1, 3, 5]])
    a["pasted"] = False
    return a


def _efficientps_args():
    g = torch.Generator().manual_seed(9)
    return dict(semantic_logits=torch.randn(4, 6, 7, generator=g), mask_logits=torch.randn(3, 4, 4, generator=g),
                boxes=torch.tensor([[0.0, 0, 4, 4], [2, 1, 7, 6], [1, 1, 3, 5]]), scores=torch.tensor([0.9, 0.8, 0.7]),
                labels=torch.tensor([1, 2, 1]), stuff_ids=[0, 3], score_threshold=0.5, overlap_threshold=0.5,
                stuff_area_threshold=2, pasted=False)


SPECS = [
    Spec("max_unpool2d", fops.max_unpool2d, _unpool_args, ints=("kernel_size", "stride", "padding")),
    Spec("max_pool2d_compact", fops.max_pool2d_compact,
         lambda: dict(input=_pool()[0], kernel_size=3, stride=2, padding=1, ceil_mode=True),
         ints=("kernel_size", "stride", "padding"), bools=("ceil_mode",)),
    Spec("max_unpool2d_compact", fops.max_unpool2d_compact, _compact_args, ints=("kernel_size", "stride", "padding")),
    Spec("unpool_bed_of_nails2d", fops.unpool_bed_of_nails2d, lambda: dict(input=_pool()[0], scale_factor=2),
         ints=("scale_factor",)),
    Spec("unpool_nearest2d", fops.unpool_nearest2d, lambda: dict(input=_pool()[0], scale_factor=(2, 3)),
         ints=("scale_factor",)),
    Spec("conv_transpose2d_crop", fops.conv_transpose2d_crop, _ct_args,
         ints=("stride", "padding", "dilation", "groups", "crop")),
    Spec("conv_transpose2d_crop[out]", fops.conv_transpose2d_crop, lambda: _ct_args(out=True),
         ints=("stride", "padding", "dilation", "groups", "crop")),
    Spec("conv_transpose2d_crop_cat", fops.conv_transpose2d_crop_cat, lambda: _ct_args(cat=True),
         ints=("stride", "padding", "dilation", "groups", "crop", "skip_crop")),
    Spec("roi_align", fops.roi_align, _roi_args, ints=("output_size", "sampling_ratio"), bools=("aligned",),
         floats=(("spatial_scale", False),)),
    Spec("roi_align[list]", fops.roi_align, lambda: _roi_args(list_boxes=True), ints=("output_size", "sampling_ratio"),
         bools=("aligned",), floats=(("spatial_scale", False),)),
    Spec("multi_scale_roi_align", fops.multi_scale_roi_align, _ms_args,
         ints=("output_size", "sampling_ratio", "canonical_scale", "canonical_level"), floats=(("eps", False),)),
    Spec("nms", fops.nms, _nms_args, floats=(("iou_threshold", False),), dynamic=True),
    Spec("batched_nms", fops.batched_nms, lambda: _nms_args(batched=True), floats=(("iou_threshold", False),),
         dynamic=True),
    Spec("paste_masks", fops.paste_masks, _paste_args, floats=(("threshold", True),)),
    Spec("paste_masks[into]", fops.paste_masks, lambda: _paste_args(into=True), floats=(("threshold", True),)),
    Spec("paste_masks_in_image", fops.paste_masks_in_image, _paste_in_image_args, ints=("padding",)),
    Spec("panoptic_fusion_heuristic", fops.panoptic_fusion_heuristic, _heuristic_args,
         ints=("stuff_area_threshold",), bools=("pasted",),
         floats=(("score_threshold", False), ("overlap_threshold", False)),
         dynamic=True),
    Spec("panoptic_fusion_heuristic[boxes]", fops.panoptic_fusion_heuristic, _heuristic_box_args,
         ints=("stuff_area_threshold",), bools=("pasted",),
         floats=(("score_threshold", False), ("overlap_threshold", False)),
         dynamic=True),
    Spec("panoptic_fusion_efficientps", fops.panoptic_fusion_efficientps, _efficientps_args,
         ints=("stuff_area_threshold",), bools=("pasted",),
         floats=(("score_threshold", False), ("overlap_threshold", False)), dynamic=True),
]
SPEC_IDS = [s.id for s in SPECS]


def _tensor_slots(args):
    """(display name, getter-free path) of every tensor argument: a tensor, or one element of a
    list of tensors (features, boxes)."""
    out = []
    for name, v in args.items():
        if isinstance(v, torch.Tensor):
            out.append((name, name, None))
        elif isinstance(v, (list, tuple)) and v and all(isinstance(t, torch.Tensor) for t in v):
            for i in range(len(v)):
                out.append((f"{name}[{i}]", name, i))
    return out


def _moved(args, name, index, device):
    args = dict(args)
    if index is None:
        args[name] = args[name].to(device)
    else:
        lst = list(args[name])
        lst[index] = lst[index].to(device)
        args[name] = lst
    return args


def _check_message(exc, op, names, what):
    msg = str(exc)
    assert msg.startswith(f"fastseg.{op}: "), f"{what}: message does not name the op: {msg!r}"
    assert any(re.search(rf"(^|\W){re.escape(n)}(\W|$)", msg) for n in names), (
        f"{what}: message does not name {names}: {msg!r}")


def _device_cases():
    cases = []
    for spec in SPECS:
        slots = _tensor_slots(spec.make())
        if len(slots) < 2:  # a single tensor on meta is the fake path, not a mismatch
            continue
        for display, name, index in slots:
            for dev in OTHER_DEVICES:
                cases.append(pytest.param(spec, display, name, index, dev, id=f"{spec.id}-{display}-{dev}"))
    return cases


# ----------------------------------------------------------------------------- 1. devices

@pytest.mark.parametrize("spec,display,name,index,other", _device_cases())
def test_mixed_devices_raise_in_wrapper(spec, display, name, index, other):
    args = _moved(spec.make(), name, index, other)
    with pytest.raises((RuntimeError, ValueError)) as e:
        spec.fn(**args)
    _check_message(e.value, spec.op, [display, name], f"{spec.id} with {display} on {other}")
    assert other in str(e.value)


@pytest.mark.parametrize("spec", [s for s in SPECS if not s.dynamic], ids=[s.id for s in SPECS if not s.dynamic])
def test_all_meta_is_the_fake_path(spec):
    """Every tensor on meta: no error, outputs on meta with the shapes of the CPU run."""
    args = spec.make()
    expected = spec.fn(**args)
    meta = dict(args)
    for display, name, index in _tensor_slots(args):
        meta = _moved(meta, name, index, "meta")
    got = spec.fn(**meta)
    exp_t, got_t = helpers._tree_tensors(expected), helpers._tree_tensors(got)
    assert len(exp_t) == len(got_t)
    for a, b in zip(got_t, exp_t):
        assert a.device.type == "meta" and a.shape == b.shape and a.dtype == b.dtype, (spec.id, a, b.shape)


def _raw_specs():
    """Dispatcher ops with good CPU arguments (positional, named): the fake kernels' checks."""
    _, v, i = _pool()
    cv, off = fops.max_pool2d_compact(_pool()[0], 2)
    ct = _ct_args(cat=True)
    geo = ([2, 1], [1, 1], [1, 1], 1, [1, 1])
    roi = _roi_args()
    ms = _ms_args()
    rois = torch.tensor([[0, 1.0, 1.0, 20.0, 30.0]])
    nb, ns = _nms_boxes()
    pm = _paste_args()
    heur = _heuristic_args()
    eff = _efficientps_args()
    o = torch.ops.fastseg
    return [
        ("max_unpool2d", o.max_unpool2d.default, [("input", v), ("indices", i), [2, 2], [2, 2], [0, 0], [8, 8]]),
        ("max_unpool2d", o.max_unpool2d_backward.default, [("grad_output", torch.randn(2, 3, 8, 8)), ("indices", i)]),
        ("max_pool2d_compact", o.max_pool2d_compact_backward.default,
         [("grad_values", cv), ("offsets", off), [8, 8], [2, 2], [2, 2], [0, 0]]),
        ("max_unpool2d_compact", o.max_unpool2d_compact.default,
         [("values", cv), ("offsets", off), [2, 2], [2, 2], [0, 0], [8, 8]]),
        ("max_unpool2d_compact", o.max_unpool2d_compact_backward.default,
         [("grad_output", torch.randn(2, 3, 8, 8)), ("offsets", off), [2, 2], [2, 2], [0, 0]]),
        ("conv_transpose2d_crop", o.conv_transpose2d_crop.default,
         [("input", ct["input"]), ("weight", ct["weight"]), ("bias", ct["bias"]), *geo, [9, 9]]),
        ("conv_transpose2d_crop", o.conv_transpose2d_crop_out.default,
         [("input", ct["input"]), ("weight", ct["weight"]), ("bias", ct["bias"]), *geo,
          ("out", torch.empty(2, 3, 9, 9))]),
        ("conv_transpose2d_crop_cat", o.conv_transpose2d_crop_cat.default,
         [("input", ct["input"]), ("weight", ct["weight"]), ("bias", ct["bias"]), ("skip", ct["skip"]), *geo, [9, 9],
          [1, 2]]),
        ("roi_align", o.roi_align.default, [("input", roi["input"]), ("rois", _rois()), 0.5, 2, 2, 2, False]),
        ("roi_align", o.roi_align_backward.default,
         [("grad", torch.randn(2, 3, 2, 2)), ("rois", _rois()), 0.5, 2, 2, 2, 3, 8, 8, 2, False]),
        ("multi_scale_roi_align", o.multi_scale_roi_align.default,
         [("features", ms["features"]), ("rois", rois), ("levels", torch.zeros(1, dtype=torch.long)),
          [0.25, 0.125, 0.0625], 2, 2, 2]),
        ("nms", o.nms.default, [("boxes", nb), ("scores", ns), 0.5]),
        ("batched_nms", o.batched_nms.default, [("boxes", nb), ("scores", ns), ("idxs", torch.arange(12) % 3), 0.5]),
        ("paste_masks", o.paste_masks.default, [("masks", pm["masks"]), ("boxes", pm["boxes"]), 10, 9, 0.5]),
        ("paste_masks", o.paste_masks_into.default,
         [("masks", pm["masks"]), ("boxes", pm["boxes"]), 0.5, ("into", torch.zeros(10, 9, dtype=torch.bool))]),
        ("paste_masks_in_image", o.paste_masks_in_image.default,
         [("masks", pm["masks"]), ("boxes", pm["boxes"].long()), 1, 10, 9]),
        ("panoptic_fusion_heuristic", o.panoptic_fusion_heuristic.default,
         [("semantic", heur["semantic"]), ("masks", heur["masks"]), None, ("scores", heur["scores"]),
          ("labels", heur["labels"]), 0.5, 2, 0.5, [0]]),
        ("panoptic_fusion_efficientps", o.panoptic_fusion_efficientps.default,
         [("semantic_logits", eff["semantic_logits"]), ("mask_logits", eff["mask_logits"]), ("boxes", eff["boxes"]),
          ("scores", eff["scores"]), ("labels", eff["labels"]), [0, 3], 0.5, 0.5, 2, False]),
    ]


def _raw_cases():
    out = []
    for op, fn, args in _raw_specs():
        for pos, a in enumerate(args):
            if isinstance(a, tuple):
                t = a[1]
                idxs = [None] if isinstance(t, torch.Tensor) else list(range(len(t)))
                for j in idxs:
                    shown = a[0] if j is None else f"{a[0]}[{j}]"
                    out.append(pytest.param(op, fn, args, pos, j, id=f"{fn.name()}-{shown}"))
    return out


@pytest.mark.parametrize("op,fn,args,pos,index", _raw_cases())
def test_mixed_devices_raise_in_fake_kernels(op, fn, args, pos, index):
    """torch.ops.fastseg.* with one meta operand reaches the fake kernel, which must refuse it
    (it used to return an uninitialised CPU tensor, or nothing for the out=/into= forms)."""
    call = []
    for p, a in enumerate(args):
        v = a[1] if isinstance(a, tuple) else a
        if p == pos:
            if index is None:
                v = v.to("meta")
            else:
                v = [t.to("meta") if j == index else t for j, t in enumerate(v)]
        call.append(v)
    name = args[pos][0]
    with pytest.raises(RuntimeError) as e:
        fn(*call)
    _check_message(e.value, op, [name, f"{name}[{index}]"], f"{fn.name()} with {name} on meta")
    assert "meta" in str(e.value)


# ----------------------------------------------------------------------------- 3. non-finite and out-of-range floats

def _float_cases():
    out = []
    for spec in SPECS:
        for name, _ in spec.floats:
            for bad in (float("nan"), float("inf"), -float("inf")):
                out.append(pytest.param(spec, name, bad, id=f"{spec.id}-{name}={bad}"))
    # values of the right type outside their range
    roi = next(s for s in SPECS if s.id == "roi_align")
    out += [pytest.param(roi, "spatial_scale", v, id=f"roi_align-spatial_scale={v}") for v in (0.0, -0.5)]
    out += [pytest.param(roi, "spatial_scale", np.float32("nan"), id="roi_align-spatial_scale=np.nan")]
    out += [pytest.param(roi, "spatial_scale", torch.tensor(float("inf")), id="roi_align-spatial_scale=tensor-inf")]
    return out


@pytest.mark.parametrize("spec,name,value", _float_cases())
def test_non_finite_floats_raise(spec, name, value):
    args = spec.make()
    args[name] = value
    with pytest.raises(ValueError) as e:
        spec.fn(**args)
    _check_message(e.value, spec.op, [name], f"{spec.id} {name}={value}")


# ----------------------------------------------------------------------------- 4. checked, not coerced

def _type_cases():
    out = []
    for spec in SPECS:
        for name in spec.ints:
            for bad in ("2", 2.7, 2.0, True, None if name not in ("stride", "skip_crop") else "x"):  # None: default
                out.append(pytest.param(spec, name, bad, id=f"{spec.id}-{name}={bad!r}"))
        for name in spec.bools:
            for bad in ("False", "True", 0.0, 1.5, 2, None if name != "pasted" else "auto"):
                out.append(pytest.param(spec, name, bad, id=f"{spec.id}-{name}={bad!r}"))
        for name, may_be_none in spec.floats:
            for bad in ("0.5", True, [0.5]) + (() if may_be_none else (None,)):
                out.append(pytest.param(spec, name, bad, id=f"{spec.id}-{name}={bad!r}"))
    return out


@pytest.mark.parametrize("spec,name,value", _type_cases())
def test_wrong_scalar_types_raise(spec, name, value):
    """A str, float or bool where an int / bool is expected (and a str / bool / list for a float)
    is refused with an error naming the argument, never converted (aligned="False" used to run as
    aligned=True, sampling_ratio=2.7 as 2). An int out of range (2 for a bool) is also refused."""
    args = spec.make()
    args[name] = value
    exc = (TypeError, ValueError) if isinstance(value, int) and not isinstance(value, bool) else TypeError
    with pytest.raises(exc) as e:
        spec.fn(**args)
    _check_message(e.value, spec.op, [name], f"{spec.id} {name}={value!r}")


def _same(a, b):
    ta, tb = helpers._tree_tensors(a), helpers._tree_tensors(b)
    assert len(ta) == len(tb)
    for x, y in zip(ta, tb):
        helpers.assert_same(x, y)
    if isinstance(a, tuple) and len(a) == 2 and isinstance(a[1], list):  # panoptic segments_info
        assert a[1] == b[1]


def _numpy_like(value, kind):
    if kind == "bool":
        return [np.bool_(value), torch.tensor(value)]
    if kind == "int":
        if isinstance(value, (tuple, list)):
            return [tuple(np.int64(v) for v in value), tuple(np.int32(v) for v in value)]
        return [np.int64(value), np.int32(value)]
    return [np.float32(value), np.float64(value), np.int64(value) if float(value).is_integer() else np.float16(value)]


def _numpy_cases():
    out = []
    for spec in SPECS:
        args = spec.make()
        for kind, names in (("int", spec.ints), ("bool", spec.bools), ("float", [n for n, _ in spec.floats])):
            for name in names:
                if args[name] is None:
                    continue
                for i, v in enumerate(_numpy_like(args[name], kind)):
                    out.append(pytest.param(spec, name, v, id=f"{spec.id}-{name}-{type(v).__name__}{i}"))
    return out


@pytest.mark.parametrize("spec,name,value", _numpy_cases())
def test_numpy_scalars_are_accepted(spec, name, value):
    """numpy scalars (np.float32(0.5), np.int64, np.bool_) and 0-dim bool tensors are what
    PyTorch / torchvision take; they give the results of the Python scalars."""
    args = spec.make()
    expected = spec.fn(**args)
    args2 = spec.make()
    args2[name] = value
    got = spec.fn(**args2)
    if np.float16 is type(value):  # a float16 rounding of the value: only check that it runs
        return
    _same(got, expected)


def test_zero_dim_tensor_scalars_like_torchvision():
    """0-dim tensors where torchvision's ops take them: roi_align's scalars, nms' threshold."""
    a = _roi_args()
    exp = fops.roi_align(**a)
    got = fops.roi_align(a["input"], a["boxes"], 2, torch.tensor(0.5), torch.tensor(2), torch.tensor(False))
    helpers.assert_same(got, exp)
    b, s = _nms_boxes()
    helpers.assert_same(fops.nms(b, s, torch.tensor(0.3)), fops.nms(b, s, 0.3))
    helpers.assert_same(fops.nms(b, s, np.float32(0.3)), fops.nms(b, s, float(np.float32(0.3))))
    if helpers.HAS_TORCHVISION:
        import torchvision
        helpers.assert_same(fops.nms(b, s, np.float32(0.5)), torchvision.ops.nms(b, s, np.float32(0.5)))


# ----------------------------------------------------------------------------- 2, 6. bounded work, no overflow (subprocess)

def bounded_cases(device="cpu"):
    """Inputs that hang (sampling_ratio=2**40), abort (std::bad_alloc at 2**31) or overflow int64
    inside the kernels on the old code: here each raises a ValueError naming the argument, before
    any kernel runs."""
    x = torch.randn(1, 2, 8, 8, device=device)
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 6.0]], device=device)
    ms = _ms_args()
    feats = [f.to(device) for f in ms["features"]]
    boxes = [b.to(device) for b in ms["boxes"]]
    ct = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in _ct_args(cat=True).items()}
    m, b = torch.rand(2, 5, 5, device=device), torch.tensor([[1.0, 1, 6, 7], [0, 2, 9, 5]], device=device)
    big = 2 ** 63 - 1
    cases = []
    for sr in (2 ** 40, 2 ** 31, MAX_SAMPLING_RATIO + 1, 2 ** 64):
        cases.append(BadCase(f"roi_align-sampling_ratio={sr}",
                             lambda sr=sr: fops.roi_align(x, rois, 1, 1.0, sampling_ratio=sr),
                             r"^fastseg\.roi_align: sampling_ratio\b", ("ValueError",)))
        cases.append(BadCase(f"multi_scale_roi_align-sampling_ratio={sr}",
                             lambda sr=sr: fops.multi_scale_roi_align(feats, boxes, ms["image_shapes"], 2, sr),
                             r"^fastseg\.multi_scale_roi_align: sampling_ratio\b", ("ValueError",)))
    cases += [
        BadCase("conv_transpose2d_crop_cat-skip_crop", lambda: fops.conv_transpose2d_crop_cat(
            ct["input"], ct["weight"], ct["bias"], ct["skip"], 2, 1, crop=(1, 1), skip_crop=(big, 0)),
            r"^fastseg\.conv_transpose2d_crop_cat: skip_crop\b", ("ValueError",)),
        BadCase("conv_transpose2d_crop_cat-skip_crop-w", lambda: fops.conv_transpose2d_crop_cat(
            ct["input"], ct["weight"], ct["bias"], ct["skip"], 2, 1, crop=(1, 1), skip_crop=(0, 2 ** 62)),
            r"^fastseg\.conv_transpose2d_crop_cat: skip_crop\b", ("ValueError",)),
        BadCase("conv_transpose2d_crop-output_size", lambda: fops.conv_transpose2d_crop(
            ct["input"], ct["weight"], ct["bias"], 2, 1, crop=(1, 1), output_size=(big, big)),
            r"^fastseg\.conv_transpose2d_crop: (crop|output_size)\b.*output_size", ("ValueError",)),
        BadCase("conv_transpose2d_crop-crop", lambda: fops.conv_transpose2d_crop(
            ct["input"], ct["weight"], ct["bias"], 2, 1, crop=(big, 0), output_size=(1, 1)),
            r"^fastseg\.conv_transpose2d_crop: crop\b", ("ValueError",)),
        BadCase("paste_masks-image_size", lambda: fops.paste_masks(m, b, (2 ** 62, 4)),
                r"^fastseg\.paste_masks: image_size\b", ("ValueError",)),
        BadCase("paste_masks-image_size-2", lambda: fops.paste_masks(m, b, (2 ** 40, 2 ** 40), None),
                r"^fastseg\.paste_masks: image_size\b", ("ValueError",)),
        BadCase("paste_masks-image_size-int64", lambda: fops.paste_masks(m, b, (2 ** 64, 1)),
                r"^fastseg\.paste_masks: image_size\b", ("ValueError",)),
        BadCase("paste_masks_in_image-img_shape", lambda: fops.paste_masks_in_image(m[:, None], b, (2 ** 62, 4)),
                r"^fastseg\.paste_masks_in_image: img_shape\b", ("ValueError",)),
        BadCase("paste_masks_in_image-padding", lambda: fops.paste_masks_in_image(m[:, None], b, (8, 8), 2 ** 62),
                r"^fastseg\.paste_masks_in_image: padding\b", ("ValueError",)),
        BadCase("unpool_nearest2d-scale_factor", lambda: fops.unpool_nearest2d(x, (2 ** 31, 2 ** 31)),
                r"^fastseg\.unpool_nearest2d: scale_factor\b", ("ValueError",)),
        BadCase("unpool_bed_of_nails2d-scale_factor", lambda: fops.unpool_bed_of_nails2d(x, 2 ** 62),
                r"^fastseg\.unpool_bed_of_nails2d: scale_factor\b", ("ValueError",)),
    ]
    return cases


def test_bounded_work_and_sizes_in_subprocess():
    helpers.check_bad_cases("test_op_contract:bounded_cases", min_cases=19, timeout=120)


def test_sampling_ratio_bound_is_documented_and_accepted():
    """The bound is inclusive and <= 0 (adaptive) stays accepted."""
    bound = RA.MAX_SAMPLING_RATIO
    assert bound == 4096 and bound ** 2 == 2 ** 24  # the kernels' adaptive cap (kMaxSamplesPerBin)
    x = torch.randn(1, 1, 4, 4)
    rois = torch.tensor([[0, 0.0, 0.0, 1.0, 1.0]])
    for sr in (-5, -1, 0, 1, 64):
        fops.roi_align(x, rois, 1, 1.0, sr)


# ----------------------------------------------------------------------------- 5. overlap

def test_paste_masks_into_must_not_overlap_its_inputs():
    g = torch.Generator().manual_seed(10)
    masks = torch.rand(2, 8, 8, generator=g)
    boxes = torch.tensor([[0.0, 0, 8, 8], [2, 2, 6, 6]])
    # into is masks' own memory seen as int32
    with pytest.raises(RuntimeError, match=r"^fastseg\.paste_masks: into must not share memory with masks"):
        fops.paste_masks(masks, boxes, (8, 8), into=masks.view(torch.int32)[1])
    with pytest.raises(RuntimeError, match=r"^fastseg\.paste_masks: into must not share memory with masks"):
        fops.paste_masks(masks, boxes, (8, 16), into=masks.view(torch.int32).view(8, 16))
    # boxes' memory
    buf = torch.zeros(2, 4)
    buf.copy_(boxes[:, :4] / 4)
    with pytest.raises(RuntimeError, match=r"^fastseg\.paste_masks: into must not share memory with boxes"):
        fops.paste_masks(torch.rand(2, 3, 3), buf, (2, 4), into=buf.view(torch.int32))
    # separate memory, and another part of a shared buffer, are fine
    store = torch.zeros(3, 8, 8, dtype=torch.int32)
    exp = fops.paste_masks(masks, boxes, (8, 8), into=torch.zeros(8, 8, dtype=torch.int32)).clone()
    assert torch.equal(fops.paste_masks(masks, boxes, (8, 8), into=store[1]), exp)
    assert not store[0].any() and not store[2].any()


# ----------------------------------------------------------------------------- 7. batched_nms on empty boxes

@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_batched_nms_empty_returns_first(device):
    boxes = torch.zeros(0, 4, device=device)
    for args in ((torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5), (None, None, None), ("x", [1], "y")):
        got = fops.batched_nms(boxes, *args)
        assert got.shape == (0,) and got.dtype == torch.int64 and got.device == boxes.device
    if helpers.HAS_TORCHVISION and device == "cpu":
        import torchvision
        assert torchvision.ops.batched_nms(boxes, None, None, None).shape == (0,)


# ----------------------------------------------------------------------------- 8. the right argument is blamed

def test_messages_name_the_users_argument():
    a = _ms_args()
    f = fops.multi_scale_roi_align
    for bad in ([1.0, float("nan"), 5.0, 5.0], [5.0, 1.0, 1.0, 5.0], [1.0, 5.0, 5.0, 1.0], [0, 0, float("inf"), 4]):
        boxes = [a["boxes"][0], torch.tensor([bad])]
        with pytest.raises(ValueError, match=r"^fastseg\.multi_scale_roi_align: boxes must be finite with x2 >= x1"):
            f(a["features"], boxes, a["image_shapes"], 2, 2)
    for shapes, exc in (([(-128, -128)], ValueError), ([(0, 128)], ValueError), ([(128.5, 128)], TypeError),
                        ([(128,)], ValueError), ([], ValueError), ("128x128", TypeError), ([(128, "x")], TypeError)):
        with pytest.raises(exc, match=r"^fastseg\.multi_scale_roi_align: image_shapes\b"):
            f(a["features"], a["boxes"][:1], shapes, 2, 2)
    # numpy ints and torch.Size in image_shapes are fine
    exp = f(a["features"], a["boxes"], a["image_shapes"], 2, 2)
    got = f(a["features"], a["boxes"], [(np.int64(128), np.int64(128)), torch.Size([120, 128])], 2, 2)
    helpers.assert_same(got, exp)

    ct = _ct_args()
    with pytest.raises(ValueError, match=r"^fastseg\.conv_transpose2d_crop: padding \(10, 10\) is too large"):
        fops.conv_transpose2d_crop(ct["input"], ct["weight"], padding=10)
    with pytest.raises(ValueError, match=r"^fastseg\.conv_transpose2d_crop_cat: padding .* is too large"):
        fops.conv_transpose2d_crop_cat(ct["input"], ct["weight"], None, torch.zeros(2, 1, 4, 4), padding=(0, 10),
                                       output_size=(2, 2))
    with pytest.raises(ValueError, match=r"^fastseg\.conv_transpose2d_crop: crop \(20, 0\) must lie inside"):
        fops.conv_transpose2d_crop(ct["input"], ct["weight"], crop=(20, 0))


def test_checkers_in_utils():
    """The shared checkers: what they accept and how they refuse."""
    from fastseg.ops import _utils as U
    assert U.check_bool(np.bool_(True), "op", "b") is True and U.check_bool(torch.tensor(False), "op", "b") is False
    assert U.check_bool(1, "op", "b") is True
    for bad in ("False", 0.0, 2, None, torch.tensor(1)):
        with pytest.raises(TypeError, match=r"^fastseg\.op: b must be a bool"):
            U.check_bool(bad, "op", "b")
    assert U.check_int(np.int64(3), "op", "i") == 3 and type(U.check_int(np.int32(3), "op", "i")) is int
    assert U.check_int(torch.tensor(3), "op", "i") == 3
    for bad in (3.0, "3", True, np.bool_(True), torch.tensor(3.0), None):
        with pytest.raises(TypeError, match=r"^fastseg\.op: i must be an int"):
            U.check_int(bad, "op", "i")
    with pytest.raises(ValueError, match=r"^fastseg\.op: i must be <= 5"):
        U.check_int(6, "op", "i", maximum=5)
    with pytest.raises(ValueError, match=r"^fastseg\.op: i must be <= 9223372036854775807"):
        U.check_int(2 ** 63, "op", "i")
    assert U.check_float(np.float32(0.5), "op", "f") == 0.5 and type(U.check_float(1, "op", "f")) is float
    assert U.check_float(torch.tensor([0.25]), "op", "f") == 0.25
    assert U.check_float(math.inf, "op", "f", finite=False) == math.inf
    for bad, exc in ((math.nan, ValueError), (math.inf, ValueError), (10 ** 400, ValueError), ("1", TypeError),
                     (True, TypeError), (None, TypeError), (1j, TypeError)):
        with pytest.raises(exc, match=r"^fastseg\.op: f "):
            U.check_float(bad, "op", "f")
    with pytest.raises(ValueError, match=r"^fastseg\.op: f must be in \[0.0, 1.0\]"):
        U.check_float(1.5, "op", "f", minimum=0.0, maximum=1.0)
    a = torch.zeros(4, 4)
    assert U.overlap_status(a, a) == "full" and U.overlap_status(a, a[1]) == "partial"
    assert U.overlap_status(a[:2], a[2:]) == "no" and U.overlap_status(a, torch.zeros(4, 4)) == "no"
    assert U.overlap_status(a[:, :2], a[:, 2:]) == "too_hard"  # as ATen: two column slices are allowed
    assert U.overlap_status(a, a.view(torch.int32)) == "full"
