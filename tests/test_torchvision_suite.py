"""torchvision's own checks of roi_align / RoIAlign, MultiScaleRoIAlign, nms and batched_nms, run
on fastseg's ops (issue 14, "drop-in parity").

torchvision's `test/test_ops.py` is not installed here; this file performs, test by test, the
checks of its `RoIOpTester` / `TestRoIAlign`, `TestMultiScaleRoIAlign` and `TestNMS` classes (and
the module-level `test_roi_opcheck` and `TestBoxConversionToRoi`, which exercise the same ops),
with fastseg's functions and layers in place of torchvision's, and with its own slow references
(`slow_roi_align`, `ref_nms`, `ref_batched_nms` below, written from the documented semantics,
docs/design.md §5.3 / §5.4, independent of fastseg and torchvision). Where torchvision imports,
each check also runs torchvision's real op on the same inputs and compares; without torchvision
(the CPU-only torch 2.13 leg) those comparisons skip. CUDA variants are parametrized over
`cuda` and skip without a GPU and fastseg's CUDA kernels.

Mapping (torchvision test -> test here):

=====================================================  ==========================================================
torchvision (test/test_ops.py)                         here
=====================================================  ==========================================================
TestRoIAlign.test_forward                              test_roi_align_forward (device x layout x x_dtype x
  (device, contiguous, deterministic, aligned,           aligned x deterministic; layouts contiguous / permuted
  x_dtype float16/32/64)                                 (torchvision's non-contiguous) / channels-last; bfloat16
                                                         too; the [K, 5] and list-of-[L, 4] box forms; layer and
                                                         function; vs slow_roi_align and torchvision)
TestRoIAlign.test_autocast (CUDA)                      test_roi_align_autocast_cuda (skips without a GPU)
TestRoIAlign.test_autocast_cpu                         test_roi_align_autocast_cpu
TestRoIAlign.test_backward (seed, device,              test_roi_align_backward (gradcheck in float64, all
  contiguous, deterministic)                             layouts; gradient vs torchvision). Its second gradcheck,
                                                         of torch.jit.script(roi_align): skipped, TorchScript
RoIOpTester.test_is_leaf_node                          test_roi_align_is_leaf_node (torch.fx) and
                                                         test_roi_align_graph_node_names (torchvision's
                                                         get_graph_node_names)
RoIOpTester.test_torch_fx_trace                        test_roi_align_torch_fx_trace
TestRoIAlign.test_boxes_shape                          test_roi_align_boxes_shape: fastseg raises ValueError where
                                                         torchvision asserts (AssertionError); ours kept, documented
TestRoIAlign.test_jit_boxes_list                       test_roi_align_boxes_list (the eager model; scripting it
                                                         is skipped: TorchScript)
RoIOpTester.test_mps_error_inputs                      skipped: MPS (fastseg has no MPS kernels) -> test_not_ported
TestRoIAlign.test_qroialign                            skipped: quantized tensors -> test_not_ported;
                                                         test_quantized_inputs_refused checks fastseg refuses them
TestRoIAlign.test_qroi_align_multiple_images           skipped: quantized tensors -> test_not_ported
test_roi_opcheck (module level; the roi_align rows)    test_roi_align_opcheck
TestBoxConversionToRoi.test_check_roi_boxes_shape,     test_roi_align_box_sequences (Tensor[K, 5], list and
  .test_convert_boxes_to_roi_format                      tuple of Tensor[L, 4] give the same result)
TestMultiScaleRoIAlign.test_msroialign_repr            test_msroialign_repr (+ repr equal to torchvision's for
                                                         int / list / tuple output_size)
TestMultiScaleRoIAlign.test_is_leaf_node               test_msroialign_is_leaf_node (torch.fx) and
                                                         test_msroialign_graph_node_names (torchvision)
TestNMS.test_nms_ref (iou, seed)                       test_nms_ref (every device and fastseg NMS strategy;
                                                         vs ref_nms and torchvision)
TestNMS.test_nms_input_errors                          test_nms_input_errors (RuntimeError, as torchvision)
TestNMS.test_qnms                                      skipped: quantized tensors -> test_not_ported;
                                                         test_quantized_inputs_refused
TestNMS.test_nms_gpu (CUDA / MPS)                      test_nms_gpu (cuda; skips without a GPU); MPS: no kernels
TestNMS.test_autocast (CUDA)                           test_nms_autocast_cuda (skips without a GPU)
TestNMS.test_autocast_cpu                              test_nms_autocast_cpu
TestNMS.test_nms_float16 (CUDA / MPS)                  test_nms_float16 (every device, the CPU included)
TestNMS.test_batched_nms_implementations               test_batched_nms_implementations (fastseg vs an
                                                         independent per-class reference, vs torchvision's
                                                         vanilla and coordinate-trick forms; empty boxes)
optests.generate_opcheck_tests(TestNMS): test_schema,  test_nms_opcheck (torch.library.opcheck of fastseg::nms and
  test_autograd_registration, test_faketensor,           fastseg::batched_nms with the same four checks)
  test_aot_dispatch_dynamic
=====================================================  ==========================================================

Beyond torchvision's suite (what the mapping above does not reach): test_roi_align_generated
(hypothesis: sampling ratios, spatial scales, boxes partly outside the map, degenerate boxes,
both box forms, all layouts), test_roi_align_empty, test_roi_align_mixed_dtypes,
test_msroialign_setup_scales_and_levels, test_msroialign_forward, test_nms_ties,
test_nms_large_and_small_thresholds, test_nms_threshold_refused, test_batched_nms_reference.

Behaviour that differs from torchvision on purpose (docs/design.md §5.3 / §5.4, "Differences
from torchvision"), tested here as fastseg's: malformed boxes raise ValueError (torchvision:
AssertionError); rois of another floating dtype than the input are accepted (torchvision:
RuntimeError outside autocast); bfloat16 runs on the CPU outside autocast (torchvision has no
such kernel: its comparison is left out there) and float16 is computed in float (torchvision's
CPU kernel rounds to float16: compared within 6e-3); quantized tensors are refused
(NotImplementedError); a non-finite iou_threshold raises ValueError; equal scores keep the lower
index first, in batched_nms too (torchvision's merge sort there is unstable).
"""
import contextlib
import importlib
import math
import random
import warnings

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import fastseg.nn as fnn
import fastseg.ops as fops
import fastseg.testing

import helpers
from helpers import torch_gen

pytestmark = helpers.needs_ops

DEVICES = helpers.device_params()
CUDA_ONLY = [pytest.param("cuda", marks=helpers.needs_cuda, id="cuda")]
NMS_STRATEGIES = fastseg.testing.SETTINGS["nms"]
RA = importlib.import_module("fastseg.ops.roi_align")  # the module: infer_scales, map_levels

# torchvision's forward tolerances, by input dtype
FORWARD_TOL = {torch.float64: 1e-5, torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 5e-3}
# torchvision's CPU kernel computes float16 in float16 (fastseg in float): the two differ by its
# rounding, measured up to ~3e-3 here. It has no bfloat16 CPU kernel (outside autocast).
TV_FLOAT16_TOL = 6e-3

# the boxes of torchvision's forward test, (batch index, x1, y1, x2, y2) on a 10 x 10 map
FORWARD_ROIS = [[0, 0, 0, 9, 9], [0, 0, 5, 4, 9], [0, 5, 5, 9, 9], [1, 0, 0, 9, 9]]
# those of its backward test, on a 5 x 5 map
BACKWARD_ROIS = [[0, 0, 0, 4, 4], [0, 0, 2, 3, 4], [0, 2, 2, 4, 4]]


def dtype_params(dtypes):
    return [pytest.param(d, id=helpers.dtype_id(d)) for d in dtypes]


@contextlib.contextmanager
def deterministic_algorithms(flag: bool):
    """torch.use_deterministic_algorithms(flag) inside, the previous setting restored after."""
    before, warn_only = torch.are_deterministic_algorithms_enabled(), \
        torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(flag)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def in_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """x as "contiguous", "permuted" (torchvision's non-contiguous case: H and W swapped by a
    view) or "channels_last"; gradients flow to x."""
    if layout == "contiguous":
        return x
    if layout == "permuted":
        return x.permute(0, 1, 3, 2)
    assert layout == "channels_last", layout
    return x.contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------- slow references

def _axis_taps(v: float, size: int):
    """(index, weight) of the bilinear neighbours of coordinate v (already >= 0) on an axis of
    `size`: past the last row/column all the weight is on the last one."""
    lo = int(math.floor(v))
    if lo >= size - 1:
        return [(size - 1, 1.0)]
    frac = v - lo
    return [(lo, 1.0 - frac), (lo + 1, frac)]


def _sample_taps(y: float, x: float, height: int, width: int):
    """(row, col, weight) of one RoIAlign sample: none outside [-1, size]; negative coordinates
    in that band count as 0."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return []
    return [(r, c, wr * wc) for r, wr in _axis_taps(max(y, 0.0), height) for c, wc in _axis_taps(max(x, 0.0), width)]


def _as_rois(boxes) -> torch.Tensor:
    if isinstance(boxes, torch.Tensor):
        return boxes.detach().cpu().double()
    return torch.cat([torch.cat([torch.full((len(b), 1), float(i), dtype=torch.float64), b.detach().cpu().double()], 1)
                      for i, b in enumerate(boxes)]) if len(boxes) else torch.zeros(0, 5, dtype=torch.float64)


def slow_roi_align(x: torch.Tensor, boxes, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
                   aligned: bool = False) -> torch.Tensor:
    """RoIAlign in float64, sample by sample (docs/design.md §5.3): each bin is the mean of its
    grid of bilinear samples; the grid is `sampling_ratio` per axis, or ceil(bin size) when
    sampling_ratio <= 0; without `aligned` a roi is at least 1 x 1, with it shifted by -0.5."""
    ph, pw = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    data = x.detach().cpu().double()
    _, channels, height, width = data.shape
    rois = _as_rois(boxes)
    out = torch.zeros(rois.shape[0], channels, ph, pw, dtype=torch.float64)
    shift = 0.5 if aligned else 0.0
    for k, (b, *corners) in enumerate(rois.tolist()):
        x1, y1, x2, y2 = (c * spatial_scale - shift for c in corners)
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / ph, roi_w / pw
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(bin_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(bin_w)
        count = max(grid_h * grid_w, 1)
        plane = data[int(b)]
        for i in range(ph):
            for j in range(pw):
                taps = [t for sy in range(grid_h) for sx in range(grid_w)
                        for t in _sample_taps(y1 + i * bin_h + (sy + 0.5) * bin_h / grid_h,
                                              x1 + j * bin_w + (sx + 0.5) * bin_w / grid_w, height, width)]
                if taps:
                    rows, cols, weights = zip(*taps)
                    out[k, :, i, j] = (plane[:, list(rows), list(cols)]
                                       * torch.tensor(weights, dtype=torch.float64)).sum(1) / count
    return out


def _iou_with(box: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """IoU of one (x1, y1, x2, y2) box with each of `others`, in their dtype."""
    w = (torch.minimum(others[:, 2], box[2]) - torch.maximum(others[:, 0], box[0])).clamp(min=0)
    h = (torch.minimum(others[:, 3], box[3]) - torch.maximum(others[:, 1], box[1])).clamp(min=0)
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / (area + areas - inter)


def ref_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS: take the best remaining box (equal scores: lower index), drop every box whose
    IoU with it (computed in float, double for float64 boxes) is > iou_threshold, repeat."""
    dt = torch.float64 if boxes.dtype == torch.float64 else torch.float32
    b = boxes.detach().cpu().to(dt)
    remaining = torch.sort(scores.detach().cpu(), descending=True, stable=True).indices
    kept = []
    while remaining.numel():
        best, remaining = remaining[0], remaining[1:]
        kept.append(int(best))
        iou = _iou_with(b[best], b[remaining])
        remaining = remaining[~(iou.double() > iou_threshold)]
    return torch.tensor(kept, dtype=torch.int64)


def ref_batched_nms(boxes, scores, idxs, iou_threshold) -> torch.Tensor:
    """ref_nms within each category, the survivors merged by (score descending, index)."""
    idxs, s = idxs.cpu(), scores.detach().cpu()
    kept = []
    for category in sorted(set(idxs.tolist())):
        members = torch.nonzero(idxs == category).flatten()
        kept += members[ref_nms(boxes.cpu()[members], s[members], iou_threshold)].tolist()
    kept.sort(key=lambda i: (-float(s[i]), i))
    return torch.tensor(kept, dtype=torch.int64)


def boxes_with_iou(n: int, iou: float, seed: int):
    """n random boxes in [0, 200]^2 and scores; the last box is the first one widened so that
    their IoU is a hair above `iou` (torchvision's case: exactly one pair just over the
    threshold)."""
    g = torch_gen(seed)
    corner = torch.rand(n, 2, generator=g) * 100
    boxes = torch.cat([corner, corner + torch.rand(n, 2, generator=g) * 100], 1)
    boxes[-1] = boxes[0]
    x1, _, x2, _ = boxes[0].tolist()
    target = iou + 1e-5
    boxes[-1, 2] += (x2 - x1) * (1 - target) / target  # area grows by 1/target: IoU = target
    return boxes, torch.rand(n, generator=g)


# ----------------------------------------------------------------------------- RoIAlign: forward

def check_roi_align_forward(device, layout, x_dtype, rois_dtype, aligned, deterministic, tol_dtype=None):
    """torchvision's RoIOpTester.test_forward for RoIAlign: 2 x 50 x 10 x 10 input, its four
    boxes, 5 x 5 bins, adaptive sampling; the output keeps the input's dtype."""
    pool = 5
    x = in_layout(torch.rand(2, 2 * pool ** 2, 10, 10, generator=torch_gen(1)).to(x_dtype).to(device), layout)
    rois = torch.tensor(FORWARD_ROIS, dtype=rois_dtype, device=device)
    layer = fnn.RoIAlign((pool, pool), spatial_scale=1, sampling_ratio=-1, aligned=aligned)
    with deterministic_algorithms(deterministic):
        y = layer(x, rois)
        y_fn = fops.roi_align(x, rois, pool, 1.0, -1, aligned)
        y_list = layer(x, [rois[rois[:, 0] == i, 1:] for i in range(2)])
    assert y.dtype == x.dtype and y.shape == (4, 50, pool, pool) and y.device == x.device
    helpers.assert_memory_format(y, x)
    helpers.assert_same(y_fn, y, "function vs layer")
    helpers.assert_same(y_list, y, "list-of-[L, 4] boxes vs [K, 5] rois")
    tol = FORWARD_TOL[tol_dtype or x_dtype]
    expected = slow_roi_align(x, rois, pool, 1.0, -1, aligned).to(y.dtype)
    torch.testing.assert_close(y.cpu(), expected, rtol=tol, atol=tol)
    return x, rois, y


@pytest.mark.parametrize("deterministic", (False, True), ids=("nondet", "det"))
@pytest.mark.parametrize("aligned", (False, True), ids=("legacy", "aligned"))
@pytest.mark.parametrize("x_dtype", dtype_params((torch.float16, torch.bfloat16, torch.float32, torch.float64)))
@pytest.mark.parametrize("layout", ("contiguous", "permuted", "channels_last"))
@pytest.mark.parametrize("device", DEVICES)
def test_roi_align_forward(device, layout, x_dtype, aligned, deterministic):
    x, rois, y = check_roi_align_forward(device, layout, x_dtype, x_dtype, aligned, deterministic)
    if helpers.HAS_TORCHVISION and x_dtype != torch.bfloat16:  # (torchvision: no bfloat16 CPU kernel)
        import torchvision
        tv = torchvision.ops.roi_align(x.cpu(), rois.cpu(), 5, 1.0, -1, aligned)
        tol = TV_FLOAT16_TOL if x_dtype == torch.float16 else FORWARD_TOL[x_dtype]
        torch.testing.assert_close(y.cpu(), tv, rtol=tol, atol=tol, msg=lambda m: f"vs torchvision\n{m}")


@pytest.mark.parametrize("deterministic", (False, True), ids=("nondet", "det"))
@pytest.mark.parametrize("aligned", (False, True), ids=("legacy", "aligned"))
@pytest.mark.parametrize("rois_dtype", dtype_params((torch.float32, torch.bfloat16)))
@pytest.mark.parametrize("x_dtype", dtype_params((torch.float32, torch.bfloat16)))
def test_roi_align_autocast_cpu(x_dtype, rois_dtype, aligned, deterministic):
    """Under CPU autocast (bfloat16): the output keeps the input's dtype and matches the
    reference; torchvision's op, under the same autocast, agrees."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x, rois, y = check_roi_align_forward("cpu", "permuted", x_dtype, rois_dtype, aligned, deterministic)
        if helpers.HAS_TORCHVISION:
            import torchvision
            tv = torchvision.ops.roi_align(x, rois, 5, 1.0, -1, aligned)
    if helpers.HAS_TORCHVISION:
        assert tv.dtype == y.dtype
        tol = FORWARD_TOL[x_dtype]
        torch.testing.assert_close(y, tv, rtol=tol, atol=tol, msg=lambda m: f"vs torchvision\n{m}")


@pytest.mark.parametrize("deterministic", (False, True), ids=("nondet", "det"))
@pytest.mark.parametrize("aligned", (False, True), ids=("legacy", "aligned"))
@pytest.mark.parametrize("rois_dtype", dtype_params((torch.float32, torch.float16)))
@pytest.mark.parametrize("x_dtype", dtype_params((torch.float32, torch.float16)))
@pytest.mark.parametrize("device", CUDA_ONLY)
def test_roi_align_autocast_cuda(device, x_dtype, rois_dtype, aligned, deterministic):
    with torch.autocast("cuda"):
        check_roi_align_forward(device, "permuted", x_dtype, rois_dtype, aligned, deterministic)


# ----------------------------------------------------------------------------- RoIAlign: backward

@pytest.mark.parametrize("deterministic", (False, True), ids=("nondet", "det"))
@pytest.mark.parametrize("layout", ("contiguous", "permuted", "channels_last"))
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(10))
def test_roi_align_backward(seed, device, layout, deterministic):
    """gradcheck in float64 of RoIAlign((2, 2), 1, sampling_ratio=1) on a 1 x 8 x 5 x 5 input
    (torchvision's RoIOpTester.test_backward); the gradient for a random upstream gradient also
    equals torchvision's."""
    pool = 2
    leaf = torch.rand(1, 2 * pool ** 2, 5, 5, generator=torch_gen(seed), dtype=torch.float64).to(device)
    leaf.requires_grad_()
    x = in_layout(leaf, layout)
    rois = torch.tensor(BACKWARD_ROIS, dtype=torch.float64, device=device)
    layer = fnn.RoIAlign((pool, pool), spatial_scale=1, sampling_ratio=1)
    # CUDA's default backward scatters with atomic adds: not bit-reproducible
    nondet_tol = 1e-12 if device == "cuda" and not deterministic else 0.0
    with deterministic_algorithms(deterministic):
        assert torch.autograd.gradcheck(lambda z: layer(z, rois), (x,), atol=1e-5, nondet_tol=nondet_tol)
        out = layer(x, rois)
        g = torch.randn(out.shape, generator=torch_gen(100 + seed), dtype=torch.float64)
        grad, = torch.autograd.grad(out, leaf, g.to(device))
    if helpers.HAS_TORCHVISION:
        import torchvision
        tv_leaf = leaf.detach().cpu().requires_grad_()
        tv_out = torchvision.ops.RoIAlign((pool, pool), 1, 1)(in_layout(tv_leaf, layout), rois.cpu())
        tv_grad, = torch.autograd.grad(tv_out, tv_leaf, g)
        torch.testing.assert_close(out.detach().cpu(), tv_out.detach(), rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(grad.cpu(), tv_grad, rtol=1e-7, atol=1e-9)


# ----------------------------------------------------------------------------- RoIAlign: fx, shapes, boxes

class RoIWrapper(nn.Module):
    """Calls a RoI layer on two inputs and returns nothing (torchvision's leaf-node check)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.n_inputs = 2

    def forward(self, a, b):
        self.layer(a, b)


class MultiScaleWrapper(RoIWrapper):
    def __init__(self, layer):
        super().__init__(layer)
        self.n_inputs = 3

    def forward(self, a, b, c):
        self.layer(a, b, c)


def _call_nodes(module):
    graph = torch.fx.symbolic_trace(module).graph
    return [n for n in graph.nodes if n.op not in ("placeholder", "output")], \
        [n for n in graph.nodes if n.op == "placeholder"]


@pytest.mark.parametrize("device", DEVICES)
def test_roi_align_is_leaf_node(device):
    """torch.fx records the layer's op as ONE call node, next to the wrapper's two inputs."""
    calls, inputs = _call_nodes(RoIWrapper(fnn.RoIAlign((5, 5), 1, -1)).to(device))
    assert len(inputs) == 2
    assert [n.op for n in calls] == ["call_function"] and calls[0].target is fops.roi_align


@helpers.needs_torchvision
@pytest.mark.parametrize("device", DEVICES)
def test_roi_align_graph_node_names(device):
    from torchvision.models.feature_extraction import get_graph_node_names
    wrapper = RoIWrapper(fnn.RoIAlign((5, 5), 1, -1)).to(device)
    train, evaluation = get_graph_node_names(wrapper)
    assert len(train) == len(evaluation) == 1 + wrapper.n_inputs


@pytest.mark.parametrize("device", DEVICES)
def test_roi_align_torch_fx_trace(device):
    """The symbolically traced layer gives the eager layer's output (boxes partly outside the
    5 x 5 map, as in torchvision's test)."""
    layer = fnn.RoIAlign((5, 5), 1, -1).to(device)
    traced = torch.fx.symbolic_trace(layer)
    x = torch.rand(2, 50, 5, 5, generator=torch_gen(2)).to(device)
    rois = torch.tensor(FORWARD_ROIS, dtype=torch.float32, device=device)
    eager, fx = layer(x, rois), traced(x, rois)
    assert eager.dtype == fx.dtype == x.dtype
    torch.testing.assert_close(fx, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eager.cpu().double(), slow_roi_align(x, rois, 5), rtol=1e-5, atol=1e-5)


def test_roi_align_boxes_shape():
    """Malformed boxes: torchvision asserts (AssertionError from torch._assert); fastseg raises a
    ValueError naming `boxes` (a documented difference), for the function and the layer."""
    a = torch.linspace(1, 8 * 8, 8 * 8).reshape(1, 1, 8, 8)
    bad = [
        torch.tensor([[0, 0, 3, 3]], dtype=a.dtype),  # Tensor[K, 4] where [K, 5] is needed
        [torch.tensor([[0, 0, 3]], dtype=a.dtype)],  # a list element [L, 3] where [L, 4] is needed
        torch.tensor([[0, 0, 0, 3, 3, 1]], dtype=a.dtype),
        torch.tensor([0, 0, 0, 3, 3], dtype=a.dtype),  # 1-D
        [torch.tensor([[0, 0, 0, 3, 3]], dtype=a.dtype)],
        (torch.tensor([0, 0, 3, 3], dtype=a.dtype),),
    ]
    for boxes in bad:
        with pytest.raises(ValueError, match=r"^fastseg\.roi_align: boxes"):
            fops.roi_align(a, boxes, output_size=(2, 2))
        with pytest.raises(ValueError, match=r"^fastseg\.roi_align: boxes"):
            fnn.RoIAlign((2, 2), 1.0, -1)(a, boxes)
    if helpers.HAS_TORCHVISION:
        import torchvision
        for boxes in bad[:2]:
            with pytest.raises(AssertionError):
                torchvision.ops.roi_align(a, boxes, output_size=(2, 2))


def test_roi_align_boxes_list():
    """torchvision's test_jit_boxes_list, eagerly: a model taking a list of two [5, 4] box
    tensors (the transposed rois, so boxes in any corner order) pools 10 boxes. Scripting the
    model is not ported (TorchScript)."""

    class Pool(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = fnn.RoIAlign(output_size=[3, 3], spatial_scale=1.0, sampling_ratio=-1)

        def forward(self, images, boxes):
            return self.pool(images, boxes)

    x = torch.rand(2, 1, 10, 10, generator=torch_gen(3))
    roi = torch.tensor(FORWARD_ROIS, dtype=torch.float).t()
    y = Pool()(x, [roi, roi])
    assert y.shape == (10, 1, 3, 3)
    torch.testing.assert_close(y.double(), slow_roi_align(x, [roi, roi], 3), rtol=1e-5, atol=1e-5)
    if helpers.HAS_TORCHVISION:
        import torchvision
        torch.testing.assert_close(y, torchvision.ops.roi_align(x, [roi, roi], [3, 3]), rtol=1e-5, atol=1e-5)


def test_roi_align_box_sequences():
    """A [K, 5] tensor, a list and a tuple of per-image [L, 4] tensors are the same boxes
    (torchvision's TestBoxConversionToRoi)."""
    x = torch.rand(2, 3, 12, 12, generator=torch_gen(4)) * 100
    as_tensor = torch.tensor([[0, 0, 0, 10, 10], [1, 0, 0, 10, 10]], dtype=torch.float)
    as_list = [torch.tensor([[0, 0, 10, 10]], dtype=torch.float), torch.tensor([[0, 0, 10, 10]], dtype=torch.float)]
    ref = fops.roi_align(x, as_tensor, 4, 1.0, 2)
    helpers.assert_same(fops.roi_align(x, as_list, 4, 1.0, 2), ref)
    helpers.assert_same(fops.roi_align(x, tuple(as_list), 4, 1.0, 2), ref)


@pytest.mark.parametrize("requires_grad", (False, True), ids=("rois", "rois_grad"))
@pytest.mark.parametrize("dtype", dtype_params((torch.float16, torch.float32, torch.float64)))
@pytest.mark.parametrize("device", DEVICES)
def test_roi_align_opcheck(device, dtype, requires_grad):
    """torch.library.opcheck of fastseg::roi_align on torchvision's forward case (aligned,
    adaptive sampling, rois requiring grad or not)."""
    rois = torch.tensor(FORWARD_ROIS, dtype=dtype, device=device, requires_grad=requires_grad)
    x = torch.rand(2, 50, 10, 10, generator=torch_gen(5)).to(dtype).to(device)
    helpers.run_opcheck(torch.ops.fastseg.roi_align.default, (x,),
                        dict(rois=rois, spatial_scale=1.0, pooled_height=5, pooled_width=5, sampling_ratio=-1,
                             aligned=True))


# ----------------------------------------------------------------------------- RoIAlign: beyond the suite

@st.composite
def roi_cases(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    scale = draw(st.sampled_from((1.0, 0.5, 2.0, 0.25)))
    # a corner mostly on the map (some off it), a size mostly positive (some 0: degenerate, some
    # negative: reversed corners), all in image coordinates (/ scale)
    corner = st.floats(-2.0, 9.0, width=32)
    size = st.one_of(st.floats(0.0, 9.0, width=32), st.just(0.0), st.floats(-2.0, 0.0, width=32))
    boxes = []
    for b, x1, y1, bw, bh in draw(st.lists(st.tuples(st.integers(0, n - 1), corner, corner, size, size),
                                           min_size=1, max_size=4)):
        boxes.append((b, x1 / scale, y1 / scale, (x1 + bw) / scale, (y1 + bh) / scale))
    return dict(shape=(n, c, h, w), boxes=boxes, scale=scale,
                output_size=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                sampling_ratio=draw(st.sampled_from((-1, 0, 1, 2, 3))), aligned=draw(st.booleans()),
                layout=draw(st.sampled_from(("contiguous", "permuted", "channels_last"))),
                as_list=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)))


@pytest.mark.parametrize("device", DEVICES)
def test_roi_align_generated(device):
    """Generated cases (derandomized hypothesis): sampling ratios, spatial scales, boxes partly
    or wholly outside the map, degenerate and reversed boxes, both box forms, every layout; the
    forward in float64 equals slow_roi_align and torchvision, and so does the gradient."""

    @settings(max_examples=80, deadline=None, derandomize=True, database=None)
    @given(case=roi_cases())
    def check(case):
        x = torch.randn(case["shape"], generator=torch_gen(case["seed"]), dtype=torch.float64)
        x = in_layout(x.to(device), case["layout"]).detach().requires_grad_()
        rois = torch.tensor([list(map(float, b)) for b in case["boxes"]], dtype=torch.float64).reshape(-1, 5)
        boxes = [rois[rois[:, 0] == i, 1:].to(device) for i in range(case["shape"][0])] if case["as_list"] \
            else rois.to(device)
        args = (case["output_size"], case["scale"], case["sampling_ratio"], case["aligned"])
        y = fops.roi_align(x, boxes, *args)
        expected = slow_roi_align(x, boxes, *args)
        torch.testing.assert_close(y.detach().cpu(), expected, rtol=1e-7, atol=1e-9)
        if helpers.HAS_TORCHVISION:
            import torchvision
            xt = x.detach().cpu().requires_grad_()
            tv = torchvision.ops.roi_align(xt, [b.cpu() for b in boxes] if case["as_list"] else rois, *args)
            torch.testing.assert_close(y.detach().cpu(), tv.detach(), rtol=1e-7, atol=1e-9)
            if y.numel():
                g = torch.randn(y.shape, generator=torch_gen(1), dtype=torch.float64)
                ours, = torch.autograd.grad(y, x, g.to(device))
                theirs, = torch.autograd.grad(tv, xt, g, allow_unused=True)
                theirs = torch.zeros_like(xt) if theirs is None else theirs
                torch.testing.assert_close(ours.cpu(), theirs, rtol=1e-7, atol=1e-9)

    check()


@pytest.mark.parametrize("device", DEVICES)
def test_roi_align_empty(device):
    """No boxes: [0, C, ph, pw] in the input's dtype, for a [0, 5] tensor and for a list of
    [0, 4] tensors; the gradient is zero."""
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64, device=device, requires_grad=True)
    for boxes in (torch.zeros(0, 5, dtype=torch.float64, device=device),
                  [torch.zeros(0, 4, dtype=torch.float64, device=device)] * 2):
        y = fnn.RoIAlign((5, 4), 1.0, -1)(x, boxes)
        assert y.shape == (0, 3, 5, 4) and y.dtype == x.dtype
        grad, = torch.autograd.grad(y.sum(), x)
        assert torch.equal(grad, torch.zeros_like(x))
        if helpers.HAS_TORCHVISION:
            import torchvision
            tv = torchvision.ops.roi_align(x.detach().cpu(), [b.cpu() for b in boxes] if isinstance(boxes, list)
                                           else boxes.cpu(), (5, 4))
            assert tv.shape == y.shape


def test_roi_align_mixed_dtypes():
    """Outside autocast fastseg takes rois of another floating dtype than the input (read in the
    compute dtype; the output keeps the input's dtype); torchvision refuses them (RuntimeError).
    A documented difference."""
    x = torch.rand(2, 4, 10, 10, generator=torch_gen(6))
    rois = torch.tensor(FORWARD_ROIS, dtype=torch.float32)
    same = fops.roi_align(x, rois, 3, 1.0, 2)
    for rd in (torch.float64, torch.float16, torch.bfloat16):  # integer coordinates: exact in all
        y = fops.roi_align(x, rois.to(rd), 3, 1.0, 2)
        assert y.dtype == x.dtype
        helpers.assert_same(y, same)
    if helpers.HAS_TORCHVISION:
        import torchvision
        with pytest.raises(RuntimeError):
            torchvision.ops.roi_align(x, rois.double(), 3, 1.0, 2)


# ----------------------------------------------------------------------------- MultiScaleRoIAlign

def test_msroialign_repr():
    """torchvision's exact string, and the same repr as torchvision's layer for every form of
    output_size (an int n is stored as (n, n), a list as a tuple, as there)."""
    layer = fnn.MultiScaleRoIAlign(["0"], (7, 7), 2)
    assert repr(layer) == "MultiScaleRoIAlign(featmap_names=['0'], output_size=(7, 7), sampling_ratio=2)"
    assert repr(fnn.MultiScaleRoIAlign(["p2", "p3"], 7, 0)) == \
        "MultiScaleRoIAlign(featmap_names=['p2', 'p3'], output_size=(7, 7), sampling_ratio=0)"
    assert repr(fnn.MultiScaleRoIAlign(["0"], [14, 7], 2)) == \
        "MultiScaleRoIAlign(featmap_names=['0'], output_size=(14, 7), sampling_ratio=2)"
    assert repr(fnn.RoIAlign((5, 4), 0.25, 2, aligned=True)) == \
        "RoIAlign(output_size=(5, 4), spatial_scale=0.25, sampling_ratio=2, aligned=True)"
    if helpers.HAS_TORCHVISION:
        import torchvision
        for args in ((["0"], (7, 7), 2), (["0", "1"], 7, -1), (["0"], [14, 7], 2)):
            assert repr(fnn.MultiScaleRoIAlign(*args)) == repr(torchvision.ops.MultiScaleRoIAlign(*args))
        for args in (((7, 7), 1.0, 2), (7, 0.5, -1, True), ([3, 2], 0.125, 0, False)):
            assert repr(fnn.RoIAlign(*args)) == repr(torchvision.ops.RoIAlign(*args))


@pytest.mark.parametrize("device", DEVICES)
def test_msroialign_is_leaf_node(device):
    calls, inputs = _call_nodes(MultiScaleWrapper(fnn.MultiScaleRoIAlign(["0"], (7, 7), 2)).to(device))
    assert len(inputs) == 3 and len(calls) == 1 and calls[0].op == "call_function"


@helpers.needs_torchvision
@pytest.mark.parametrize("device", DEVICES)
def test_msroialign_graph_node_names(device):
    from torchvision.models.feature_extraction import get_graph_node_names
    wrapper = MultiScaleWrapper(fnn.MultiScaleRoIAlign(["0"], (7, 7), 2)).to(device)
    train, evaluation = get_graph_node_names(wrapper)
    assert len(train) == len(evaluation) == 1 + wrapper.n_inputs


def fpn_inputs(seed, device="cpu", dtype=torch.float64, n_boxes=(6, 5)):
    """Four levels (strides 4..32) of a 256 x 320 batch of two images, boxes of every level's
    size (sqrt(area) from 8 to 700 pixels) partly outside the images, and an extra map that the
    layer must ignore."""
    g = torch_gen(seed)
    img = (256, 320)
    feats = {f"p{i}": torch.randn(2, 3, img[0] // 2 ** i, img[1] // 2 ** i, generator=g, dtype=torch.float64)
             for i in range(2, 6)}
    feats["pool"] = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    boxes = []
    for k in n_boxes:
        xy = torch.rand(k, 2, generator=g, dtype=torch.float64) * torch.tensor([img[1], img[0]])
        side = torch.exp(torch.rand(k, 1, generator=g, dtype=torch.float64) * math.log(90)) * 8
        wh = side * (0.5 + torch.rand(k, 2, generator=g, dtype=torch.float64))
        boxes.append(torch.cat([xy - wh / 2, xy + wh / 2], 1).to(dtype).to(device))
    return {k: v.to(dtype).to(device) for k, v in feats.items()}, boxes, [img, (200, 300)]


def ref_levels(boxes, k_min, k_max, canonical_scale=224, canonical_level=4):
    """FPN level (index from the first map) of each box: floor(canonical_level +
    log2(sqrt(area) / canonical_scale) + 1e-6), clamped to [k_min, k_max]."""
    out = []
    for x1, y1, x2, y2 in torch.cat(boxes).double().tolist():
        k = math.floor(canonical_level + math.log2(math.sqrt((x2 - x1) * (y2 - y1)) / canonical_scale) + 1e-6)
        out.append(min(max(k, k_min), k_max) - k_min)
    return out


def test_msroialign_setup_scales_and_levels():
    """Each map's scale is 2^round(log2(map height / largest image height)); the level of each
    box follows the FPN rule; both as torchvision's _setup_scales / LevelMapper."""
    feats, boxes, shapes = fpn_inputs(7)
    levels = [feats[f"p{i}"] for i in range(2, 6)]
    assert RA.infer_scales(levels, shapes) == [0.25, 0.125, 0.0625, 0.03125]
    got = RA.map_levels(boxes, 2, 5).tolist()
    assert got == ref_levels(boxes, 2, 5)
    assert len(set(got)) == 4, f"the boxes should reach every level: {got}"
    assert RA.map_levels(boxes, 3, 4, 112, 3).tolist() == ref_levels(boxes, 3, 4, 112, 3)
    if helpers.HAS_TORCHVISION:
        from torchvision.ops import poolers
        scales, mapper = poolers._setup_scales(levels, shapes, 224, 4)
        assert scales == RA.infer_scales(levels, shapes)
        assert mapper(boxes).tolist() == got


@pytest.mark.parametrize("canonical", ((224, 4), (112, 3)), ids=("canonical224", "canonical112"))
@pytest.mark.parametrize("device", DEVICES)
def test_msroialign_forward(device, canonical):
    """Each box pooled (7 x 7, sampling ratio 2, aligned=False) from the map its size maps to at
    that map's scale, rows in box order; the same as torchvision's layer, gradients included;
    no boxes give [0, C, 7, 7]."""
    feats, boxes, shapes = fpn_inputs(8, device)
    names = ["p2", "p3", "p4", "p5"]
    layer = fnn.MultiScaleRoIAlign(names, 7, 2, canonical_scale=canonical[0], canonical_level=canonical[1])
    leaves = {k: v.detach().requires_grad_() for k, v in feats.items()}
    y = layer(leaves, boxes, shapes)
    assert y.shape == (11, 3, 7, 7)
    levels = ref_levels(boxes, 2, 5, *canonical)
    rows = torch.cat(boxes)
    for k, level in enumerate(levels):
        image = 0 if k < len(boxes[0]) else 1
        roi = torch.cat([rows.new_zeros(1, 1), rows[k:k + 1]], 1)
        expected = slow_roi_align(feats[names[level]][image:image + 1], roi, 7, 0.25 / 2 ** level, 2)
        torch.testing.assert_close(y[k:k + 1].detach().cpu(), expected, rtol=1e-7, atol=1e-9,
                                   msg=lambda m: f"box {k} (level {level})\n{m}")
    empty = layer(feats, [b[:0] for b in boxes], shapes)
    assert empty.shape == (0, 3, 7, 7)
    if helpers.HAS_TORCHVISION:
        import torchvision
        tv_layer = torchvision.ops.MultiScaleRoIAlign(names, 7, 2, canonical_scale=canonical[0],
                                                      canonical_level=canonical[1])
        tv_leaves = {k: v.detach().cpu().requires_grad_() for k, v in feats.items()}
        tv = tv_layer(tv_leaves, [b.cpu() for b in boxes], shapes)
        torch.testing.assert_close(y.detach().cpu(), tv.detach(), rtol=1e-7, atol=1e-9)
        g = torch.randn(y.shape, generator=torch_gen(9), dtype=torch.float64)
        ours = torch.autograd.grad(y, [leaves[n] for n in names], g.to(device))
        theirs = torch.autograd.grad(tv, [tv_leaves[n] for n in names], g, allow_unused=True)
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a.cpu(), torch.zeros_like(a.cpu()) if b is None else b, rtol=1e-7, atol=1e-9)


# ----------------------------------------------------------------------------- NMS

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("iou", (0.2, 0.5, 0.8))
def test_nms_ref(iou, seed, device):
    """1000 random boxes, one pair just over the threshold: fastseg's nms (every strategy) keeps
    exactly ref_nms's boxes in its order, and torchvision's."""
    boxes, scores = boxes_with_iou(1000, iou, seed)
    expected = ref_nms(boxes, scores, iou)
    assert (len(boxes) - 1) not in expected.tolist() or 0 not in expected.tolist(), \
        "the widened copy of box 0 must be suppressed by it (or box 0 by another)"
    for strategy in NMS_STRATEGIES:
        with helpers.strategy(nms=strategy):
            keep = fops.nms(boxes.to(device), scores.to(device), iou)
        assert keep.dtype == torch.int64 and keep.device.type == device
        assert torch.equal(keep.cpu(), expected), f"strategy {strategy}: {keep.tolist()} != {expected.tolist()}"
    if helpers.HAS_TORCHVISION:
        import torchvision
        assert torch.equal(torchvision.ops.nms(boxes, scores, iou), expected)


def test_nms_input_errors():
    """Malformed boxes or scores raise RuntimeError (torchvision raises RuntimeError too), with a
    message naming the argument; the same for batched_nms."""
    cases = [
        (torch.rand(4), torch.rand(3), "boxes"),
        (torch.rand(3, 5), torch.rand(3), "boxes"),
        (torch.rand(3, 4), torch.rand(3, 2), "scores"),
        (torch.rand(3, 4), torch.rand(4), "scores"),
    ]
    for boxes, scores, name in cases:
        with pytest.raises(RuntimeError, match=rf"^fastseg\.nms: {name}"):
            fops.nms(boxes, scores, 0.5)
        if boxes.dim() == 2:
            idxs = torch.zeros(boxes.shape[0], dtype=torch.int64)
            with pytest.raises(RuntimeError, match=rf"^fastseg\.batched_nms: {name}"):
                fops.batched_nms(boxes, scores, idxs, 0.5)
        if helpers.HAS_TORCHVISION:
            import torchvision
            with pytest.raises(RuntimeError):
                torchvision.ops.nms(boxes, scores, 0.5)


@pytest.mark.parametrize("iou", (0.2, 0.5, 0.8))
@pytest.mark.parametrize("device", CUDA_ONLY)
def test_nms_gpu(device, iou):
    """CUDA (the bitmask kernel) keeps exactly the CPU's boxes, in float64 and float32."""
    boxes, scores = boxes_with_iou(1000, iou, 11)
    for dtype in (torch.float64, torch.float32):
        b, s = boxes.to(dtype), scores.to(dtype)
        assert torch.equal(fops.nms(b.to(device), s.to(device), iou).cpu(), fops.nms(b, s, iou))


@pytest.mark.parametrize("dtype", dtype_params((torch.float32, torch.float16)))
@pytest.mark.parametrize("iou", (0.2, 0.5, 0.8))
@pytest.mark.parametrize("device", CUDA_ONLY)
def test_nms_autocast_cuda(device, iou, dtype):
    """Under CUDA autocast boxes and scores run in float32: CUDA keeps the CPU's float32 result on
    the same (rounded) values."""
    boxes, scores = boxes_with_iou(1000, iou, 12)
    b, s = boxes.to(dtype), scores.to(dtype)
    with torch.autocast("cuda"):
        keep = fops.nms(b.to(device), s.to(device), iou)
    assert torch.equal(keep.cpu(), fops.nms(b.float(), s.float(), iou))


@pytest.mark.parametrize("dtype", dtype_params((torch.float32, torch.bfloat16)))
@pytest.mark.parametrize("iou", (0.2, 0.5, 0.8))
def test_nms_autocast_cpu(iou, dtype):
    """Under CPU autocast, nms of `dtype` boxes and scores == nms of the same values in float32
    (and == torchvision under the same autocast)."""
    boxes, scores = boxes_with_iou(1000, iou, 13)
    b, s = boxes.to(dtype), scores.to(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        keep_float = fops.nms(b.float(), s.float(), iou)
        keep = fops.nms(b, s, iou)
        assert torch.equal(keep, keep_float)
        assert torch.equal(fops.batched_nms(b, s, torch.zeros(len(b), dtype=torch.int64), iou), keep_float)
        if helpers.HAS_TORCHVISION:
            import torchvision
            assert torch.equal(keep, torchvision.ops.nms(b, s, iou))


@pytest.mark.parametrize("device", DEVICES)
def test_nms_float16(device):
    """Three big overlapping boxes: float16 keeps what float32 keeps (torchvision runs this on
    CUDA / MPS only; fastseg's CPU kernels take float16 too)."""
    boxes = torch.tensor([[285.3538, 185.5758, 1193.5110, 851.4551],
                          [285.1472, 188.7374, 1192.4984, 851.0669],
                          [279.2440, 197.9812, 1189.4746, 849.2019]], device=device)
    scores = torch.tensor([0.6370, 0.7569, 0.3966], device=device)
    keep32 = fops.nms(boxes, scores, 0.2)
    keep16 = fops.nms(boxes.half(), scores.half(), 0.2)
    assert torch.equal(keep32, keep16) and keep32.tolist() == [1]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(10))
def test_batched_nms_implementations(seed, device):
    """1000 heavily overlapping boxes in 4 categories at IoU threshold 0.9: fastseg's
    batched_nms == an independent per-category reference == torchvision's vanilla and
    coordinate-trick forms (which agree on this input); empty boxes give an empty result
    without looking at the other arguments."""
    g = torch_gen(seed)
    n = 1000
    boxes = torch.cat((torch.rand(n, 2, generator=g), torch.rand(n, 2, generator=g) + 10), 1)
    assert boxes[:, 0].max() < boxes[:, 2].min() and boxes[:, 1].max() < boxes[:, 3].min()
    scores = torch.rand(n, generator=g)
    idxs = torch.randint(0, 4, (n,), generator=g)
    expected = ref_batched_nms(boxes, scores, idxs, 0.9)
    keep = fops.batched_nms(boxes.to(device), scores.to(device), idxs.to(device), 0.9)
    assert torch.equal(keep.cpu(), expected)
    if helpers.HAS_TORCHVISION:
        from torchvision.ops import boxes as tv_boxes
        assert torch.equal(tv_boxes._batched_nms_vanilla(boxes, scores, idxs, 0.9), expected)
        assert torch.equal(tv_boxes._batched_nms_coordinate_trick(boxes, scores, idxs, 0.9), expected)
    empty = torch.empty((0,), dtype=torch.int64, device=device)
    got = fops.batched_nms(empty, None, None, None)
    assert got.shape == (0,) and got.dtype == torch.int64 and got.device == empty.device


@pytest.mark.parametrize("device", DEVICES)
def test_nms_opcheck(device):
    """torch.library.opcheck (schema, autograd registration, fake tensor, AOT dispatch with
    dynamic shapes) of fastseg::nms and fastseg::batched_nms, as torchvision generates for its
    TestNMS."""
    boxes, scores = boxes_with_iou(200, 0.5, 14)
    idxs = torch.randint(0, 3, (200,), generator=torch_gen(14))
    boxes, scores, idxs = boxes.to(device), scores.to(device), idxs.to(device)
    helpers.run_opcheck(torch.ops.fastseg.nms.default, (boxes, scores, 0.5))
    helpers.run_opcheck(torch.ops.fastseg.batched_nms.default, (boxes, scores, idxs, 0.5))


# ----------------------------------------------------------------------------- NMS: beyond the suite

@pytest.mark.parametrize("device", DEVICES)
def test_nms_ties(device):
    """Equal scores keep the lower index first, duplicates are suppressed (IoU 1), an IoU exactly
    at the threshold is kept; batched_nms the same per category."""
    boxes = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 2], [0, 0, 4, 4], [10, 10, 12, 12], [10, 10, 12, 12],
                          [0, 0, 4, 4]], dtype=torch.float32, device=device)
    scores = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.9, 0.5], device=device)
    keep = fops.nms(boxes, scores, 0.5)  # IoU(0, 1) == 0.5: box 1 survives box 0
    assert keep.tolist() == [4, 0, 1] == ref_nms(boxes, scores, 0.5).tolist()
    assert fops.nms(boxes, scores, 0.49).tolist() == [4, 0]
    idxs = torch.tensor([0, 0, 1, 0, 1, 0], device=device)
    keep = fops.batched_nms(boxes, scores, idxs, 0.5)
    assert keep.tolist() == [4, 0, 1, 2, 3] == ref_batched_nms(boxes, scores, idxs, 0.5).tolist()


@pytest.mark.parametrize("device", DEVICES)
def test_nms_large_and_small_thresholds(device):
    """Thresholds at and past the ends: >= 1 keeps every box (an IoU is at most 1), 0 drops every
    box overlapping a kept one, negative drops even disjoint boxes; all as ref_nms and
    torchvision."""
    boxes, scores = boxes_with_iou(300, 0.5, 15)
    boxes, scores = boxes.to(device), scores.to(device)
    order = torch.sort(scores.cpu(), descending=True, stable=True).indices
    for thr in (1.0, 1.5, 1e6):
        assert torch.equal(fops.nms(boxes, scores, thr).cpu(), order)
    for thr in (0.0, 0.9, 0.99, -0.5):
        expected = ref_nms(boxes, scores, thr)
        assert torch.equal(fops.nms(boxes, scores, thr).cpu(), expected), thr
        if helpers.HAS_TORCHVISION:
            import torchvision
            assert torch.equal(torchvision.ops.nms(boxes.cpu(), scores.cpu(), thr), expected), thr
    assert fops.nms(boxes, scores, -0.5).tolist() == [int(order[0])]


def test_nms_threshold_refused():
    """A NaN or infinite iou_threshold raises ValueError (torchvision runs them: NaN keeps every
    box); a documented difference."""
    boxes, scores = boxes_with_iou(10, 0.5, 16)
    for thr in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match=r"^fastseg\.nms: iou_threshold"):
            fops.nms(boxes, scores, thr)
        with pytest.raises(ValueError, match=r"^fastseg\.batched_nms: iou_threshold"):
            fops.batched_nms(boxes, scores, torch.zeros(10, dtype=torch.int64), thr)


@pytest.mark.parametrize("device", DEVICES)
def test_batched_nms_reference(device):
    """Many categories, clustered boxes, tied scores, several thresholds: batched_nms ==
    ref_batched_nms (exact per-category NMS)."""
    rng, g = random.Random(17), torch_gen(17)
    for k, categories in ((1, 1), (40, 1), (200, 7), (300, 300)):
        centres = torch.rand(k // 10 + 1, 2, generator=g) * 50
        c = centres[torch.randint(len(centres), (k,), generator=g)] + torch.randn(k, 2, generator=g) * 3
        wh = torch.rand(k, 2, generator=g) * 20 + 1
        boxes = torch.cat([c - wh / 2, c + wh / 2], 1)
        scores = (torch.randint(0, 6, (k,), generator=g) / 5.0) if rng.random() < 0.5 else torch.rand(k, generator=g)
        idxs = torch.randint(0, categories, (k,), generator=g)
        for thr in (0.0, 0.3, 0.7, 0.95):
            keep = fops.batched_nms(boxes.to(device), scores.to(device), idxs.to(device), thr)
            assert torch.equal(keep.cpu(), ref_batched_nms(boxes, scores, idxs, thr)), (k, categories, thr)


# ----------------------------------------------------------------------------- not ported

NOT_PORTED = {
    "RoIOpTester.test_mps_error_inputs": "MPS: fastseg has no MPS kernels",
    "TestRoIAlign.test_qroialign": "quantized tensors: fastseg has no quantized kernels "
                                   "(test_quantized_inputs_refused checks they are refused)",
    "TestRoIAlign.test_qroi_align_multiple_images": "quantized tensors (see test_quantized_inputs_refused)",
    "TestRoIAlign.test_jit_boxes_list[torch.jit.script]": "TorchScript: fastseg's ops are not scriptable "
                                                          "(the eager model: test_roi_align_boxes_list)",
    "RoIOpTester.test_backward[torch.jit.script gradcheck]": "TorchScript: fastseg's ops are not scriptable "
                                                             "(the eager gradcheck: test_roi_align_backward)",
    "TestNMS.test_qnms": "quantized tensors (see test_quantized_inputs_refused)",
    "TestNMS.test_nms_gpu[mps]": "MPS: fastseg has no MPS kernels",
    "TestNMS.test_nms_float16[mps]": "MPS: fastseg has no MPS kernels",
}


@pytest.mark.parametrize("name", sorted(NOT_PORTED))
def test_not_ported(name):
    pytest.skip(f"torchvision's {name}: {NOT_PORTED[name]}")


def test_quantized_inputs_refused():
    """Quantized input / rois / boxes are refused by the dispatcher (NotImplementedError) rather
    than read as raw integers (torchvision has quantized roi_align and nms kernels)."""
    if not hasattr(torch, "quantize_per_tensor"):
        pytest.skip("this torch has no quantized tensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensor creation is deprecated
        x = torch.quantize_per_tensor(torch.randint(50, 100, (1, 2, 10, 10)).float(), 1.0, 0, torch.quint8)
        rois = torch.quantize_per_tensor(torch.tensor([[0, 1.0, 1, 6, 6]]), 1.0, 0, torch.quint8)
        boxes, scores = boxes_with_iou(20, 0.5, 18)
        qboxes = torch.quantize_per_tensor(boxes, 1.0, 0, torch.quint8)
        qscores = torch.quantize_per_tensor(scores * 100, 1.0, 0, torch.quint8)
    with pytest.raises(NotImplementedError):
        fops.roi_align(x, rois, 5)
    with pytest.raises(NotImplementedError):
        fops.nms(qboxes, qscores, 0.5)
