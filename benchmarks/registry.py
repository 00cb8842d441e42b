"""The benchmark case registry: `State`, `Variant`, `Case`, `REGISTRY`, `register`, and the case
selection of the CLI and pytest (`load_cases`, `select_cases`). Vocabulary: harness.py."""
from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

MODES = ("fwd", "fwd+bwd")
SIZES = ("full", "quick", "small")  # shapes: full/quick as in the network (quick may shrink), small for pytest


# ============================================================================ registry

class State(SimpleNamespace):
    """What a case's setup returns. Conventions used by the harness:

    * `leaves`: tensors requiring grad whose `.grad` is reset before each fwd+bwd call;
    * `grad_out`: the gradient fed to `out.backward(grad_out)` (allocated once, in setup);
    * `shapes`: a dict describing the shapes, copied into the report;
    * `notes`: a dict of extra facts for the report (e.g. index memory in bytes).
    """


@dataclass
class Variant:
    """One implementation of a case.

    `fn(state)` runs the forward and returns its output (a tensor, or a tuple of tensors).
    `kind`: "fastseg" (the implementation under test), "baseline" (what users would otherwise
    call: gets a ratio and must agree with fastseg) or "roofline" (a bound such as a bare
    zero-fill of the output: timed and reported, never checked).
    `modes`: the modes the variant supports (a roofline row usually only has `fwd`).
    `devices`: restrict to these device types (None: all).
    `checked`: False for a baseline whose output legitimately differs from fastseg's (another
    resampling rule or output format, e.g. torchvision's paste_masks_in_image): it is timed and
    gets a ratio, but not compared; its description must say why.
    """
    name: str
    fn: Callable[[State], Any]
    kind: str = "baseline"
    modes: Tuple[str, ...] = MODES
    description: str = ""
    devices: Optional[Tuple[str, ...]] = None
    checked: bool = True

    def __post_init__(self):
        if self.kind not in ("fastseg", "baseline", "roofline"):
            raise ValueError(f"Variant {self.name}: unknown kind {self.kind!r}")
        bad = set(self.modes) - set(MODES)
        if bad:
            raise ValueError(f"Variant {self.name}: unknown modes {sorted(bad)}")


@dataclass
class Case:
    """A named workload. `setup(device, size)` builds a seeded `State` once per run;
    `bytes(state, mode, variant_name)` returns the bytes read + written by one call (see the
    module docstring for the convention). `atol`/`rtol` are the tolerances of the agreement
    check between fastseg and each baseline (outputs, and input gradients in fwd+bwd)."""
    name: str
    family: str
    description: str
    setup: Callable[[torch.device, str], State]
    variants: List[Variant]
    bytes: Callable[[State, str, str], int]
    modes: Tuple[str, ...] = MODES
    atol: float = 1e-6
    rtol: float = 1e-5
    tags: Tuple[str, ...] = ()
    # fwd+bwd: how to run the backward from the forward's output (default out.backward(grad_out))
    backward: Optional[Callable[[State, Any], None]] = None
    # Fewer samples than the profile asks for, for cases whose baseline takes seconds per call
    # (the panoptic reference loops): the median of 5 such samples is already stable.
    min_repeats: Optional[int] = None

    def variants_for(self, mode: str, device_type: str) -> List[Variant]:
        return [v for v in self.variants
                if mode in v.modes and (v.devices is None or device_type in v.devices)]

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"case {self.name} has no variant {name!r}")


REGISTRY: Dict[str, Case] = {}


def register(case: Case) -> Case:
    if case.name in REGISTRY:
        raise ValueError(f"benchmark case {case.name!r} registered twice")
    names = [v.name for v in case.variants]
    if len(set(names)) != len(names):
        raise ValueError(f"benchmark case {case.name!r}: duplicate variant names {names}")
    if sum(v.kind == "fastseg" for v in case.variants) != 1:
        raise ValueError(f"benchmark case {case.name!r} needs exactly one fastseg variant")
    REGISTRY[case.name] = case
    return case


def load_cases() -> Dict[str, Case]:
    """Imports every op family's case module (they register themselves)."""
    importlib.import_module(f"{__package__}.cases")
    return REGISTRY


def select_cases(patterns: Optional[Sequence[str]] = None) -> List[Case]:
    """Cases whose name or family matches any pattern: a glob (`segnet_*`) or, without
    wildcards, a substring (`segnet`, `unpool`). Comma-separated patterns are split. Without a
    pattern: every op case, not the whole networks (`--filter network` runs those)."""
    load_cases()
    pats: List[str] = []
    for p in patterns or ():
        pats += [q.strip() for q in p.split(",") if q.strip()]
    if not pats:  # whole networks take minutes each (and compile): only when asked for
        return [c for c in REGISTRY.values() if "network" not in c.tags]

    def match(p, s):
        return fnmatch.fnmatchcase(s, p) if any(c in p for c in "*?[") else p in s

    return [c for c in REGISTRY.values() if any(match(p, c.name) or match(p, c.family) for p in pats)]
