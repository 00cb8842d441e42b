"""nn.Module layers with PyTorch-style constructor arguments."""
from .unpool import (  # noqa: F401
    MaxPool2dCompact,
    MaxUnpool2d,
    MaxUnpool2dCompact,
    UnpoolBedOfNails2d,
    UnpoolNearest2d,
)
from .conv_transpose import BilinearUpsample2d, ConvTranspose2dCrop, UpConcat  # noqa: F401
from .roi_align import MultiScaleRoIAlign, RoIAlign  # noqa: F401
from .nms import BatchedNMS  # noqa: F401
from .paste_masks import PasteMasks, PasteMasksInImage  # noqa: F401
from .panoptic import PanopticFusionEfficientPS  # noqa: F401

__all__ = ["MaxPool2dCompact", "MaxUnpool2d", "MaxUnpool2dCompact", "UnpoolBedOfNails2d", "UnpoolNearest2d",
           "BilinearUpsample2d", "ConvTranspose2dCrop", "UpConcat", "MultiScaleRoIAlign", "RoIAlign", "BatchedNMS", "PasteMasks", "PasteMasksInImage",
           "PanopticFusionEfficientPS", "set_reference"]

# The layers with a plain-PyTorch form (a `reference` attribute); subclasses included.
_SWITCHABLE = (MaxPool2dCompact, MaxUnpool2d, MaxUnpool2dCompact, UnpoolBedOfNails2d, UnpoolNearest2d,
               BilinearUpsample2d, ConvTranspose2dCrop, RoIAlign, MultiScaleRoIAlign, BatchedNMS, PasteMasks,
               PasteMasksInImage, PanopticFusionEfficientPS)


def set_reference(module, reference: bool = True):
    """Switch every fastseg layer in `module` (itself included) to its plain-PyTorch form
    (`reference=True`) or back to fastseg's ops. The module tree, parameters and state dict are
    unchanged, so a network and its plain-PyTorch twin cannot drift apart. Returns `module`."""
    if not isinstance(reference, bool):
        raise TypeError(f"fastseg.nn.set_reference: reference must be a bool, got {type(reference).__name__}")
    for m in module.modules():
        if isinstance(m, _SWITCHABLE):
            m.reference = reference
    return module
