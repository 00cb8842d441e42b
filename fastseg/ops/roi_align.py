"""RoIAlign: roi_align, a drop-in for torchvision.ops.roi_align (same schema and results).

`boxes` is a [K, 5] tensor (batch index, x1, y1, x2, y2) or a list of [Ki, 4] tensors, one per
image. Non-finite boxes and batch indices outside the batch raise (torchvision reads out of
bounds / returns garbage there). Kernels in csrc/ops/roi_align/: the forward is one body per
output element (channels-last input is read with C innermost and gives channels-last output);
the backward scatters per (image, channel) plane: parallel on the CPU and deterministic on both
backends (no atomics). Double backward raises.
"""
import math
from typing import List, Sequence, Tuple, Union

import torch

from .. import _loader
from ._utils import IntPair, empty_4d, no_double_backward, pair

__all__ = ["roi_align", "boxes_to_rois", "multi_scale_roi_align", "infer_scales", "map_levels"]


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
    ids = torch.cat([torch.full((len(b), 1), i, dtype=cat.dtype, device=cat.device) for i, b in enumerate(boxes)])
    return torch.cat([ids, cat], 1)


def roi_align(input: torch.Tensor, boxes: Union[torch.Tensor, List[torch.Tensor]], output_size: IntPair,
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> torch.Tensor:
    """Drop-in for `torchvision.ops.roi_align`: [K, C, output_size] bins, each the average of
    bilinear samples of its roi (see DESIGN.md §5.3)."""
    _loader.require_ops()
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"fastseg.roi_align: input must be a Tensor, got {type(input).__name__}")
    ph, pw = pair(output_size, "roi_align", "output_size", minimum=1)
    rois = boxes_to_rois(boxes)
    return torch.ops.fastseg.roi_align.default(input, rois, float(spatial_scale), ph, pw, int(sampling_ratio),
                                               bool(aligned))


def infer_scales(features: Sequence[torch.Tensor], image_shapes: Sequence[Tuple[int, int]]) -> List[float]:
    """Each level's spatial scale, a power of two inferred from its size and the largest image
    size (torchvision's MultiScaleRoIAlign rule: the height's ratio, rounded in log2)."""
    if not image_shapes:
        raise ValueError("fastseg.multi_scale_roi_align: image_shapes must not be empty")
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
    features = list(features)
    if not features or not all(isinstance(f, torch.Tensor) for f in features):
        raise TypeError(f"fastseg.{op}: features must be a non-empty list of Tensors")
    ph, pw = pair(output_size, op, "output_size", minimum=1)
    if isinstance(boxes, torch.Tensor) or not isinstance(boxes, (list, tuple)):
        raise TypeError(f"fastseg.{op}: boxes must be a list of [Ki, 4] tensors, one per image")
    rois = boxes_to_rois(boxes, op)
    scales = infer_scales(features, image_shapes)
    if len(features) == 1:
        return roi_align(features[0], rois, (ph, pw), scales[0], sampling_ratio)
    lvl_min = -math.log2(scales[0])
    lvl_max = -math.log2(scales[-1])
    levels = map_levels(boxes, int(lvl_min), int(lvl_max), canonical_scale, canonical_level, eps)
    return torch.ops.fastseg.multi_scale_roi_align.default(features, rois, levels, scales, ph, pw, int(sampling_ratio))


def _fake(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    torch._check(input.dim() == 4, lambda: f"fastseg.roi_align: input must be 4-D, got {input.dim()}-D")
    torch._check(rois.dim() == 2 and rois.shape[1] == 5, lambda: "fastseg.roi_align: rois must be [K, 5]")
    return empty_4d((rois.shape[0], input.shape[1], pooled_height, pooled_width), input)


def _fake_backward(grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width,
                   sampling_ratio, aligned):
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
