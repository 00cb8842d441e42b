"""Reference unpooling ops in plain PyTorch (slow, obviously correct)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..ops._utils import pair
from ..ops.unpool import unpool_output_size


def _geometry(kernel_size, stride, padding):
    k = pair(kernel_size, "reference", "kernel_size", minimum=1)
    s = k if stride is None else pair(stride, "reference", "stride", minimum=1)
    return k, s, pair(padding, "reference", "padding", minimum=0)


def max_unpool2d(input: torch.Tensor, indices: torch.Tensor, kernel_size, stride=None, padding=0,
                 output_size: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Zeros everywhere except out.view(-1)[indices[i]] = input[i]; for duplicate indices the
    larger input position wins (computed with a scatter_reduce amax over positions)."""
    k, s, p = _geometry(kernel_size, stride, padding)
    H, W = unpool_output_size(input.shape[-2:], k, s, p, output_size)
    lead = input.shape[:-2]
    x = input.reshape(-1, input.shape[-2] * input.shape[-1])
    idx = indices.reshape(x.shape)
    if idx.numel() and (idx.min() < 0 or idx.max() >= H * W):
        raise RuntimeError("reference.max_unpool2d: index out of range")
    pos = torch.arange(x.shape[1], device=x.device).expand_as(idx)
    winner = torch.full((x.shape[0], H * W), -1, dtype=torch.int64, device=x.device)
    winner.scatter_reduce_(1, idx, pos, reduce="amax", include_self=True)
    out = torch.where(winner >= 0, x.gather(1, winner.clamp(min=0)), torch.zeros((), dtype=x.dtype, device=x.device))
    return out.reshape(*lead, H, W)


def max_pool2d_compact(input: torch.Tensor, kernel_size, stride=None, padding=0, ceil_mode=False):
    """`F.max_pool2d` indices converted to uint8 offsets inside each window."""
    k, s, p = _geometry(kernel_size, stride, padding)
    values, idx = F.max_pool2d(input, k, s, p, 1, ceil_mode, return_indices=True)
    W = input.shape[-1]
    oh = torch.arange(values.shape[-2], device=input.device).view(-1, 1)
    ow = torch.arange(values.shape[-1], device=input.device).view(1, -1)
    dy = idx // W - (oh * s[0] - p[0])
    dx = idx % W - (ow * s[1] - p[1])
    return values, (dy * k[1] + dx).to(torch.uint8)


def compact_to_indices(offsets: torch.Tensor, kernel_size, stride, padding, output_width: int) -> torch.Tensor:
    """uint8 window offsets -> flat int64 indices into an output plane of width `output_width`."""
    k, s, p = _geometry(kernel_size, stride, padding)
    off = offsets.to(torch.int64)
    oh = torch.arange(offsets.shape[-2], device=offsets.device).view(-1, 1)
    ow = torch.arange(offsets.shape[-1], device=offsets.device).view(1, -1)
    y = oh * s[0] - p[0] + off // k[1]
    x = ow * s[1] - p[1] + off % k[1]
    return y * output_width + x


def max_unpool2d_compact(values, offsets, kernel_size, stride=None, padding=0, output_size=None):
    k, s, p = _geometry(kernel_size, stride, padding)
    H, W = unpool_output_size(values.shape[-2:], k, s, p, output_size)
    return max_unpool2d(values, compact_to_indices(offsets, k, s, p, W), k, s, p, (H, W))


def unpool_nearest2d(input: torch.Tensor, scale_factor) -> torch.Tensor:
    sh, sw = pair(scale_factor, "reference", "scale_factor", minimum=1)
    return input.repeat_interleave(sh, dim=-2).repeat_interleave(sw, dim=-1)


def unpool_bed_of_nails2d(input: torch.Tensor, scale_factor) -> torch.Tensor:
    sh, sw = pair(scale_factor, "reference", "scale_factor", minimum=1)
    out = input.new_zeros(*input.shape[:-2], input.shape[-2] * sh, input.shape[-1] * sw)
    out[..., ::sh, ::sw] = input
    return out
