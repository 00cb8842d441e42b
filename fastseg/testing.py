"""Testing switches: force one kernel path of an op family (for tests and benchmarks).

Several ops have more than one kernel for the same result: transpose convolution's strategies,
NMS's greedy loop and the suppression bitmask CUDA runs, RoIAlign's backward bodies, and the CPU's
whole-row forms next to the per-element bodies the GPU runs, themselves compiled for several
instruction sets. The tests run every path and compare them; benchmarks time each. The switches
are dispatcher ops in their own namespace, ``torch.ops.fastseg_testing.*``, not part of the public
``torch.ops.fastseg`` API, and this module is their Python interface::

    import fastseg.testing

    with fastseg.testing.strategy(conv_transpose="gemm", cpu_row_kernels=False):
        y = fastseg.ops.conv_transpose2d_crop(...)

Settings and their choices (:data:`SETTINGS`; the first is the default, for ``cpu_isa`` unless
``FASTSEG_CPU_ISA`` is set)::

    conv_transpose      "auto"     by shape, and on the CPU by a one-time measurement where
                                   the phase GEMM and ATen both apply (see
                                   :func:`conv_transpose_choices`)
                        "direct"   a gather per output element
                        "gemm"     the phase GEMM (needs dilation 1; else "direct" runs)
                        "aten"     ATen's transposed convolution over the crop
    nms                 "auto"     CPU: the greedy loop; CUDA: the bitmask
                        "greedy"   CPU only (CUDA always runs the bitmask)
                        "bitmask"  the suppression bitmask (the body CUDA runs)
    roi_align_backward  "auto"     CPU: per-roi sample tables (the per-element plane body with
                                   cpu_row_kernels=False); CUDA: "scatter", or "plane" under
                                   torch.use_deterministic_algorithms(True)
                        "plane"    one task per (image, channel) plane gathering its rois in
                                   order (deterministic)
                        "scatter"  one task per grad element scattering with atomic adds
    cpu_row_kernels     True       the CPU's whole-row / whole-plane forms where an op has them
                        False      the per-element bodies everywhere, as CUDA runs them
    cpu_isa             "auto"     no cap: the best instruction set this CPU supports
                        "avx512"   at most AVX-512 (F, BW, VL, DQ) for the vectorised CPU loops
                        "avx2"     at most AVX2
                        "baseline" the loops as compiled for baseline x86-64 (SSE2)

``cpu_isa`` caps the instruction set of the CPU loops that are compiled in several forms and
chosen at run time (the unpooling row kernels, csrc/common/cpu_isa.h): the form that runs is
``min(cpu_isa_supported(), cap)``, so a cap above what the CPU has runs the best it has, and
:func:`cpu_isa_in_effect` tells which runs. Its initial value is not "auto" but the environment
variable ``FASTSEG_CPU_ISA`` (``avx512``, ``avx2``, ``baseline``; unset, empty or ``auto``: no
cap), read once, at the first call of an op that uses those loops or of this setting; any other
value raises ``RuntimeError`` there, naming the variable and the allowed values. Comparison runs
cap both sides, e.g. ``ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 FASTSEG_CPU_ISA=avx2
python -m benchmarks ...`` (benchmarks/README.md); tests run every form on one AVX-512 machine
with ``strategy(cpu_isa=...)``.

:func:`strategy` sets the given settings on entry and restores the previous values on exit, also
when the block raises; settings not named keep their value. It validates everything before it
changes anything: an unknown setting or choice raises ``ValueError`` naming the allowed ones. A
build without the switches (no compiled extension, or one older than this module) raises
``RuntimeError`` when :func:`strategy` is called, which tests can turn into a skip.

The switches are process-wide (C++ atomics), not per thread: do not flip them while another
thread runs the ops. :func:`current` returns the settings in force (for ``cpu_isa`` the cap,
``"auto"`` for none); :func:`cpu_isa_supported` and :func:`cpu_isa_in_effect` the instruction sets
this CPU has and the CPU loops use.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Tuple, Union

import torch

from . import _loader

__all__ = ["SETTINGS", "CPU_ISA_LEVELS", "strategy", "current", "cpu_isa_supported", "cpu_isa_in_effect",
           "conv_transpose_choices"]

#: Each setting's choices, in the order of the C++ switch's integers (0 first, the default).
#: cpu_row_kernels is a bool (True, the default, first).
SETTINGS: Dict[str, Tuple[Any, ...]] = {
    "conv_transpose": ("auto", "direct", "gemm", "aten"),
    "nms": ("auto", "greedy", "bitmask"),
    "roi_align_backward": ("auto", "plane", "scatter"),
    "cpu_row_kernels": (True, False),
    "cpu_isa": ("auto", "avx512", "avx2", "baseline"),
}

#: The instruction-set levels, lowest first (cpu_isa_supported() / cpu_isa_in_effect() values).
CPU_ISA_LEVELS: Tuple[str, ...] = ("baseline", "avx2", "avx512")

_NAMESPACE = "fastseg_testing"


def _require_switches() -> None:
    if not _loader.HAS_OPS:
        raise RuntimeError(f"fastseg.testing: the compiled extension fastseg._C is not available "
                           f"({_loader.load_error}); no kernel strategy can be set")
    ns = getattr(torch.ops, _NAMESPACE)
    missing = [s for s in SETTINGS if not hasattr(ns, f"set_{s}") or not hasattr(ns, f"get_{s}")]
    if missing:
        raise RuntimeError(f"fastseg.testing: this build of fastseg._C has no torch.ops.{_NAMESPACE} "
                           f"switch for {', '.join(missing)}; rebuild the extension")


def _encode(setting: str, value: Any) -> Union[int, bool]:
    """The C++ switch's value for a named choice (ValueError for an unknown setting or choice)."""
    if setting not in SETTINGS:
        raise ValueError(f"fastseg.testing.strategy: unknown setting {setting!r}; "
                         f"the settings are {', '.join(SETTINGS)}")
    choices = SETTINGS[setting]
    if setting == "cpu_row_kernels":
        if isinstance(value, bool):
            return value
    elif isinstance(value, str) and value in choices:
        return choices.index(value)
    raise ValueError(f"fastseg.testing.strategy: {setting}={value!r} is not one of "
                     f"{', '.join(repr(c) for c in choices)}")


def _decode(setting: str, raw: Union[int, bool]) -> Any:
    return bool(raw) if setting == "cpu_row_kernels" else SETTINGS[setting][int(raw)]


def _set(setting: str, raw: Union[int, bool]) -> Union[int, bool]:
    """Sets one switch; returns its previous raw value."""
    return getattr(getattr(torch.ops, _NAMESPACE), f"set_{setting}")(raw)


def current() -> Dict[str, Any]:
    """The settings in force, by name, e.g. ``{"conv_transpose": "auto", ..., "cpu_isa": "auto"}``."""
    _require_switches()
    ns = getattr(torch.ops, _NAMESPACE)
    return {s: _decode(s, getattr(ns, f"get_{s}")()) for s in SETTINGS}


def cpu_isa_supported() -> str:
    """The best instruction set this CPU (and OS) supports for fastseg's vectorised CPU loops:
    ``"avx512"``, ``"avx2"`` or ``"baseline"`` (always ``"baseline"`` off x86-64)."""
    _require_switches()
    return str(getattr(torch.ops, _NAMESPACE).cpu_isa_supported())


def cpu_isa_in_effect() -> str:
    """The instruction set fastseg's vectorised CPU loops run with now: the lower of
    :func:`cpu_isa_supported` and the ``cpu_isa`` cap (``FASTSEG_CPU_ISA`` or :func:`strategy`)."""
    _require_switches()
    return str(getattr(torch.ops, _NAMESPACE).cpu_isa_in_effect())


class strategy(contextlib.ContextDecorator):  # noqa: N801 (used like a function)
    """``with strategy(**settings):`` forces the named kernel paths inside the block (see the
    module docstring for the settings and their choices) and restores the previous ones on exit.

    Also usable as a decorator. Re-entrant: nested blocks (and recursion of a decorated function)
    each restore what they found.
    """

    def __init__(self, **settings: Any) -> None:
        self._raw: List[Tuple[str, Union[int, bool]]] = [(s, _encode(s, v)) for s, v in settings.items()]
        _require_switches()
        self._saved: List[List[Tuple[str, Union[int, bool]]]] = []

    def __enter__(self) -> "strategy":
        saved: List[Tuple[str, Union[int, bool]]] = []
        try:
            for setting, raw in self._raw:
                saved.append((setting, _set(setting, raw)))
        except BaseException:
            _restore(saved)
            raise
        self._saved.append(saved)
        return self

    def __exit__(self, *exc) -> bool:
        _restore(self._saved.pop())
        return False

    def __repr__(self) -> str:
        args = ", ".join(f"{s}={_decode(s, raw)!r}" for s, raw in self._raw)
        return f"fastseg.testing.strategy({args})"


def _restore(saved: List[Tuple[str, Union[int, bool]]]) -> None:
    for setting, raw in reversed(saved):
        _set(setting, raw)


_CHOICE_KEY = ("N", "Cin", "Cout", "groups", "H", "W", "OH", "OW", "kh", "kw", "sh", "sw", "ph", "pw", "crop_top",
               "crop_left", "dtype", "input_channels_last", "out_channels_last", "threads", "bias")


def conv_transpose_choices(clear: bool = False) -> List[Dict[str, Any]]:
    """The CPU transpose-convolution strategies measured in this process so far (docs/design.md
    §5.2): one dict per problem, its key fields (``out_channels_last`` is -1 for a new output)
    and ``"strategy"``, ``"gemm"`` or ``"aten"``. ``clear=True`` also forgets them, so the next
    call of each problem measures again (tests; not thread-safe against running ops)."""
    _require_switches()
    rows = getattr(torch.ops, _NAMESPACE).conv_transpose_measured(bool(clear)).tolist()
    names = {2: "gemm", 3: "aten"}
    return [dict(zip(_CHOICE_KEY, row[:-1]), strategy=names[row[-1]]) for row in rows]

