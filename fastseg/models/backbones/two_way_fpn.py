"""EfficientPS's 2-way FPN (Mohan & Valada, IJCV 2021, §3.2): two sets of 1x1 lateral
convolutions, a top-down path (coarse to fine, nearest upsampling) and a bottom-up path (fine to
coarse, nearest downsampling), each output level a 3x3 depthwise-separable convolution of the
sum of both paths. The paper's separable output convolution is used (the official code has a
plain 3x3 there)."""
from collections import OrderedDict
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import ConvBNAct, SeparableConvBNAct


class TwoWayFPN(nn.Module):
    """`forward(features)`: an OrderedDict of C levels (finest first, each half the size of the
    previous) -> an OrderedDict of the same keys, `out_channels` each."""

    def __init__(self, in_channels_list: Sequence[int], out_channels: int = 256, norm_layer=nn.BatchNorm2d):
        super().__init__()
        if len(in_channels_list) < 2:
            raise ValueError(f"fastseg.models.TwoWayFPN: in_channels_list needs at least 2 levels, "
                             f"got {list(in_channels_list)}")
        self.top_down_lateral = nn.ModuleList(ConvBNAct(c, out_channels, 1, norm_layer) for c in in_channels_list)
        self.bottom_up_lateral = nn.ModuleList(ConvBNAct(c, out_channels, 1, norm_layer) for c in in_channels_list)
        self.output = nn.ModuleList(SeparableConvBNAct(out_channels, out_channels, 3, norm_layer=norm_layer)
                                    for _ in in_channels_list)
        self.out_channels = out_channels

    def forward(self, features: "OrderedDict[str, torch.Tensor]") -> "OrderedDict[str, torch.Tensor]":
        names, xs = list(features.keys()), list(features.values())
        if len(xs) != len(self.output):
            raise ValueError(f"fastseg.models.TwoWayFPN: expected {len(self.output)} feature maps, got {len(xs)}")
        top_down: List[torch.Tensor] = [self.top_down_lateral[-1](xs[-1])]
        for i in range(len(xs) - 2, -1, -1):
            lateral = self.top_down_lateral[i](xs[i])
            top_down.insert(0, lateral + F.interpolate(top_down[0], size=lateral.shape[-2:], mode="nearest"))
        bottom_up: List[torch.Tensor] = [self.bottom_up_lateral[0](xs[0])]
        for i in range(1, len(xs)):
            lateral = self.bottom_up_lateral[i](xs[i])
            bottom_up.append(lateral + F.interpolate(bottom_up[-1], size=lateral.shape[-2:], mode="nearest"))
        return OrderedDict((n, conv(t + b)) for n, conv, t, b in zip(names, self.output, top_down, bottom_up))
