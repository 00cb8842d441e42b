"""The networks: builders only, plus `get_model(name, **kwargs)` and `list_models()`.

Every builder is keyword-only, `(*, num_classes, reference=False, ...)`; the semantic networks
also take `in_channels=3`;
`reference=True` builds the same network (same modules, same state dict) whose fastseg layers run
their plain-PyTorch form: the twin the tests and benchmarks compare against.
"""
from typing import Callable, Dict, List

from torch import nn

from . import weights  # noqa: F401
from .deconvnet import DeconvNet, deconvnet
from .efficientps import EfficientPS, efficientps
from .fcn import FCN, fcn8s, fcn16s, fcn32s
from .mask_rcnn import MaskRCNN, maskrcnn_resnet50_fpn, maskrcnn_resnet_fpn
from .segnet import SegNet, segnet
from .unet import UNet, unet

_BUILDERS: Dict[str, Callable[..., nn.Module]] = {
    "fcn32s": fcn32s,
    "fcn16s": fcn16s,
    "fcn8s": fcn8s,
    "deconvnet": deconvnet,
    "segnet": segnet,
    "unet": unet,
    "maskrcnn": maskrcnn_resnet_fpn,
    "maskrcnn_resnet50_fpn": maskrcnn_resnet50_fpn,
    "efficientps": efficientps,
}

__all__ = ["FCN", "DeconvNet", "SegNet", "UNet", "MaskRCNN", "EfficientPS", "get_model", "list_models", "weights", *_BUILDERS]


def list_models() -> List[str]:
    """Names `get_model` accepts."""
    return sorted(_BUILDERS)


def get_model(name: str, **kwargs) -> nn.Module:
    """`get_model("segnet", num_classes=12)` == `segnet(num_classes=12)`."""
    if name not in _BUILDERS:
        raise ValueError(f"fastseg.models.get_model: unknown model {name!r}; available: {', '.join(list_models())}")
    return _BUILDERS[name](**kwargs)
