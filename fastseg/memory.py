"""A caching pool for large CPU tensors (csrc/common/cpu_pool.cpp).

On Linux every CPU allocation above glibc's mmap threshold (at most 32 MiB) gets fresh pages, and
each first touch is a page fault: an 800x1088 Mask R-CNN forward allocates ~1 GB of such feature
maps, and its ~220k faults take ~400 ms of ~2.7 s on a 2-core VM. Inside ``cpu_pool()`` the
allocations of 1 MiB or more made by the calling thread come from blocks freed earlier (already
faulted in), as CUDA's caching allocator does for device memory::

    with fastseg.memory.cpu_pool():
        out = model(images)

Mask R-CNN's eval forward on CPU uses it on its own (``cpu_pool=False`` on the model turns that
off). Freed blocks merge and are kept for the next call (about one call's peak; wholly free
memory beyond twice the peak use is given back); ``empty_cpu_pool()`` gives back all that is
free, ``cpu_pool_stats()`` reports it. ``FASTSEG_CPU_POOL=0`` turns the pool off everywhere. For
eager code: inside a function compiled by ``torch.compile`` the context manager is not supported.
Without the compiled extension it does nothing.
"""
import contextlib
from typing import Dict, Iterator, Sequence

import torch

from . import _loader

__all__ = ["cpu_pool", "empty_cpu_pool", "cpu_pool_stats"]


def _ns():
    return torch.ops.fastseg_memory if _loader.HAS_OPS else None


@contextlib.contextmanager
def cpu_pool(enabled: bool = True) -> Iterator[None]:
    """Large CPU allocations of this thread inside the block come from the pool (``enabled=False``:
    a block inside which they do not). Nests; restores the previous setting on exit."""
    ns = _ns()
    if ns is None:
        yield
        return
    previous = ns.set_cpu_pool(bool(enabled))
    try:
        yield
    finally:
        ns.set_cpu_pool(previous)


def empty_cpu_pool() -> None:
    """Frees the pool's unused blocks (blocks still held by tensors return when those are freed)."""
    ns = _ns()
    if ns is not None:
        ns.empty_cpu_pool()


def cpu_pool_stats() -> Dict[str, int]:
    """``reserved_bytes`` (taken from the system), ``free_bytes`` (kept for reuse), ``in_use_bytes``
    (held by live tensors), ``peak_in_use_bytes``, ``hits`` (allocations cut from kept memory) and
    ``misses`` (allocations that took new memory)."""
    keys = ("reserved_bytes", "free_bytes", "in_use_bytes", "peak_in_use_bytes", "hits", "misses")
    ns = _ns()
    return dict(zip(keys, ns.cpu_pool_stats() if ns is not None else [0] * len(keys)))


def pool_applies(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether a network's forward on these inputs runs eagerly on CPU (not traced by
    torch.compile, torch.export or FX, whose fake or proxy inputs must not reach the switch)."""
    if not _loader.HAS_OPS or torch.compiler.is_compiling() or torch.jit.is_scripting():
        return False
    return len(tensors) > 0 and all(type(t) is torch.Tensor and t.device.type == "cpu" for t in tensors)
