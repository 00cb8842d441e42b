"""Backbones: feature extractors that keep torchvision's parameter names."""
from .vgg import PoolStage, VGG16Features  # noqa: F401
from .efficientnet import EfficientNetBackbone  # noqa: F401
