"""ResNet (He et al. 2016) with torchvision's parameter names (`conv1`, `bn1`, `layer1..4`), so
torchvision's ResNet and detection state dicts load into it. No `avgpool`/`fc`: detection and
segmentation use the feature maps.

`FrozenBatchNorm2d` is batch norm with fixed statistics and affine parameters (buffers, not
parameters), as detection models train with pretrained backbones at small batch sizes.
"""
from collections import OrderedDict
from typing import Callable, Dict, List, Optional

import torch
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


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
                 in_channels: int = 3):
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"fastseg.models.ResNet: depth must be one of {sorted(_DEPTHS)}, got {depth!r}")
        block, counts = _DEPTHS[depth]
        norm = norm_layer or FrozenBatchNorm2d
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
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            out[str(i)] = x
        return out

