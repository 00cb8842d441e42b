"""VGG-16 as the encoder of FCN, DeconvNet and SegNet (Simonyan & Zisserman 2015).

`features` is an nn.Sequential laid out exactly like torchvision's `vgg16(...).features` /
`vgg16_bn(...).features` (same indices, so `features.<i>.weight` keys match and torchvision's
`features` state dict loads with strict=True). The pooling layers hold no parameters, so each
network picks its own: Caffe-style ceil-mode pooling, with or without (compact) switches.
"""
from typing import List, NamedTuple, Optional

import torch
from torch import nn

from ... import nn as fnn
from .._checks import scaled

# Output channels per conv layer, "M" for a 2x2/s2 max pooling (torchvision's configuration "D").
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class PoolStage(NamedTuple):
    """One encoder stage's result: the pooled map, the pooling switches (None when the pool keeps
    none) and the size before pooling (what the decoder's unpooling needs back)."""
    pooled: torch.Tensor
    switches: Optional[torch.Tensor]
    size: List[int]


class VGG16Features(nn.Sequential):
    """torchvision's VGG-16 `features` layout (configuration "D", with BN after each conv when
    `batch_norm`), with 2x2/s2 ceil-mode pooling; `forward` returns one `PoolStage` per pooling
    layer (5). Held by the networks as `features`, so the keys are torchvision's."""

    def __init__(self, in_channels: int = 3, *, batch_norm: bool = False, first_padding: int = 1,
                 switches: Optional[str] = None, width: int = 64):
        """`first_padding` pads conv1_1 (FCN: 100); `width`: conv1's channels (64 in the paper; the
        others scale with it, for small test and CPU-training variants). `switches`: None (plain max pooling),
        "compact" (1-byte window offsets, `fastseg.nn.MaxPool2dCompact`) or "int64"
        (`nn.MaxPool2d(return_indices=True)`)."""
        if switches not in (None, "compact", "int64"):
            raise ValueError(f"fastseg.models: switches must be None, 'compact' or 'int64', got {switches!r}")
        layers: List[nn.Module] = []
        channels = in_channels
        for v in VGG16_LAYERS:
            if v == "M":
                layers.append(fnn.MaxPool2dCompact(2, 2, ceil_mode=True) if switches == "compact" else
                              nn.MaxPool2d(2, 2, ceil_mode=True, return_indices=switches == "int64"))
                continue
            v = scaled(v, width)
            layers.append(nn.Conv2d(channels, v, 3, padding=first_padding if not layers else 1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            channels = v
        super().__init__(*layers)
        self.switches = switches
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> List[PoolStage]:
        stages: List[PoolStage] = []
        for layer in self:
            if isinstance(layer, (nn.MaxPool2d, fnn.MaxPool2dCompact)):
                size = list(x.shape[-2:])
                if self.switches is None:
                    x, switches = layer(x), None
                else:
                    x, switches = layer(x)
                stages.append(PoolStage(x, switches, size))
            else:
                x = layer(x)
        return stages
