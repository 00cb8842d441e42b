"""Helpers shared by the metrics: input checks and the cross-process sum."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16,
                   torch.uint32, torch.uint64)


def check_label_map(where: str, name: str, t: object) -> torch.Tensor:
    """`t` must be an integer (not bool) tensor; returns it. `where` prefixes the message."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a Tensor, got {type(t).__name__}")
    if t.dtype not in _INTEGER_DTYPES:
        raise ValueError(f"{where}: {name} must be an integer tensor, got {t.dtype}")
    return t


def check_pair(where: str, names: Sequence[str], a: torch.Tensor, b: torch.Tensor) -> None:
    """The two maps of one update must have the same shape and device."""
    if a.shape != b.shape:
        raise ValueError(f"{where}: {names[0]} and {names[1]} must have the same shape, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"{where}: {names[0]} and {names[1]} must be on the same device, "
                         f"got {a.device} and {b.device}")


def all_reduce_sum_(tensors: Sequence[torch.Tensor], group: Optional[object] = None) -> bool:
    """Sum each tensor in place over `group`; returns False (and does nothing) when
    torch.distributed is unavailable or not initialised. NCCL reduces only CUDA tensors, so CPU
    state makes a round trip through the current CUDA device under NCCL."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return False
    nccl = "nccl" in str(dist.get_backend(group)).lower()
    for t in tensors:
        work = t.to(torch.device("cuda", torch.cuda.current_device())) if nccl and not t.is_cuda else t
        dist.all_reduce(work, op=dist.ReduceOp.SUM, group=group)
        if work is not t:
            t.copy_(work)
    return True
