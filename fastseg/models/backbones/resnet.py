"""ResNet (He et al. 2016) with torchvision's parameter names (`conv1`, `bn1`, `layer1..4`), so
torchvision's ResNet and detection state dicts load into it. No `avgpool`/`fc`: detection and
segmentation use the feature maps.

`FrozenBatchNorm2d` is batch norm with fixed statistics and affine parameters (buffers, not
parameters), as detection models train with pretrained backbones at small batch sizes.

Speed on the CPU (where the convolutions are ~85 % of Mask R-CNN's time). By default the
arithmetic is torchvision's, operation for operation (equal outputs), with the frozen batch norm
and the residual add in place on fresh buffers (no activation-sized allocations). Opt-in, about
1.4x more on a 2-core CPU, with float rounding differences (~1e-6 relative): `fold_bn=True` folds
a frozen (or eval-mode) batch norm into the convolution before it (`conv_bn`: scaled weights and a
bias, recomputed on every call, so training and weight loading need nothing special), removing
two passes over every activation; `channels_last=True` runs the network in oneDNN's native
layout, without a reorder of the activations per convolution.
"""
from collections import OrderedDict
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """`y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`, all four buffers.
    Loads BatchNorm2d state dicts too (their `num_batches_tracked` is dropped)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The same arithmetic as torchvision's FrozenBatchNorm2d (scale and shift folded first).
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


NormLayer = Callable[[int], nn.Module]


def conv_bn(conv: nn.Conv2d, bn: nn.Module, x: torch.Tensor, fold: bool = True) -> torch.Tensor:
    """`bn(conv(x))`; with `fold`, a FrozenBatchNorm2d or an eval-mode BatchNorm2d is folded into
    the convolution's weights and bias (gradients still reach the convolution's parameters)."""
    frozen = isinstance(bn, FrozenBatchNorm2d)
    if frozen and not fold:
        # torchvision's arithmetic (x * scale + shift), in place on the fresh convolution output:
        # the same rounding without two activation-sized allocations.
        scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
        shift = bn.bias - bn.running_mean * scale
        return conv(x).mul_(scale.reshape(1, -1, 1, 1)).add_(shift.reshape(1, -1, 1, 1))
    if not fold or not (frozen or (isinstance(bn, nn.BatchNorm2d) and not bn.training and bn.running_var is not None
                                   and bn.weight is not None)):
        return bn(conv(x))
    scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
    shift = bn.bias - bn.running_mean * scale
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return F.conv2d(x, conv.weight * scale.reshape(-1, 1, 1, 1), bias, conv.stride, conv.padding, conv.dilation,
                    conv.groups)


def _shortcut(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    d = block.downsample
    if d is None:
        return x
    if isinstance(d, nn.Sequential) and len(d) == 2 and isinstance(d[0], nn.Conv2d):
        return conv_bn(d[0], d[1], x, block.fold_bn)
    return d(x)


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, norm: NormLayer, downsample: Optional[nn.Module]):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, width, 3, stride), norm(width)
        self.conv2, self.bn2 = _conv(width, width, 3), norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.fold_bn = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = _shortcut(self, x)
        out = self.relu(conv_bn(self.conv1, self.bn1, x, self.fold_bn))
        out = conv_bn(self.conv2, self.bn2, out, self.fold_bn)
        out += identity  # in place: no extra activation-sized buffer per block
        return self.relu(out)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, norm: NormLayer, downsample: Optional[nn.Module]):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, width, 1), norm(width)
        self.conv2, self.bn2 = _conv(width, width, 3, stride), norm(width)
        self.conv3, self.bn3 = _conv(width, width * 4, 1), norm(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.fold_bn = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = _shortcut(self, x)
        out = self.relu(conv_bn(self.conv1, self.bn1, x, self.fold_bn))
        out = self.relu(conv_bn(self.conv2, self.bn2, out, self.fold_bn))
        out = conv_bn(self.conv3, self.bn3, out, self.fold_bn)
        out += identity  # in place: no extra activation-sized buffer per block
        return self.relu(out)


_DEPTHS: Dict[int, tuple] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """`forward(x)` returns an OrderedDict `{"0": C2, "1": C3, "2": C4, "3": C5}` (strides 4..32);
    `out_channels` lists their channels. `width` scales every stage (64 is the paper's)."""

    def __init__(self, depth: int = 50, *, norm_layer: Optional[NormLayer] = None, width: int = 64,
                 in_channels: int = 3, channels_last: bool = False, fold_bn: bool = False):
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"fastseg.models.ResNet: depth must be one of {sorted(_DEPTHS)}, got {depth!r}")
        block, counts = _DEPTHS[depth]
        norm = norm_layer or FrozenBatchNorm2d
        self.channels_last = channels_last
        self.fold_bn = fold_bn
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, self.out_channels = width, []
        for i, n in enumerate(counts):
            w, stride = width * 2 ** i, 1 if i == 0 else 2
            layers: List[nn.Module] = []
            for j in range(n):
                down = None
                if j == 0 and (stride != 1 or cin != w * block.expansion):
                    down = nn.Sequential(_conv(cin, w * block.expansion, 1, stride), norm(w * block.expansion))
                layers.append(block(cin, w, stride if j == 0 else 1, norm, down))
                cin = w * block.expansion
            for b in layers:
                b.fold_bn = fold_bn
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            self.out_channels.append(cin)

    def freeze(self, trainable_layers: int) -> "ResNet":
        """torchvision's `trainable_backbone_layers`: only the last `trainable_layers` of
        (conv1/bn1, layer1, ..., layer4) keep `requires_grad`."""
        if not isinstance(trainable_layers, int) or not 0 <= trainable_layers <= 5:
            raise ValueError(f"fastseg.models.ResNet: trainable_layers must be an int in [0, 5], "
                             f"got {trainable_layers!r}")
        trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
        if trainable_layers == 5:
            trainable.append("bn1")
        for name, p in self.named_parameters():
            if all(not name.startswith(t) for t in trainable):
                p.requires_grad_(False)
        return self

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.relu(conv_bn(self.conv1, self.bn1, x, self.fold_bn))
        if x.device.type == "cpu" and not x.is_contiguous(memory_format=torch.channels_last):
            # ATen's CPU max pooling is ~15x faster channels-last than NCHW (3 vs 58 ms for the
            # stem of an 800x1088 image on Zen 4): the round trip costs less than it saves, and
            # a maximum is exact in either layout.
            x = self.maxpool(x.contiguous(memory_format=torch.channels_last)).contiguous()
        else:
            x = self.maxpool(x)
        out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            out[str(i)] = x
        return out

