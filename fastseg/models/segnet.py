"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017): the VGG-16-BN encoder (13 convs, 5
max poolings that keep their switches) and the mirrored decoder (unpool with the switches, then
conv-BN-ReLU; widths drop 512->256->128->64 at the ends of decoder stages 4, 3 and 2), closed by
a 3x3 classifier without BN. Pooling is Caffe's ceil mode, and every unpooling gets its encoder
stage's size back, so odd sizes work (360x480 pools to 23x30 and 12x15).

`compact_indices=True` (default) keeps 1-byte switches (`fastseg.nn.MaxPool2dCompact`): 8x less
switch memory than int64 indices.
"""
import torch
from torch import nn

from .. import nn as fnn
from ._checks import check_builder_args, check_image_batch
from .backbones import VGG16Features
from .heads import UnpoolDecoder

# Decoder widths, deepest stage first (each stage: its 3x3 conv-BN-ReLU layers).
SEGNET_DECODER = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64,))


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class SegNet(nn.Module):
    """`forward(x)` returns logits [N, C, H, W] for any input size. `features` keeps
    torchvision's VGG-16-BN names (see `fastseg.models.weights`)."""

    def __init__(self, *, num_classes: int = 21, in_channels: int = 3, compact_indices: bool = True, width: int = 64):
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        switches = "compact" if compact_indices else "int64"
        self.features = VGG16Features(in_channels, batch_norm=True, switches=switches, width=width)
        self.decoder = UnpoolDecoder(self.features.out_channels, SEGNET_DECODER, _conv3x3, switches, width)
        self.classifier = nn.Conv2d(self.decoder.out_channels, num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch("segnet", x, self.in_channels)
        stages = self.features(x)
        return self.classifier(self.decoder(stages[-1].pooled, stages))


def segnet(*, num_classes: int = 21, in_channels: int = 3, reference: bool = False,
           compact_indices: bool = True, width: int = 64) -> SegNet:
    """SegNet (VGG-16-BN encoder). `reference=True`: the plain-PyTorch twin (F.max_pool2d with
    int64 indices, F.max_unpool2d) on the same module tree. `width`: conv1_1's channels (the
    paper's 64; every other width scales with it)."""
    check_builder_args("segnet", num_classes, in_channels, reference, width)
    if not isinstance(compact_indices, bool):
        raise TypeError(f"fastseg.models.segnet: compact_indices must be a bool, got {type(compact_indices).__name__}")
    model = SegNet(num_classes=num_classes, in_channels=in_channels, compact_indices=compact_indices, width=width)
    return fnn.set_reference(model, reference)
