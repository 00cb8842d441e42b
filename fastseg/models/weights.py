"""torchvision state dicts -> fastseg networks, one explicit function per mapping. Nothing
downloads: pass a state dict (or a path to one) that you already have, e.g.
`torchvision.models.vgg16(weights="IMAGENET1K_V1").state_dict()`.

The VGG part of FCN, DeconvNet and SegNet keeps torchvision's names (`features.<i>.*`), so those
keys pass through unchanged; what differs is written out here: VGG's fully connected fc6/fc7
become FCN's and DeconvNet's 7x7 and 1x1 convolutions (the same numbers, reshaped).
"""
import os
from collections import OrderedDict
from typing import Dict, List, Union

import torch
from torch import nn

StateDict = Dict[str, torch.Tensor]
Source = Union[StateDict, str, "os.PathLike[str]"]


def _state_dict(source: Source, fn: str) -> StateDict:
    if isinstance(source, (str, os.PathLike)):
        source = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(source, dict):
        raise TypeError(f"fastseg.models.weights.{fn}: expected a state dict or a path to one, got "
                        f"{type(source).__name__}")
    return source


def _take(sd: StateDict, key: str, fn: str, shape=None) -> torch.Tensor:
    if key not in sd:
        raise KeyError(f"fastseg.models.weights.{fn}: the state dict has no {key!r} (is it torchvision's VGG-16?)")
    t = sd[key]
    if shape is not None:
        if t.numel() != torch.Size(shape).numel():
            raise ValueError(f"fastseg.models.weights.{fn}: {key} has shape {tuple(t.shape)}, expected "
                             f"{torch.Size(shape).numel()} elements to reshape to {tuple(shape)}")
        t = t.reshape(shape)
    return t


def _features(sd: StateDict) -> StateDict:
    return OrderedDict((k, v) for k, v in sd.items() if k.startswith("features."))


def _fc_as_conv(sd: StateDict, fn: str) -> StateDict:
    """classifier.0 (25088 -> 4096) as a 7x7 conv over 512 channels, classifier.3 as a 1x1 conv."""
    return OrderedDict([
        ("fc6.0.weight", _take(sd, "classifier.0.weight", fn, (4096, 512, 7, 7))),
        ("fc6.0.bias", _take(sd, "classifier.0.bias", fn)),
        ("fc7.0.weight", _take(sd, "classifier.3.weight", fn, (4096, 4096, 1, 1))),
        ("fc7.0.bias", _take(sd, "classifier.3.bias", fn)),
    ])


def vgg16_to_fcn(source: Source) -> StateDict:
    """torchvision `vgg16` -> FCN-32s/16s/8s: `features.*` as they are, fc6/fc7 reshaped from the
    classifier's Linear layers. The score and upsampling layers are not in VGG (see `load_into`)."""
    sd = _state_dict(source, "vgg16_to_fcn")
    out = _features(sd)
    out.update(_fc_as_conv(sd, "vgg16_to_fcn"))
    return out


def vgg16_bn_to_deconvnet(source: Source) -> StateDict:
    """torchvision `vgg16_bn` -> DeconvNet: the conv+BN `features.*`, and fc6/fc7's convolutions
    from the classifier (DeconvNet's fc6/fc7 BN layers are not in VGG and keep their init)."""
    sd = _state_dict(source, "vgg16_bn_to_deconvnet")
    out = _features(sd)
    out.update(_fc_as_conv(sd, "vgg16_bn_to_deconvnet"))
    return out


def vgg16_bn_to_segnet(source: Source) -> StateDict:
    """torchvision `vgg16_bn` -> SegNet's encoder (`features.*`; SegNet has no fc layers)."""
    return _features(_state_dict(source, "vgg16_bn_to_segnet"))


def load_into(model: nn.Module, state_dict: StateDict) -> List[str]:
    """Load a mapped (partial) state dict into `model`: every key must exist in the model with the
    same shape (else an error names it). Returns the model's keys the state dict did not fill
    (the layers that keep their initialisation, e.g. FCN's score layers)."""
    own = model.state_dict()
    for k, v in state_dict.items():
        if k not in own:
            raise KeyError(f"fastseg.models.weights.load_into: {type(model).__name__} has no parameter {k!r}")
        if own[k].shape != v.shape:
            raise ValueError(f"fastseg.models.weights.load_into: {k} is {tuple(own[k].shape)} in "
                             f"{type(model).__name__}, got {tuple(v.shape)}")
    result = model.load_state_dict(state_dict, strict=False)
    return list(result.missing_keys)
