"""Feature Pyramid Network (Lin et al. 2017) with torchvision's parameter names
(`inner_blocks.<i>.0`, `layer_blocks.<i>.0`), plus `BackboneWithFPN` (`body` + `fpn`), so
torchvision's detection state dicts load; the legacy spelling without `.0` loads too.
"""
import re
from collections import OrderedDict
from typing import List

import torch
import torch.nn.functional as F
from torch import nn


def rename_legacy_keys(state_dict, prefix: str, pattern: str, replacement: str) -> None:
    """Rename, in place, the keys under `prefix` whose remainder matches `pattern`: how the
    modules here accept torchvision's older key spellings."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        new = re.sub(pattern, replacement, key[len(prefix):])
        if new != key[len(prefix):]:
            state_dict[prefix + new] = state_dict.pop(key)


def _add_upsampled_(lateral: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """`lateral + F.interpolate(top, size=lateral.shape[-2:], mode="nearest")`, torchvision's
    top-down sum, in place on the fresh lateral. At exactly twice the size (every level of a
    size-divisible image) the upsampled map is never built: a broadcast add over a
    [N, C, h, 2, w, 2] view of the lateral, whose source index is i // 2 as in ATen's nearest."""
    n, c, h, w = top.shape
    if lateral.shape[-2:] == (2 * h, 2 * w):
        lateral.unflatten(3, (w, 2)).unflatten(2, (h, 2)).add_(top[:, :, :, None, :, None])
        return lateral
    return lateral.add_(F.interpolate(top, size=lateral.shape[-2:], mode="nearest"))


class FeaturePyramidNetwork(nn.Module):
    """Top-down pathway: 1x1 laterals, nearest 2x upsampling, 3x3 outputs; an extra level
    `"pool"` (max-pool of the coarsest output with stride 2: P6 for the RPN) when
    `extra_pool=True`."""

    def __init__(self, in_channels_list: List[int], out_channels: int = 256, extra_pool: bool = True):
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(c, out_channels, 1)) for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1)) for _ in in_channels_list)
        self.extra_pool = extra_pool
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        rename_legacy_keys(state_dict, prefix, r"^(inner|layer)_blocks\.(\d+)\.(weight|bias)$", r"\1_blocks.\2.0.\3")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: "OrderedDict[str, torch.Tensor]") -> "OrderedDict[str, torch.Tensor]":
        names, feats = list(x.keys()), list(x.values())
        last = self.inner_blocks[-1](feats[-1])
        results = [self.layer_blocks[-1](last)]
        for i in range(len(feats) - 2, -1, -1):
            lateral = self.inner_blocks[i](feats[i])
            last = _add_upsampled_(lateral, last)
            results.insert(0, self.layer_blocks[i](last))
        if self.extra_pool:
            names.append("pool")
            results.append(F.max_pool2d(results[-1], 1, 2, 0))
        return OrderedDict(zip(names, results))


class BackboneWithFPN(nn.Module):
    """`body` (returning an OrderedDict of feature maps, with `out_channels`) followed by an FPN;
    `out_channels` is the FPN's width."""

    def __init__(self, body: nn.Module, out_channels: int = 256):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(list(body.out_channels), out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return self.fpn(self.body(x))
