"""Plain-PyTorch RoIAlign (no torchvision): torchvision's semantics written with tensor ops, one
roi at a time (vectorised over bins, samples and channels). In float64 for float64 input, else
float32. For tests and documentation."""
import math

import torch

from ..ops._utils import pair


def _axis(v: torch.Tensor, size: int):
    """Bilinear rows/columns and weights of sample positions v along an axis of `size`."""
    valid = (v >= -1) & (v <= size)
    v = v.clamp(min=0)
    lo = v.floor().long()
    at_end = lo >= size - 1
    lo = torch.where(at_end, torch.full_like(lo, size - 1), lo)
    hi = torch.where(at_end, lo, lo + 1)
    v = torch.where(at_end, lo.to(v.dtype), v)
    l = v - lo.to(v.dtype)
    return lo, hi, (1 - l) * valid, l * valid


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    from ..ops.roi_align import boxes_to_rois
    rois = boxes_to_rois(boxes)
    ph, pw = pair(output_size, "reference.roi_align", "output_size", minimum=1)
    dt = torch.float64 if input.dtype == torch.float64 else torch.float32
    x = input.to(dt)
    r = rois.to(dt)
    K, (C, H, W) = r.shape[0], x.shape[1:]
    out = x.new_zeros(K, C, ph, pw)
    off = 0.5 if aligned else 0.0
    for k in range(K):
        b = int(r[k, 0])
        x1, y1, x2, y2 = (r[k, 1:] * spatial_scale - off).tolist()
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / ph, rw / pw
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / ph)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / pw)
        if gh * gw == 0:
            continue
        ys = y1 + torch.arange(ph, dtype=dt)[:, None] * bh + (torch.arange(gh, dtype=dt)[None, :] + 0.5) * bh / gh
        xs = x1 + torch.arange(pw, dtype=dt)[:, None] * bw + (torch.arange(gw, dtype=dt)[None, :] + 0.5) * bw / gw
        ylo, yhi, wyl, wyh = _axis(ys.to(input.device), H)
        xlo, xhi, wxl, wxh = _axis(xs.to(input.device), W)
        plane = x[b]  # [C, H, W]
        total = 0
        for yi, wy in ((ylo, wyl), (yhi, wyh)):
            for xi, wx in ((xlo, wxl), (xhi, wxh)):
                v = plane[:, yi[:, :, None, None], xi[None, None, :, :]]  # [C, ph, gh, pw, gw]
                total = total + v * (wy[:, :, None, None] * wx[None, None, :, :])
        out[k] = total.sum(dim=(2, 4)) / max(gh * gw, 1)
    return out.to(input.dtype)


def multi_scale_roi_align(features, boxes, image_shapes, output_size, sampling_ratio, canonical_scale=224,
                          canonical_level=4, eps=1e-6):
    """torchvision's MultiScaleRoIAlign: each box through roi_align on the level its size maps to."""
    from ..ops.roi_align import boxes_to_rois, infer_scales, map_levels  # pure PyTorch helpers
    features = list(features)
    rois = boxes_to_rois(boxes)
    scales = infer_scales(features, image_shapes)
    if len(features) == 1:
        return roi_align(features[0], rois, output_size, scales[0], sampling_ratio)
    levels = map_levels(boxes, int(-math.log2(scales[0])), int(-math.log2(scales[-1])), canonical_scale,
                        canonical_level, eps)
    ph, pw = pair(output_size, "reference.multi_scale_roi_align", "output_size", minimum=1)
    out = features[0].new_zeros(rois.shape[0], features[0].shape[1], ph, pw)
    for k in range(rois.shape[0]):
        l = int(levels[k])
        out[k:k + 1] = roi_align(features[l], rois[k:k + 1], (ph, pw), scales[l], sampling_ratio)
    return out
