"""Argument normalisation shared by every op family's Python wrapper."""
from typing import Sequence, Tuple, Union

import torch

IntPair = Union[int, Sequence[int]]


def pair(value: IntPair, op: str, name: str, *, minimum: int) -> Tuple[int, int]:
    """`value` as an (h, w) pair of ints >= minimum, or a ValueError naming the argument."""
    # Fast path for what layers pass (an int or a pair of ints): the checks below cost ~2 us per
    # argument, which adds up on sub-millisecond layers.
    t = type(value)
    if t is int:
        if value >= minimum:
            return (value, value)
    elif (t is tuple or t is list) and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
            and value[0] >= minimum and value[1] >= minimum:
        return (value[0], value[1])
    if isinstance(value, (int, torch.SymInt)) and not isinstance(value, bool):
        value = (value, value)
    try:
        items = tuple(value)
    except TypeError:
        items = None
    if items is None or len(items) != 2 or not all(
        isinstance(v, (int, torch.SymInt)) and not isinstance(v, bool) for v in items
    ):
        raise ValueError(f"fastseg.{op}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"fastseg.{op}: {name} must be >= {minimum}, got {items}")
    return items


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """The layout our kernels give their outputs: channels-last in, channels-last out.

    The C++ side uses the same rule (csrc/common/layout.h) so that fake and real strides agree.
    """
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def empty_4d(shape, like: torch.Tensor, layout_of: torch.Tensor = None, dtype=None) -> torch.Tensor:
    """Fake-kernel output: dtype/device of `like`, memory format chosen from `layout_of` (default
    `like`) by the same rule as the C++ kernels."""
    return torch.empty(shape, dtype=dtype or like.dtype, device=like.device,
                       memory_format=memory_format_of(like if layout_of is None else layout_of))


def as_batched(x: torch.Tensor, op: str, name: str) -> Tuple[torch.Tensor, bool]:
    """Accepts [C,H,W] (unbatched, as PyTorch's pooling layers do) or [N,C,H,W]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"fastseg.{op}: {name} must be a Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        return x.unsqueeze(0), True
    if x.dim() != 4:
        raise ValueError(f"fastseg.{op}: {name} must be 3-D [C,H,W] or 4-D [N,C,H,W], got shape {tuple(x.shape)}")
    return x, False


def no_double_backward(op: str):
    def _raise(ctx, *grads):
        raise RuntimeError(f"fastseg.{op}: double backward is not supported")

    return _raise
