"""EfficientNet B0-B7 (Tan & Le 2019) as modified for EfficientPS (Mohan & Valada 2021): no
squeeze-and-excitation, and batch norm + LeakyReLU(0.01) in place of SiLU (the paper's in-place
activated batch norm, without the inplace_abn dependency).

`features` is laid out exactly like torchvision's `efficientnet_bX().features` (stem, 7 stages of
MBConv blocks, head; each block's `block` Sequential indexed as torchvision's), and the removed SE
layer keeps its index as an `nn.Identity`, so every parameter name is torchvision's and
`load_torchvision_state_dict` loads its state dicts (skipping only the SE and classifier keys).
Channels, depths and the stochastic depth schedule are torchvision's (`_make_divisible`, `ceil`,
a probability that grows linearly with the block's index).
"""
import math
import re
from collections import OrderedDict
from functools import partial
from typing import Callable, List, Mapping, Optional

import torch
from torch import nn

# (width_mult, depth_mult) per variant, torchvision's `efficientnet_bX`.
_VARIANTS = {
    "b0": (1.0, 1.0), "b1": (1.0, 1.1), "b2": (1.1, 1.2), "b3": (1.2, 1.4),
    "b4": (1.4, 1.8), "b5": (1.6, 2.2), "b6": (1.8, 2.6), "b7": (2.0, 3.1),
}
# B0's stages: (expand_ratio, kernel, stride, in_channels, out_channels, layers).
_STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
           (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
# The outputs of features[2], [3], [5] and [8]: strides 4, 8, 16, 32.
_OUT_INDICES = (2, 3, 5, 8)
_SE_KEY = re.compile(r"(features\.\d+\.\d+\.block\.\d+)\.fc[12]\.(weight|bias)")


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's rounding of scaled channels (from the TF reference): to the nearest multiple
    of `divisor`, never more than 10 % below `v`."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_norm_act(cin: int, cout: int, k: int, stride: int, groups: int, norm: Callable[[int], nn.Module],
                   activation: Optional[Callable[[], nn.Module]]) -> nn.Sequential:
    # torchvision's Conv2dNormActivation: bias-free conv (the norm has the shift), padding k // 2.
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), norm(cout)]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class StochasticDepth(nn.Module):
    """Drop path, torchvision's "row" mode: in training, each sample's residual branch is zeroed
    with probability `p` and the survivors are scaled by `1 / (1 - p)`; the identity otherwise."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode=row"


class MBConv(nn.Module):
    """Inverted residual block: [1x1 expand conv-bn-act (when expanded), kxk depthwise conv-bn-act,
    Identity (where EfficientNet has SE), 1x1 project conv-bn], plus the input when the shape keeps."""

    def __init__(self, expand_ratio: int, kernel: int, stride: int, cin: int, cout: int, sd_prob: float,
                 norm: Callable[[int], nn.Module], activation: Callable[[], nn.Module]):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        expanded = _make_divisible(cin * expand_ratio)
        layers: List[nn.Module] = []
        if expanded != cin:
            layers.append(_conv_norm_act(cin, expanded, 1, 1, 1, norm, activation))
        layers.append(_conv_norm_act(expanded, expanded, kernel, stride, expanded, norm, activation))
        layers.append(nn.Identity())  # SE removed (EfficientPS); the slot keeps torchvision's indices
        layers.append(_conv_norm_act(expanded, cout, 1, 1, 1, norm, None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(sd_prob)
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out)
            out += x  # in place on a fresh tensor: no extra activation-sized buffer
        return out


class EfficientNetBackbone(nn.Module):
    """EfficientPS's EfficientNet encoder. `forward(x)` returns an OrderedDict
    `{"0": stride 4, "1": stride 8, "2": stride 16, "3": stride 32}` (the outputs of `features[2]`,
    `[3]`, `[5]` and `[8]`), with `out_channels_list` channels (B0: 24, 40, 112, 1280; B5: 40, 64,
    176, 2048) and `strides` (4, 8, 16, 32). Any input size: every conv pads k // 2, so each
    stride-2 stage gives `ceil(size / 2)`.

    `norm_layer(channels)` defaults to torchvision's: `nn.BatchNorm2d` for b0-b4,
    `BatchNorm2d(eps=1e-3, momentum=0.01)` for b5-b7. `activation()` defaults to
    `nn.LeakyReLU(0.01, inplace=True)`. `stochastic_depth_prob` is the last block's drop-path
    probability (block i of n drops with `prob * i / n`); None gives torchvision's 0.2 (the same
    for every variant), 0 disables drop path.
    """

    strides = (4, 8, 16, 32)

    def __init__(self, variant: str = "b0", *, norm_layer: Optional[Callable[[int], nn.Module]] = None,
                 activation: Optional[Callable[[], nn.Module]] = None, stochastic_depth_prob: Optional[float] = None):
        super().__init__()
        if not isinstance(variant, str) or variant not in _VARIANTS:
            raise ValueError(f"fastseg.models.EfficientNetBackbone: variant must be one of {sorted(_VARIANTS)}, "
                             f"got {variant!r}")
        if stochastic_depth_prob is None:
            stochastic_depth_prob = 0.2
        if (not isinstance(stochastic_depth_prob, (int, float)) or isinstance(stochastic_depth_prob, bool)
                or not 0.0 <= stochastic_depth_prob <= 1.0):
            raise ValueError(f"fastseg.models.EfficientNetBackbone: stochastic_depth_prob must be a float in "
                             f"[0, 1], got {stochastic_depth_prob!r}")
        for name, v in (("norm_layer", norm_layer), ("activation", activation)):
            if v is not None and not callable(v):
                raise TypeError(f"fastseg.models.EfficientNetBackbone: {name} must be callable or None, "
                                f"got {type(v).__name__}")
        width, depth = _VARIANTS[variant]
        if norm_layer is None:
            big = variant in ("b5", "b6", "b7")
            norm_layer = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01) if big else nn.BatchNorm2d
        activation = activation or partial(nn.LeakyReLU, 0.01, inplace=True)
        self.variant = variant

        stages = [(e, k, s, _make_divisible(cin * width), _make_divisible(cout * width), math.ceil(n * depth))
                  for e, k, s, cin, cout, n in _STAGES]
        total_blocks = sum(st[-1] for st in stages)
        layers: List[nn.Module] = [_conv_norm_act(3, stages[0][3], 3, 2, 1, norm_layer, activation)]
        block_id = 0
        for e, k, s, cin, cout, n in stages:
            blocks = []
            for j in range(n):
                sd_prob = stochastic_depth_prob * float(block_id) / total_blocks
                blocks.append(MBConv(e, k, s if j == 0 else 1, cin if j == 0 else cout, cout, sd_prob,
                                     norm_layer, activation))
                block_id += 1
            layers.append(nn.Sequential(*blocks))
        last = stages[-1][4]
        layers.append(_conv_norm_act(last, 4 * last, 1, 1, 1, norm_layer, activation))
        self.features = nn.Sequential(*layers)
        self.out_channels_list = [stages[1][4], stages[2][4], stages[4][4], 4 * last]

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _OUT_INDICES:
                out[str(_OUT_INDICES.index(i))] = x
        return out

    def load_torchvision_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> List[str]:
        """Loads a torchvision `efficientnet_bX()` state dict (the same variant) with strict=True and
        returns the keys it skipped, sorted: exactly the SE layers' (`features.i.j.block.k.fc1/fc2.*`,
        removed in EfficientPS) and `classifier.*`. Raises ValueError naming the first of this
        backbone's keys that is missing or has another shape, or a key it does not know."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"fastseg.models.EfficientNetBackbone: state_dict must be a mapping of names to "
                            f"tensors, got {type(state_dict).__name__}")
        own = self.state_dict()
        se_slots = {name for name, m in self.named_modules() if isinstance(m, nn.Identity)}
        for k, v in own.items():
            if k not in state_dict:
                raise ValueError(f"fastseg.models.EfficientNetBackbone: state_dict has no {k!r} "
                                 f"(is it torchvision's efficientnet_{self.variant}?)")
            if tuple(state_dict[k].shape) != tuple(v.shape):
                raise ValueError(f"fastseg.models.EfficientNetBackbone: state_dict[{k!r}] has shape "
                                 f"{tuple(state_dict[k].shape)}, expected {tuple(v.shape)} "
                                 f"(is it torchvision's efficientnet_{self.variant}?)")
        skipped = []
        for k in state_dict:
            if k in own:
                continue
            se = _SE_KEY.fullmatch(k)
            if not (k.startswith("classifier.") or (se is not None and se.group(1) in se_slots)):
                raise ValueError(f"fastseg.models.EfficientNetBackbone: state_dict has {k!r}, which is neither "
                                 f"this backbone's nor an SE or classifier key")
            skipped.append(k)
        self.load_state_dict({k: state_dict[k] for k in own}, strict=True)
        return sorted(skipped)
