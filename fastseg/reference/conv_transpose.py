"""Plain-PyTorch reference of the transpose-convolution family, written from the definition
(every input pixel scatters `value * kernel` into the full output: einsum + F.fold's
scatter-add), independent of PyTorch's conv_transpose kernels and of fastseg's strategies."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..ops._utils import pair


def _full_size(hw, k, s, p, d):
    return tuple((hw[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1 for i in range(2))


def conv_transpose2d_crop(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                          stride=1, padding=0, dilation=1, groups: int = 1, crop=(0, 0),
                          output_size: Optional[Sequence[int]] = None) -> torch.Tensor:
    op = "reference.conv_transpose2d_crop"
    s, p, d = (pair(v, op, n, minimum=m) for v, n, m in ((stride, "stride", 1), (padding, "padding", 0),
                                                            (dilation, "dilation", 1)))
    top, left = pair(crop, op, "crop", minimum=0)
    x = input if input.dim() == 4 else input.unsqueeze(0)
    N, cin, H, W = x.shape
    _, cout_g, kh, kw = weight.shape
    cin_g = cin // groups
    full = _full_size((H, W), (kh, kw), s, p, d)
    oh, ow = (full[0] - top, full[1] - left) if output_size is None else tuple(output_size)[-2:]
    if top + oh > full[0] or left + ow > full[1]:
        raise ValueError(f"{op}: crop outside the full output {full}")
    # cols[n, (g, co, ky, kx), (iy, ix)] = sum_ci x[n, g, ci, iy, ix] * w[g, ci, co, ky, kx]
    cols = torch.einsum("ngihw,gioyx->ngoyxhw", x.reshape(N, groups, cin_g, H, W),
                        weight.reshape(groups, cin_g, cout_g, kh, kw))
    cols = cols.reshape(N, groups * cout_g * kh * kw, H * W)
    y = F.fold(cols, full, (kh, kw), dilation=d, padding=p, stride=s)
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    y = y[:, :, top:top + oh, left:left + ow]
    return y if input.dim() == 4 else y[0]


def conv_transpose2d_crop_cat(input, weight, bias, skip, stride=1, padding=0, dilation=1, groups=1, crop=(0, 0),
                              output_size=None, skip_crop=None) -> torch.Tensor:
    up = conv_transpose2d_crop(input, weight, bias, stride, padding, dilation, groups, crop, output_size)
    oh, ow = up.shape[-2:]
    if skip_crop is None:
        skip_crop = ((skip.shape[-2] - oh) // 2, (skip.shape[-1] - ow) // 2)
    t, l = skip_crop
    return torch.cat([skip[..., t:t + oh, l:l + ow], up], dim=-3)
