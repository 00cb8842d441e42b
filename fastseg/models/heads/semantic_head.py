"""EfficientPS's semantic head (Mohan & Valada, IJCV 2021, §3.3): dense prediction cells (DPC) on
the stride-32 and stride-16 levels for large-scale context, large-scale feature extractors (LSFE)
on the stride-8 and stride-4 levels, mismatch correction modules (MC) carrying the coarse
features down to the finer scales, and a stride-4 concatenation (4 x 128 channels) classified by
a 1x1 convolution and upsampled x4 (bilinear)."""
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import ConvBNAct, SeparableConvBNAct

# DPC's five branches (Chen et al. 2018, the paper's cell): (dilation, input branch).
DPC_BRANCHES = (((1, 6), None), ((1, 1), 0), ((6, 21), 0), ((18, 15), 0), ((6, 3), 3))


def _up(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DPC(nn.Module):
    """Five 3x3 separable convolutions with the dilations of `DPC_BRANCHES` (the first fed by the
    input, the fifth by the fourth, the others by the first), concatenated and reduced by a 1x1
    convolution to `out_channels`."""

    def __init__(self, in_channels: int = 256, out_channels: int = 128, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.branches = nn.ModuleList(SeparableConvBNAct(in_channels, in_channels, 3, d, norm_layer)
                                      for d, _ in DPC_BRANCHES)
        self.project = ConvBNAct(in_channels * len(DPC_BRANCHES), out_channels, 1, norm_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for conv, (_, source) in zip(self.branches, DPC_BRANCHES):
            outs.append(conv(x if source is None else outs[source]))
        return self.project(torch.cat(outs, 1))


class LSFE(nn.Sequential):
    """Two 3x3 separable convolutions to `out_channels`."""

    def __init__(self, in_channels: int = 256, out_channels: int = 128, norm_layer=nn.BatchNorm2d):
        super().__init__(SeparableConvBNAct(in_channels, out_channels, 3, norm_layer=norm_layer),
                         SeparableConvBNAct(out_channels, out_channels, 3, norm_layer=norm_layer))


class MC(nn.Module):
    """Mismatch correction: two 3x3 separable convolutions, then bilinear upsampling to `size`
    (twice the input's on the padded inputs the model makes)."""

    def __init__(self, channels: int = 128, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.convs = nn.Sequential(SeparableConvBNAct(channels, channels, 3, norm_layer=norm_layer),
                                   SeparableConvBNAct(channels, channels, 3, norm_layer=norm_layer))

    def forward(self, x: torch.Tensor, size) -> torch.Tensor:
        return _up(self.convs(x), size)


class SemanticHead(nn.Module):
    """`forward(features, size)`: features an OrderedDict of the 2-way FPN's four levels (strides
    4, 8, 16, 32, in that order) -> [N, num_classes, *size] logits."""

    def __init__(self, num_classes: int, in_channels: int = 256, channels: int = 128, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.dpc_32 = DPC(in_channels, channels, norm_layer)
        self.dpc_16 = DPC(in_channels, channels, norm_layer)
        self.lsfe_8 = LSFE(in_channels, channels, norm_layer)
        self.lsfe_4 = LSFE(in_channels, channels, norm_layer)
        self.mc_16 = MC(channels, norm_layer)
        self.mc_8 = MC(channels, norm_layer)
        self.classifier = nn.Conv2d(4 * channels, num_classes, 1)

    def forward(self, features: "OrderedDict[str, torch.Tensor]", size: Sequence[int]) -> torch.Tensor:
        p4, p8, p16, p32 = list(features.values())[:4]
        x32 = self.dpc_32(p32)
        x16 = self.dpc_16(p16) + _up(x32, p16.shape[-2:])
        x8 = self.lsfe_8(p8) + self.mc_16(x16, p8.shape[-2:])
        x4 = self.lsfe_4(p4) + self.mc_8(x8, p4.shape[-2:])
        s4 = x4.shape[-2:]
        fused = torch.cat([_up(x32, s4), _up(x16, s4), _up(x8, s4), x4], 1)
        return _up(self.classifier(fused), size)
