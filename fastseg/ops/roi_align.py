"""RoIAlign: roi_align, a drop-in for torchvision.ops.roi_align (same schema and results).

`boxes` is a [K, 5] tensor (batch index, x1, y1, x2, y2) or a list of [Ki, 4] tensors, one per
image. Non-finite boxes and batch indices outside the batch raise (torchvision reads out of
bounds / returns garbage there). Kernels in csrc/ops/roi_align/: the forward is one body per
output element (channels-last input is read with C innermost and gives channels-last output);
the backward scatters per (image, channel) plane on the CPU (parallel, deterministic, no
atomics); on CUDA it scatters with atomic adds like torchvision's kernel (not bit-reproducible),
or per plane without atomics when `torch.use_deterministic_algorithms(True)`. Double backward
raises.
"""
import math
from typing import List, Sequence, Tuple, Union

import torch

from .. import _loader
from ._utils import (IntPair, check_bool, check_float, check_int, check_same_device, empty_4d, fake_same_device,
                     no_double_backward, pair)

# boxes_to_rois, infer_scales and map_levels are helpers (of fastseg.reference and the tests),
# not public API.
__all__ = ["roi_align", "multi_scale_roi_align", "MAX_SAMPLING_RATIO"]

#: The largest explicit sampling_ratio. A bin takes sampling_ratio**2 bilinear samples, so this
#: is the same cap of 2**24 samples per bin (4096 x 4096) that the kernels put on adaptive
#: sampling (kMaxSamplesPerBin, csrc/ops/roi_align/roi_align_ops.h). Beyond a few samples per
#: feature-map pixel more samples change nothing (the bilinear surface is piecewise linear), so
#: no real use comes near it; what lies beyond it only runs for hours (2**40) or fails to
#: allocate (2**31).
MAX_SAMPLING_RATIO = 4096


def _sampling_ratio(op: str, sampling_ratio) -> int:
    """An int <= MAX_SAMPLING_RATIO (<= 0: adaptive, as in torchvision)."""
    return check_int(sampling_ratio, op, "sampling_ratio", maximum=MAX_SAMPLING_RATIO,
                     why=" (sampling_ratio**2 samples per bin; <= 0 for adaptive sampling)")


def _check_boxes_device(op: str, input: torch.Tensor, boxes, input_name: str = "input") -> None:
    if isinstance(boxes, torch.Tensor):
        check_same_device(op, input_name, input, ("boxes", boxes))
    elif isinstance(boxes, (list, tuple)):
        check_same_device(op, input_name, input, ("boxes", list(boxes)))


def boxes_to_rois(boxes: Union[torch.Tensor, Sequence[torch.Tensor]], op: str = "roi_align") -> torch.Tensor:
    """[K, 5] rois from a [K, 5] tensor or a list of per-image [Ki, 4] boxes (torchvision's
    convert_boxes_to_roi_format)."""
    if isinstance(boxes, torch.Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"fastseg.{op}: boxes must be a [K, 5] tensor or a list of [Ki, 4] tensors, "
                             f"got shape {tuple(boxes.shape)}")
        return boxes
    if not isinstance(boxes, (list, tuple)) or not all(isinstance(b, torch.Tensor) for b in boxes):
        raise TypeError(f"fastseg.{op}: boxes must be a Tensor or a list of Tensors, got {type(boxes).__name__}")
    for i, b in enumerate(boxes):
        if b.dim() != 2 or b.shape[1] != 4:
            raise ValueError(f"fastseg.{op}: boxes[{i}] must have shape [Ki, 4], got {tuple(b.shape)}")
    if len(boxes) == 0:
        raise ValueError(f"fastseg.{op}: boxes is an empty list (give one [0, 4] tensor per image)")
    cat = torch.cat(list(boxes), 0)
    ids = torch.cat([torch.full((b.shape[0], 1), i, dtype=cat.dtype, device=cat.device) for i, b in enumerate(boxes)])
    return torch.cat([ids, cat], 1)


def roi_align(input: torch.Tensor, boxes: Union[torch.Tensor, List[torch.Tensor]], output_size: IntPair,
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> torch.Tensor:
    """Drop-in for `torchvision.ops.roi_align`: [K, C, output_size] bins, each the average of
    bilinear samples of its roi (see docs/design.md §5.3)."""
    _loader.require_ops()
    op = "roi_align"
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"fastseg.roi_align: input must be a Tensor, got {type(input).__name__}")
    _check_boxes_device(op, input, boxes)
    ph, pw = pair(output_size, op, "output_size", minimum=1)
    spatial_scale = check_float(spatial_scale, op, "spatial_scale", greater_than=0.0)
    sampling_ratio = _sampling_ratio(op, sampling_ratio)
    aligned = check_bool(aligned, op, "aligned")
    rois = boxes_to_rois(boxes)
    return torch.ops.fastseg.roi_align.default(input, rois, spatial_scale, ph, pw, sampling_ratio, aligned)


def _image_shapes(op: str, image_shapes) -> List[Tuple[int, int]]:
    """image_shapes as (H, W) pairs of ints >= 1."""
    if isinstance(image_shapes, (str, bytes, torch.Tensor)) or not isinstance(image_shapes, Sequence):
        raise TypeError(f"fastseg.{op}: image_shapes must be a list of (H, W) pairs of ints, got "
                        f"{type(image_shapes).__name__}")
    if len(image_shapes) == 0:
        raise ValueError(f"fastseg.{op}: image_shapes must not be empty")
    out = []
    for i, hw in enumerate(image_shapes):
        if isinstance(hw, (str, bytes)) or not isinstance(hw, (Sequence, torch.Size)) or len(hw) != 2:
            raise ValueError(f"fastseg.{op}: image_shapes[{i}] must be an (H, W) pair of ints, got {hw!r}")
        out.append(tuple(check_int(v, op, f"image_shapes[{i}]", minimum=1) for v in hw))
    return out


def _check_box_values(op: str, rois: torch.Tensor) -> None:
    """Every box finite with x2 >= x1 and y2 >= y1 (a box's level comes from its area: a NaN or
    a negative area has none). Eager only: a data-dependent check would break a compiled graph
    (the kernel still refuses non-finite rois there)."""
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or rois.device.type == "meta" \
            or rois.shape[0] == 0:
        return
    b = rois[:, 1:]
    bad = ~torch.isfinite(b).all(1) | (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        raise ValueError(f"fastseg.{op}: boxes must be finite with x2 >= x1 and y2 >= y1; box {k} (of image "
                         f"{int(rois[k, 0])}) is {rois[k, 1:].tolist()}")


def infer_scales(features: Sequence[torch.Tensor], image_shapes: Sequence[Tuple[int, int]]) -> List[float]:
    """Each level's spatial scale, a power of two inferred from its size and the largest image
    size (torchvision's MultiScaleRoIAlign rule: the height's ratio, rounded in log2)."""
    image_shapes = _image_shapes("multi_scale_roi_align", image_shapes)
    original = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
    return [2 ** float(torch.tensor(float(f.shape[-2]) / float(original[0])).log2().round()) for f in features]


def map_levels(boxes: Sequence[torch.Tensor], k_min: int, k_max: int, canonical_scale: int = 224,
               canonical_level: int = 4, eps: float = 1e-6) -> torch.Tensor:
    """FPN level index (0 = the first feature) of every box: torchvision's LevelMapper,
    floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps) clamped to [k_min, k_max]."""
    b = torch.cat(list(boxes))
    s = torch.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
    lvl = torch.floor(canonical_level + torch.log2(s / canonical_scale) + torch.tensor(eps, dtype=s.dtype))
    return (torch.clamp(lvl, min=k_min, max=k_max).to(torch.int64) - k_min).to(torch.int64)


def multi_scale_roi_align(features: Sequence[torch.Tensor], boxes: List[torch.Tensor],
                          image_shapes: Sequence[Tuple[int, int]], output_size: IntPair, sampling_ratio: int,
                          canonical_scale: int = 224, canonical_level: int = 4, eps: float = 1e-6) -> torch.Tensor:
    """torchvision's MultiScaleRoIAlign on a list of FPN levels (finest first): each box is
    pooled from the level its size maps to (`map_levels`), at that level's scale
    (`infer_scales`), aligned=False; all levels in one kernel, rows in box order."""
    _loader.require_ops()
    op = "multi_scale_roi_align"
    if isinstance(features, torch.Tensor):
        raise TypeError(f"fastseg.{op}: features must be a non-empty list of Tensors, got a Tensor")
    features = list(features)
    if not features or not all(isinstance(f, torch.Tensor) for f in features):
        raise TypeError(f"fastseg.{op}: features must be a non-empty list of Tensors")
    check_same_device(op, "features[0]", features[0], ("features", features[1:]))
    if isinstance(boxes, torch.Tensor) or not isinstance(boxes, (list, tuple)):
        raise TypeError(f"fastseg.{op}: boxes must be a list of [Ki, 4] tensors, one per image")
    _check_boxes_device(op, features[0], boxes, "features[0]")
    ph, pw = pair(output_size, op, "output_size", minimum=1)
    sampling_ratio = _sampling_ratio(op, sampling_ratio)
    canonical_scale = check_int(canonical_scale, op, "canonical_scale", minimum=1)
    canonical_level = check_int(canonical_level, op, "canonical_level", minimum=-1024, maximum=1024)
    eps = check_float(eps, op, "eps")
    image_shapes = _image_shapes(op, image_shapes)
    rois = boxes_to_rois(boxes, op)
    _check_box_values(op, rois)
    scales = infer_scales(features, image_shapes)
    if len(features) == 1:
        return roi_align(features[0], rois, (ph, pw), scales[0], sampling_ratio)
    lvl_min = -math.log2(scales[0])
    lvl_max = -math.log2(scales[-1])
    levels = map_levels(boxes, int(lvl_min), int(lvl_max), canonical_scale, canonical_level, eps)
    return torch.ops.fastseg.multi_scale_roi_align.default(features, rois, levels, scales, ph, pw, sampling_ratio)


def _fake(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    torch._check(input.dim() == 4, lambda: f"fastseg.roi_align: input must be 4-D, got {input.dim()}-D")
    torch._check(rois.dim() == 2 and rois.shape[1] == 5, lambda: "fastseg.roi_align: rois must be [K, 5]")
    fake_same_device("roi_align", "input", input, ("rois", rois))
    return empty_4d((rois.shape[0], input.shape[1], pooled_height, pooled_width), input)


def _fake_backward(grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width,
                   sampling_ratio, aligned):
    fake_same_device("roi_align", "grad", grad, ("rois", rois))
    return empty_4d((batch_size, channels, height, width), grad)


def _setup(ctx, inputs, output):
    input, rois, spatial_scale, ph, pw, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois)
    ctx.args = (spatial_scale, ph, pw, sampling_ratio, aligned)
    ctx.input_shape = input.shape


def _backward(ctx, grad):
    (rois,) = ctx.saved_tensors
    spatial_scale, ph, pw, sampling_ratio, aligned = ctx.args
    n, c, h, w = ctx.input_shape
    gi = torch.ops.fastseg.roi_align_backward.default(grad, rois, spatial_scale, ph, pw, n, c, h, w,
                                                       sampling_ratio, aligned)
    return gi, None, None, None, None, None, None


def _ms_fake(features, rois, levels, scales, pooled_height, pooled_width, sampling_ratio):
    torch._check(len(features) >= 1, lambda: "fastseg.multi_scale_roi_align: features must not be empty")
    fake_same_device("multi_scale_roi_align", "features[0]", features[0], ("features", list(features[1:])),
                     ("rois", rois), ("levels", levels))
    return empty_4d((rois.shape[0], features[0].shape[1], pooled_height, pooled_width), features[0])


def _ms_setup(ctx, inputs, output):
    features, rois, levels, scales, ph, pw, sampling_ratio = inputs
    ctx.save_for_backward(rois, levels)
    ctx.args = (list(scales), ph, pw, sampling_ratio)
    ctx.shapes = [tuple(f.shape) for f in features]


def _ms_backward(ctx, grad):
    """Per level: the roi_align backward of that level's rows."""
    rois, levels = ctx.saved_tensors
    scales, ph, pw, sampling_ratio = ctx.args
    grads = []
    for l, (shape, scale) in enumerate(zip(ctx.shapes, scales)):
        idx = torch.where(levels == l)[0]
        n, c, h, w = shape
        grads.append(torch.ops.fastseg.roi_align_backward.default(grad.index_select(0, idx), rois.index_select(0, idx),
                                                                  scale, ph, pw, n, c, h, w, sampling_ratio, False))
    return grads, None, None, None, None, None, None


if _loader.HAS_OPS:
    torch.library.register_fake("fastseg::multi_scale_roi_align")(_ms_fake)
    torch.library.register_autograd("fastseg::multi_scale_roi_align", _ms_backward, setup_context=_ms_setup)
    torch.library.register_fake("fastseg::roi_align")(_fake)
    torch.library.register_fake("fastseg::roi_align_backward")(_fake_backward)
    torch.library.register_autograd("fastseg::roi_align", _backward, setup_context=_setup)
    torch.library.register_autograd("fastseg::roi_align_backward", no_double_backward("roi_align"))
