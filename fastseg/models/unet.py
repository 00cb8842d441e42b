"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015).

`padding="valid"` (default) is the paper's network: unpadded 3x3 convolutions, 64...1024
channels, 2x2 max pooling, 2x2 up-convolutions halving the channels, the centre crop of each skip
concatenated before the up-convolution's output (`fastseg.nn.UpConcat` writes both into one
buffer), a 1x1 classifier; 572x572 in, 388x388 out. Its valid inputs are 16k + 60 pixels per
side with k >= 8 (188, 204, ..., 572, ...), output side = input side - 184; other sizes raise.

`padding="same"`: padded 3x3 convolutions and ceil-mode pooling; each up-convolution's output is
cropped to its skip's size, so the output has the input's size for any input.
"""
import torch
from torch import nn

from .. import nn as fnn
from ._checks import check_builder_args, check_image_batch, scaled

WIDTHS = (64, 128, 256, 512, 1024)
VALID_MARGIN = 184  # pixels per side that the valid convolutions take off (572 -> 388)


def valid_input_sizes_near(size: int):
    """The valid-padding input sizes (16k + 60, k >= 8) closest to `size` (below, above)."""
    k = max(8, (size - 60) // 16)
    below = 16 * k + 60
    return (below if below <= size else None), (below if below > size else below + 16)


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by ReLU (and BN first when `batch_norm`)."""

    def __init__(self, cin: int, cout: int, padding: int, batch_norm: bool):
        layers = []
        for c in (cin, cout):
            layers.append(nn.Conv2d(c, cout, 3, padding=padding, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UNet(nn.Module):
    """`forward(x)` returns logits [N, C, H', W']: H' = H - 184 for "valid", H for "same"."""

    def __init__(self, *, num_classes: int = 21, in_channels: int = 3, padding: str = "valid",
                 batch_norm: bool = False, width: int = 64):
        super().__init__()
        if padding not in ("valid", "same"):
            raise ValueError(f"fastseg.models.unet: padding must be 'valid' or 'same', got {padding!r}")
        self.num_classes, self.in_channels, self.padding = num_classes, in_channels, padding
        pad = 1 if padding == "same" else 0
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=padding == "same")
        self.encoder = nn.ModuleList()
        cin = in_channels
        widths = [scaled(w, width) for w in WIDTHS]
        for w in widths:
            self.encoder.append(DoubleConv(cin, w, pad, batch_norm))
            cin = w
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for w, deeper in zip(reversed(widths[:-1]), reversed(widths[1:])):
            self.up.append(fnn.UpConcat(deeper, w))
            self.decoder.append(DoubleConv(2 * w, w, pad, batch_norm))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def _check_size(self, x: torch.Tensor) -> None:
        for side in x.shape[-2:]:
            if (side - 60) % 16 != 0 or side < 188:
                below, above = valid_input_sizes_near(side)
                nearest = f"{below} or {above}" if below is not None else f"{above}"
                raise ValueError(f"fastseg.models.unet: with padding='valid' every input side must be 16k + 60 "
                                 f"with k >= 8 (188, 204, ..., 572, ...); got {x.shape[-2]}x{x.shape[-1]}, the "
                                 f"nearest valid size for {side} is {nearest} (or use padding='same')")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch("unet", x, self.in_channels)
        if self.padding == "valid":
            self._check_size(x)
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.up, self.decoder):
            skip = skips.pop()
            crop = skip.shape[-2:] if self.padding == "same" else None
            x = block(up(x, skip, crop_size=crop))
        return self.classifier(x)


def unet(*, num_classes: int = 21, in_channels: int = 3, reference: bool = False, padding: str = "valid",
         batch_norm: bool = False, width: int = 64) -> UNet:
    """U-Net; `padding="valid"` (the paper's) or `"same"`; `batch_norm=True` adds BN after each
    convolution (not in the paper; it trains faster); `width`: the first stage's channels (the
    paper's 64; the others double per stage). `reference=True`: the plain-PyTorch twin
    (F.conv_transpose2d, slicing, torch.cat) on the same module tree."""
    check_builder_args("unet", num_classes, in_channels, reference, width)
    if not isinstance(batch_norm, bool):
        raise TypeError(f"fastseg.models.unet: batch_norm must be a bool, got {type(batch_norm).__name__}")
    model = UNet(num_classes=num_classes, in_channels=in_channels, padding=padding, batch_norm=batch_norm,
                 width=width)
    return fnn.set_reference(model, reference)
