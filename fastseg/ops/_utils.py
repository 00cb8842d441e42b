"""Argument normalisation shared by every op family's Python wrapper."""
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch

IntPair = Union[int, Sequence[int]]


def pair(value: IntPair, op: str, name: str, *, minimum: int) -> Tuple[int, int]:
    """`value` as an (h, w) pair of ints >= minimum (numpy integers accepted): a TypeError naming
    the argument for anything but ints (str, float, bool), a ValueError for a wrong length or a
    value out of range."""
    # Fast path for what layers pass (an int or a pair of ints): the checks below cost ~2 us per
    # argument, which adds up on sub-millisecond layers.
    t = type(value)
    if t is int:
        if value >= minimum:
            return (value, value)
    elif (t is tuple or t is list) and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
            and value[0] >= minimum and value[1] >= minimum:
        return (value[0], value[1])
    if _is_int(value):
        value = (value, value)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"fastseg.{op}: {name} must be an int or a pair of ints, got {value!r}")
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"fastseg.{op}: {name} must be an int or a pair of ints, got {value!r} "
                        f"({type(value).__name__})") from None
    if len(items) != 2:
        raise ValueError(f"fastseg.{op}: {name} must be an int or a pair of ints, got {value!r}")
    if not all(_is_int(v) for v in items):
        raise TypeError(f"fastseg.{op}: {name} must be an int or a pair of ints, got {value!r}")
    items = tuple(v if isinstance(v, torch.SymInt) else int(v) for v in items)
    if any(v < minimum for v in items):
        raise ValueError(f"fastseg.{op}: {name} must be >= {minimum}, got {items}")
    if any(type(v) is int and v > INT64_MAX for v in items):
        raise ValueError(f"fastseg.{op}: {name} must be <= {INT64_MAX}, got {items}")
    return items


def _is_int(v) -> bool:
    """int, SymInt or a numpy integer; not bool (PyTorch's int arguments refuse neither bool nor
    numpy integers, but True as a size is a mistake)."""
    return (isinstance(v, (numbers.Integral, torch.SymInt)) and not isinstance(v, bool)
            and not _is_numpy_bool(v))


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """The layout our kernels give their outputs: channels-last in, channels-last out.

    The C++ side uses the same rule (`is_channels_last` in csrc/common/tensor_view.h) so that fake
    and real strides agree.
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


# ----------------------------------------------------------------------------- the argument contract
# Every op's wrapper checks its scalars with these before any kernel runs: a value of the wrong
# type is a TypeError, a value of the right type outside its range (NaN, inf, a too large
# sampling_ratio, ...) a ValueError, and both name the argument. What is accepted is what PyTorch
# and torchvision accept for the same kind of argument:
#   bool:  bool, numpy.bool_, a 0-dim bool tensor, the ints 0 and 1 (torchvision's ops take them);
#   int:   int, numpy integers (numbers.Integral), torch.SymInt, a one-element integer tensor;
#   float: int, float, numpy floating/integer scalars (numbers.Real), torch.SymFloat, a
#          one-element integer or floating tensor.
# bool is never an int or a float here (True as a sampling ratio or a threshold is a mistake),
# and nothing is coerced: "False", 2.7 or None are refused, not converted.

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _type_name(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"Tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__


def _is_numpy_bool(value) -> bool:
    t = type(value)
    return t.__module__ == "numpy" and t.__name__ in ("bool_", "bool")


def check_bool(value, op: str, name: str) -> bool:
    """`value` as a bool, or a TypeError naming the argument."""
    if type(value) is bool:
        return value
    if _is_numpy_bool(value):
        return bool(value)
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype == torch.bool:
        return bool(value.item())
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    raise TypeError(f"fastseg.{op}: {name} must be a bool, got {value!r} ({_type_name(value)})")


def check_int(value, op: str, name: str, *, minimum: Optional[int] = INT64_MIN,
              maximum: Optional[int] = INT64_MAX, why: str = ""):
    """`value` as an int in [minimum, maximum] (default: the int64 range the schemas take): a
    TypeError for a non-integer, a ValueError naming the argument for an integer out of range.
    SymInts (torch.export / torch.compile with dynamic shapes) pass unchecked."""
    if type(value) is int:
        v = value
    elif isinstance(value, torch.SymInt):
        return value
    elif isinstance(value, bool) or _is_numpy_bool(value):
        raise TypeError(f"fastseg.{op}: {name} must be an int, got the bool {value!r}")
    elif isinstance(value, numbers.Integral):
        v = int(value)
    elif (isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool
          and not value.is_floating_point() and not value.is_complex()):
        v = int(value.item())
    else:
        raise TypeError(f"fastseg.{op}: {name} must be an int, got {value!r} ({_type_name(value)})")
    if minimum is not None and v < minimum:
        raise ValueError(f"fastseg.{op}: {name} must be >= {minimum}{why}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"fastseg.{op}: {name} must be <= {maximum}{why}, got {v}")
    return v


def check_float(value, op: str, name: str, *, finite: bool = True, minimum: Optional[float] = None,
                maximum: Optional[float] = None, greater_than: Optional[float] = None):
    """`value` as a float: a TypeError for a non-number, a ValueError naming the argument for
    NaN, +-inf (unless finite=False; NaN is always refused) or a value outside [minimum, maximum]
    / not > greater_than. SymFloats pass unchecked."""
    t = type(value)
    if t is float:
        v = value
    elif t is int:
        v = value
    elif isinstance(value, torch.SymFloat):
        return value
    elif isinstance(value, bool) or _is_numpy_bool(value):
        raise TypeError(f"fastseg.{op}: {name} must be a float, got the bool {value!r}")
    elif isinstance(value, numbers.Real):
        v = value
    elif (isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool
          and not value.is_complex()):
        v = value.item()
    else:
        raise TypeError(f"fastseg.{op}: {name} must be a float, got {value!r} ({_type_name(value)})")
    try:
        v = float(v)
    except OverflowError:
        raise ValueError(f"fastseg.{op}: {name} must be finite, got {value!r}") from None
    if v != v:
        raise ValueError(f"fastseg.{op}: {name} must not be NaN")
    if finite and not math.isfinite(v):
        raise ValueError(f"fastseg.{op}: {name} must be finite, got {v}")
    if greater_than is not None and not v > greater_than:
        raise ValueError(f"fastseg.{op}: {name} must be > {greater_than}, got {v}")
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        raise ValueError(f"fastseg.{op}: {name} must be in [{lo}, {hi}], got {v}")
    return v


def check_numel(shape, op: str, name: str) -> None:
    """A ValueError naming `name` when a tensor of `shape` would have more than INT64_MAX
    elements (or bytes would not be addressable): sizes multiply in Python, where they cannot
    wrap, before a kernel multiplies them in int64."""
    n = 1
    for s in shape:
        if not type(s) is int:
            return  # symbolic: the kernel checks at run time
        n *= s
    if n > INT64_MAX // 8:
        raise ValueError(f"fastseg.{op}: {name} gives an output of shape {tuple(shape)}: {n} elements, "
                         f"more than an int64 byte count can address")


# ----------------------------------------------------------------------------- devices

def _tensors(named):
    for name, t in named:
        if t is None:
            continue
        if isinstance(t, (list, tuple)):
            for i, u in enumerate(t):
                if isinstance(u, torch.Tensor):
                    yield f"{name}[{i}]", u
        elif isinstance(t, torch.Tensor):
            yield name, t


def check_same_device(op: str, main_name: str, main: torch.Tensor, *named) -> None:
    """Every tensor of `named` ((name, tensor | None | list of tensors) pairs) must be on the
    device of `main`; checked in each wrapper BEFORE any kernel runs. (A CPU tensor mixed with a
    `meta` one would otherwise dispatch to the fake kernel and return uninitialised memory.)"""
    d = main.device
    for name, t in _tensors(named):
        if t.device != d:
            raise RuntimeError(f"fastseg.{op}: {name} is on {t.device} but {main_name} is on {d}")


def fake_same_device(op: str, main_name: str, main: torch.Tensor, *named) -> None:
    """The same rule inside a registered fake kernel (torch.compile, torch.export and direct
    torch.ops.fastseg.* calls reach it without the wrapper)."""
    d = main.device
    for name, t in _tensors(named):
        torch._check(t.device == d, lambda: f"fastseg.{op}: {name} is on {t.device} but {main_name} is on {d}")


# ----------------------------------------------------------------------------- memory overlap

def _dense(t: torch.Tensor) -> bool:
    try:
        from torch._prims_common import is_non_overlapping_and_dense_or_false
        return bool(is_non_overlapping_and_dense_or_false(t))
    except Exception:  # a torch without the helper: the two layouts our kernels produce
        return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


def overlap_status(a: torch.Tensor, b: torch.Tensor) -> str:
    """ATen's at::get_overlap_status (ATen/MemoryOverlap.cpp) in Python: "full" (same elements),
    "partial", "no" or "too_hard" (one of them is not dense: then it cannot tell, e.g. two
    channel slices of one concat buffer)."""
    if a is b:
        return "full"
    if a.numel() == 0 or b.numel() == 0 or a.device.type == "meta" or b.device.type == "meta":
        return "no"
    if not _dense(a) or not _dense(b):
        return "too_hard"
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return "no"
    a0, b0 = a.data_ptr(), b.data_ptr()
    a1, b1 = a0 + a.numel() * a.element_size(), b0 + b.numel() * b.element_size()
    if a0 == b0 and a1 == b1:
        return "full" if a.stride() == b.stride() else "partial"
    return "partial" if a0 < b1 and b0 < a1 else "no"


def check_no_overlap(op: str, out_name: str, out: torch.Tensor, *named) -> None:
    """The out= rule of conv_transpose2d_crop (csrc/ops/conv_transpose/conv_transpose_ops.h,
    check_out): an output must not share memory with an operand it reads; "full" or "partial"
    overlap raises (a RuntimeError, as ATen's assert_no_overlap does), "too_hard" is allowed as
    ATen allows it. Skipped while torch.compile traces (fake tensors have no memory)."""
    if torch.compiler.is_compiling():
        return
    for name, t in _tensors(named):
        if overlap_status(out, t) in ("full", "partial"):
            raise RuntimeError(f"fastseg.{op}: {out_name} must not share memory with {name}")


# ----------------------------------------------------------------------------- autocast
_AUTOCAST_KEYS = {"cpu": "AutocastCPU", "cuda": "AutocastCUDA"}
_ALL_AUTOCAST = torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU) | torch._C.DispatchKeySet(
    torch._C.DispatchKey.AutocastCUDA)
_autocast_lib = None


def _autocast_kernel(op, device_type: str, dtype: Optional[torch.dtype]):
    def kernel(*args):
        target = dtype or torch.get_autocast_dtype(device_type)

        def cast(a):
            if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != torch.float64:
                return a.to(target)
            return a

        with torch._C._ExcludeDispatchKeyGuard(_ALL_AUTOCAST):
            return op(*[cast(a) for a in args])

    return kernel


def register_autocast(names: Sequence[str], dtype: Optional[torch.dtype]) -> None:
    """Autocast kernels (CPU and CUDA) for `torch.ops.fastseg.<name>`: every floating operand
    (float64 aside, as ATen does) is cast to `dtype`, or with dtype=None to the autocast dtype in
    effect. None is the lower-precision policy of F.conv_transpose2d; float32 is torchvision's
    policy for nms (mixed float32 boxes and bfloat16 scores then work as there)."""
    global _autocast_lib
    if _autocast_lib is None:
        _autocast_lib = torch.library.Library("fastseg", "IMPL")
    for name in names:
        for device, key in _AUTOCAST_KEYS.items():
            _autocast_lib.impl(name, _autocast_kernel(getattr(torch.ops.fastseg, name).default, device, dtype), key)
