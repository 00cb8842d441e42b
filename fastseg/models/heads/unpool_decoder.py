"""The mirrored unpooling decoder of SegNet and DeconvNet: per stage, max unpooling with the
encoder's switches (to the encoder's pre-pool size, so odd sizes work), then conv-BN-ReLU layers."""
from typing import Callable, List, Sequence

import torch
from torch import nn

from ... import nn as fnn
from .._checks import scaled
from ..backbones.vgg import PoolStage


def conv_bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class UnpoolDecoder(nn.Module):
    """`stages[i]` lists the paper's output widths of stage i's layers (scaled by `width` / 64),
    deepest stage first; `conv(cin, cout)` makes one 3x3 layer. `switches` as the encoder's
    ("compact" or "int64"). `forward(x, encoder)` unpools with the encoder's stages in reverse."""

    def __init__(self, in_channels: int, stages: Sequence[Sequence[int]], conv: Callable[[int, int], nn.Module],
                 switches: str, width: int = 64):
        super().__init__()
        unpool = fnn.MaxUnpool2dCompact if switches == "compact" else fnn.MaxUnpool2d
        self.unpool = nn.ModuleList()
        self.convs = nn.ModuleList()
        channels = in_channels
        for widths in stages:
            self.unpool.append(unpool(2, 2))
            layers = []
            for w in widths:
                w = scaled(w, width)
                layers.append(conv_bn_relu(conv(channels, w), w))
                channels = w
            self.convs.append(nn.Sequential(*layers))
        self.out_channels = channels

    def forward(self, x: torch.Tensor, encoder: List[PoolStage]) -> torch.Tensor:
        for i, (unpool, convs) in enumerate(zip(self.unpool, self.convs)):
            stage = encoder[len(encoder) - 1 - i]
            x = convs(unpool(x, stage.switches, stage.size))
        return x
