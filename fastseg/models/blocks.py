"""Small building blocks shared by the EfficientPS parts: the depthwise-separable convolution with
batch norm and leaky ReLU that the paper uses everywhere (in place of its in-place activated
sync BN, so that nothing depends on the `inplace_abn` extension)."""
from functools import partial

import torch
from torch import nn

# EfficientPS's activation: leaky ReLU with slope 0.01 (the paper's iABN default).
LeakyReLU = partial(nn.LeakyReLU, 0.01, inplace=True)


class SeparableConvBNAct(nn.Sequential):
    """`depthwise` k x k conv (groups = in_channels, `dilation` as given, 'same' padding),
    `pointwise` 1x1 conv to `out_channels`, `norm` (BatchNorm2d), `act` (leaky ReLU 0.01); the
    convolutions have no bias (the norm has one)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation=1,
                 norm_layer=nn.BatchNorm2d, activation=LeakyReLU):
        dilation = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
        padding = tuple(d * (kernel_size - 1) // 2 for d in dilation)
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, padding=padding, dilation=dilation,
                                   groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.norm = norm_layer(out_channels)
        self.act = activation()


class ConvBNAct(nn.Sequential):
    """k x k conv (no bias), `norm`, `act`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, norm_layer=nn.BatchNorm2d,
                 activation=LeakyReLU):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = norm_layer(out_channels)
        self.act = activation()


class RoIBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d for heads over a data-dependent number of RoIs: in eval (running statistics) it
    applies the normalisation as written-out tensor arithmetic, because ATen's batch_norm checks
    for an empty input, which `torch.export` cannot decide for a data-dependent batch. Training,
    parameters and state dict are BatchNorm2d's."""

    def forward(self, x):
        if self.training or not self.track_running_stats:
            return super().forward(x)
        scale = torch.rsqrt(self.running_var + self.eps)
        if self.affine:
            scale = scale * self.weight
        out = (x - self.running_mean[:, None, None]) * scale[:, None, None]
        return out + self.bias[:, None, None] if self.affine else out
