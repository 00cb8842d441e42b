"""Input checks shared by the networks: a clear error naming the network and what it needs."""
import torch


def check_image_batch(net: str, x, in_channels: int) -> None:
    """`x` must be a floating-point [N, in_channels, H, W] tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"fastseg.models.{net}: input must be a Tensor [N, {in_channels}, H, W], "
                        f"got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"fastseg.models.{net}: input must be 4-D [N, {in_channels}, H, W], got shape "
                         f"{tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"fastseg.models.{net}: input must be a floating-point tensor, got {x.dtype}")
    if x.shape[1] != in_channels:
        raise ValueError(f"fastseg.models.{net}: input must have {in_channels} channels ([N, {in_channels}, H, W]), "
                         f"got shape {tuple(x.shape)}")


def scaled(channels: int, width: int) -> int:
    """A paper width (for a first stage of 64 channels) scaled to a first stage of `width`."""
    return max(1, channels * width // 64)


def check_builder_args(net: str, num_classes, in_channels, reference, width=64) -> None:
    for name, v in (("num_classes", num_classes), ("in_channels", in_channels), ("width", width)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"fastseg.models.{net}: {name} must be an int >= 1, got {v!r}")
    if not isinstance(reference, bool):
        raise TypeError(f"fastseg.models.{net}: reference must be a bool, got {type(reference).__name__}")
