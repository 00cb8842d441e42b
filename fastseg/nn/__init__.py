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
