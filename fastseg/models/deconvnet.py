"""DeconvNet (Noh, Hong & Han, ICCV 2015): VGG-16 conv layers each followed by BN + ReLU, the
pooling switches kept, fc6 (7x7 valid conv, 4096) and fc7 (1x1, 4096) with BN + ReLU, fc6-deconv
(7x7 transposed conv back to 512 channels), then the mirrored deconvolution network: unpool5 and
three 3x3 deconvolutions of 512; unpool4, 512, 512, 256; unpool3, 256, 256, 128; unpool2, 128, 64;
unpool1, 64, 64; and a 1x1 score layer. Pooling is Caffe's ceil mode and every unpooling gets
its encoder stage's size back, so odd sizes work (e.g. 250x230). fc6 needs pool5 to be at least
7x7: inputs of at least 193 pixels per side.

The switches are 1-byte window offsets by default (`compact_indices=True`): the paper keeps them
for every pooling layer, and int64 indices would cost 8x the memory.
"""
import torch
from torch import nn

from .. import nn as fnn
from ._checks import check_builder_args, check_image_batch, scaled
from .backbones import VGG16Features
from .heads import UnpoolDecoder
from .heads.unpool_decoder import conv_bn_relu

DECONVNET_DECODER = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64, 64))
MIN_SIZE = 193  # ceil-mode pooling: 193 -> 97 -> 49 -> 25 -> 13 -> 7, fc6's kernel


def _deconv3x3(cin: int, cout: int) -> fnn.ConvTranspose2dCrop:
    return fnn.ConvTranspose2dCrop(cin, cout, 3, padding=1)


class DeconvNet(nn.Module):
    """`forward(x)` returns logits [N, C, H, W] for inputs of at least 193x193. `features` keeps
    torchvision's VGG-16-BN names (see `fastseg.models.weights`)."""

    def __init__(self, *, num_classes: int = 21, in_channels: int = 3, compact_indices: bool = True, width: int = 64):
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        switches = "compact" if compact_indices else "int64"
        self.features = VGG16Features(in_channels, batch_norm=True, switches=switches, width=width)
        c5, fc = self.features.out_channels, scaled(4096, width)
        self.fc6 = conv_bn_relu(nn.Conv2d(c5, fc, 7), fc)
        self.fc7 = conv_bn_relu(nn.Conv2d(fc, fc, 1), fc)
        self.fc6_deconv = conv_bn_relu(fnn.ConvTranspose2dCrop(fc, c5, 7), c5)
        self.decoder = UnpoolDecoder(c5, DECONVNET_DECODER, _deconv3x3, switches, width)
        self.score = nn.Conv2d(self.decoder.out_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch("deconvnet", x, self.in_channels)
        if x.shape[-2] < MIN_SIZE or x.shape[-1] < MIN_SIZE:
            raise ValueError(f"fastseg.models.deconvnet: input must be at least {MIN_SIZE}x{MIN_SIZE} (fc6 needs a "
                             f"7x7 pool5), got {x.shape[-2]}x{x.shape[-1]}")
        stages = self.features(x)
        y = self.fc6_deconv(self.fc7(self.fc6(stages[-1].pooled)))
        return self.score(self.decoder(y, stages))


def deconvnet(*, num_classes: int = 21, in_channels: int = 3, reference: bool = False,
              compact_indices: bool = True, width: int = 64) -> DeconvNet:
    """DeconvNet. `reference=True`: the plain-PyTorch twin (F.max_pool2d with int64 indices,
    F.max_unpool2d, F.conv_transpose2d) on the same module tree. `width`: conv1_1's channels
    (the paper's 64; every other width scales with it, fc6/fc7 = 64 * width)."""
    check_builder_args("deconvnet", num_classes, in_channels, reference, width)
    if not isinstance(compact_indices, bool):
        raise TypeError(f"fastseg.models.deconvnet: compact_indices must be a bool, got "
                        f"{type(compact_indices).__name__}")
    model = DeconvNet(num_classes=num_classes, in_channels=in_channels, compact_indices=compact_indices, width=width)
    return fnn.set_reference(model, reference)
