"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell, CVPR 2015), with the Caffe geometry of
the authors' models: conv1_1 padded by 100 so that any input size survives the 7x7 fc6, ceil-mode
pooling (floor mode lets the crops overrun for many sizes, 500x500 among them), fc6/fc7 as
convolutions, zero-initialised score layers and learned bilinear-initialised upsampling without
bias. Caffe's `Crop` layers are fused into `fastseg.nn.ConvTranspose2dCrop`, so only the kept
window of each upsampling is computed.

Crops (Caffe offsets): FCN-32s upscore k64/s32 crop 19; FCN-16s upscore2 k4/s2, score_pool4 crop
5, upscore16 k32/s16 crop 27; FCN-8s adds upscore_pool4 k4/s2, score_pool3 crop 9, upscore8
k16/s8 crop 31. These are the "staged" FCN-16s/8s (the "at-once" variant also scales pool4/pool3
by 0.01/0.0001; not done here).
"""
import torch
from torch import nn

from .. import nn as fnn
from ..ops import bilinear_upsample_weight
from ._checks import check_builder_args, check_image_batch, scaled
from .backbones import VGG16Features

# stride -> (kernel, crop of the final upsampling to the input size)
_FINAL_UPSCORE = {32: (64, 19), 16: (32, 27), 8: (16, 31)}


def _upscore(num_classes: int, stride: int, kernel: int, crop: int = 0) -> fnn.ConvTranspose2dCrop:
    layer = fnn.ConvTranspose2dCrop(num_classes, num_classes, kernel, stride, bias=False, crop=crop)
    with torch.no_grad():
        layer.weight.copy_(bilinear_upsample_weight(num_classes, stride))
    return layer


def _score(in_channels: int, num_classes: int) -> nn.Conv2d:
    layer = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class FCN(nn.Module):
    """FCN on VGG-16 with output stride 32, 16 or 8. `forward(x)` returns logits [N, C, H, W] for
    any input size. `features` keeps torchvision's VGG-16 names (see `fastseg.models.weights`)."""

    def __init__(self, output_stride: int = 8, *, num_classes: int = 21, in_channels: int = 3, dropout: float = 0.5,
                 width: int = 64):
        super().__init__()
        if output_stride not in _FINAL_UPSCORE:
            raise ValueError(f"fastseg.models.FCN: output_stride must be 32, 16 or 8, got {output_stride!r}")
        self.name = f"fcn{output_stride}s"
        self.output_stride, self.num_classes, self.in_channels = output_stride, num_classes, in_channels
        self.features = VGG16Features(in_channels, first_padding=100, width=width)
        fc = scaled(4096, width)
        self.fc6 = nn.Sequential(nn.Conv2d(self.features.out_channels, fc, 7), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.fc7 = nn.Sequential(nn.Conv2d(fc, fc, 1), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.score_fr = _score(fc, num_classes)
        if output_stride <= 16:
            self.upscore2 = _upscore(num_classes, 2, 4)
            self.score_pool4 = _score(scaled(512, width), num_classes)
        if output_stride == 8:
            self.upscore_pool4 = _upscore(num_classes, 2, 4)
            self.score_pool3 = _score(scaled(256, width), num_classes)
        kernel, crop = _FINAL_UPSCORE[output_stride]
        self.upscore_final = _upscore(num_classes, output_stride, kernel, crop)

    @staticmethod
    def _fuse(up: torch.Tensor, score: nn.Conv2d, skip: torch.Tensor, crop: int) -> torch.Tensor:
        # Caffe scores the whole skip map, then crops it to `up`; a 1x1 conv commutes with the
        # crop, so score only the window that is kept.
        h, w = up.shape[-2:]
        return up + score(skip[..., crop:crop + h, crop:crop + w])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(self.name, x, self.in_channels)
        size = x.shape[-2:]
        stages = self.features(x)
        score = self.score_fr(self.fc7(self.fc6(stages[4].pooled)))
        if self.output_stride <= 16:
            score = self._fuse(self.upscore2(score), self.score_pool4, stages[3].pooled, 5)
        if self.output_stride == 8:
            score = self._fuse(self.upscore_pool4(score), self.score_pool3, stages[2].pooled, 9)
        return self.upscore_final(score, crop_size=size)


def _build(output_stride, num_classes, in_channels, reference, dropout, width) -> FCN:
    net = f"fcn{output_stride}s"
    check_builder_args(net, num_classes, in_channels, reference, width)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
        raise ValueError(f"fastseg.models.{net}: dropout must be a probability in [0, 1], got {dropout!r}")
    model = FCN(output_stride, num_classes=num_classes, in_channels=in_channels, dropout=dropout, width=width)
    return fnn.set_reference(model, reference)


# `width`: conv1_1's channels (the paper's 64; the rest scale with it, fc6/fc7 = 64 * width).
def fcn32s(*, num_classes: int = 21, in_channels: int = 3, reference: bool = False, dropout: float = 0.5,
           width: int = 64) -> FCN:
    """FCN-32s: score_fr upsampled x32 in one step (k64/s32, crop 19)."""
    return _build(32, num_classes, in_channels, reference, dropout, width)


def fcn16s(*, num_classes: int = 21, in_channels: int = 3, reference: bool = False, dropout: float = 0.5,
           width: int = 64) -> FCN:
    """FCN-16s: score_fr x2 + score_pool4 (crop 5), upsampled x16 (k32/s16, crop 27)."""
    return _build(16, num_classes, in_channels, reference, dropout, width)


def fcn8s(*, num_classes: int = 21, in_channels: int = 3, reference: bool = False, dropout: float = 0.5,
          width: int = 64) -> FCN:
    """FCN-8s: FCN-16s' fuse x2 + score_pool3 (crop 9), upsampled x8 (k16/s8, crop 31)."""
    return _build(8, num_classes, in_channels, reference, dropout, width)
