"""Inputs and checks for the unpooling family, shared by the test_unpool_*.py files.

Expected values always come from PyTorch itself (`F.max_unpool2d`, `F.max_pool2d`,
`F.interpolate`, computed on the CPU, whose max_unpool2d writes sequentially so that for
duplicate indices the larger input position wins) and, as a second opinion, from
`fastseg.reference`. Nothing here calls fastseg's kernels to produce an expectation.

One module per op: max_unpool.py, compact_pool.py (max_pool2d_compact), compact_unpool.py
(max_unpool2d_compact), nearest.py, bed_of_nails.py (with scale.py, what the two scale-factor
ops share); common.py (geometry, tensors, the building blocks of generated cases), named.py (the
named bad inputs of the whole family), samples.py (parametrisations and inputs the tests share).
Everything is importable from this package (`import unpool_cases as U`).

`check_<op>(...)` run one case and raise AssertionError with a readable message.
`good_<op>(seed, device)` build one random valid case of a pooling op (a dict of the
`check_<op>` arguments plus "desc", a reproducer: `run_good(op, seed)`); the scale-factor ops'
valid cases are drawn by hypothesis (`scale_specs()`; reproducer: `run_scale_case(op, spec)`).
`bad_<op>(device, n, seed)` build BadCase lists for helpers.run_cases_in_subprocess (module-level
factories, "unpool_cases:bad_<op>", so the child process can rebuild them).
"""
from __future__ import annotations

from .bed_of_nails import bad_unpool_bed_of_nails2d, bed_of_nails_indices, check_unpool_bed_of_nails2d
from .common import (GEOMETRIES, HUGE, OPS, default_unpool_hw, geometry_id, msg_re, norm2, norm_geometry,
                     offsets_in_plane, pool_hw, pool_indices, randn, random_pool_geometry, random_valid_offsets,
                     tie_heavy, unpool_hw)
from .compact_pool import bad_max_pool2d_compact, check_max_pool2d_compact, good_max_pool2d_compact
from .compact_unpool import (bad_max_unpool2d_compact, check_max_unpool2d_compact, expected_max_unpool2d_compact,
                             good_max_unpool2d_compact)
from .max_unpool import bad_max_unpool2d, check_max_unpool2d, expected_max_unpool2d, good_max_unpool2d
from .named import named_bad_cases, overflow_bad_cases, zero_channel_cases
from .nearest import bad_unpool_nearest2d, check_unpool_nearest2d
from .scale import SCALE_FACTORS, SCALE_OPS, ScaleSpec, scale_case, scale_specs

__all__ = [
    "OPS", "GEOMETRIES", "HUGE", "norm2", "norm_geometry", "default_unpool_hw", "unpool_hw", "pool_hw",
    "random_pool_geometry", "geometry_id", "randn", "tie_heavy", "pool_indices", "offsets_in_plane",
    "random_valid_offsets", "msg_re",
    "expected_max_unpool2d", "check_max_unpool2d", "good_max_unpool2d", "bad_max_unpool2d",
    "check_max_pool2d_compact", "good_max_pool2d_compact", "bad_max_pool2d_compact",
    "expected_max_unpool2d_compact", "check_max_unpool2d_compact", "good_max_unpool2d_compact",
    "bad_max_unpool2d_compact",
    "check_unpool_nearest2d", "bad_unpool_nearest2d",
    "bed_of_nails_indices", "check_unpool_bed_of_nails2d", "bad_unpool_bed_of_nails2d",
    "SCALE_OPS", "SCALE_FACTORS", "ScaleSpec", "scale_specs", "scale_case", "run_scale_case",
    "zero_channel_cases", "named_bad_cases", "overflow_bad_cases",
    "GOOD", "run_good", "CHECK", "BAD",
]

#: op -> check_<op>.
CHECK = {
    "max_unpool2d": check_max_unpool2d,
    "max_pool2d_compact": check_max_pool2d_compact,
    "max_unpool2d_compact": check_max_unpool2d_compact,
    "unpool_nearest2d": check_unpool_nearest2d,
    "unpool_bed_of_nails2d": check_unpool_bed_of_nails2d,
}

#: The pooling ops' seeded generators of valid cases, with their checks.
GOOD = {
    "max_unpool2d": (good_max_unpool2d, check_max_unpool2d),
    "max_pool2d_compact": (good_max_pool2d_compact, check_max_pool2d_compact),
    "max_unpool2d_compact": (good_max_unpool2d_compact, check_max_unpool2d_compact),
}


def run_good(op: str, seed: int, device: str = "cpu") -> None:
    make, check = GOOD[op]
    case = make(seed, device)
    args = {k: v for k, v in case.items() if k != "desc"}
    check(**args, desc=case["desc"])


def run_scale_case(op: str, spec: ScaleSpec, device: str = "cpu") -> None:
    """Checks one hypothesis-drawn case of a scale-factor op (`spec` as hypothesis reports it)."""
    case = scale_case(op, spec, device)
    args = {k: v for k, v in case.items() if k != "desc"}
    CHECK[op](**args, desc=case["desc"])


#: op -> the "module:function" factory of its generated bad inputs.
BAD = {op: f"unpool_cases:bad_{op}" for op in OPS}
