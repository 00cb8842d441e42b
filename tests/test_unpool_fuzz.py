"""Generated inputs for every unpooling op: >= 500 per op, good and bad (issue §4).

Good inputs run in this process and are compared with PyTorch and fastseg.reference, forward and
backward, in random dtypes, layouts, geometries and output sizes. Those of the pooling ops are
seeded (`unpool_cases.good_<op>(seed)`); those of the scale-factor ops (unpool_nearest2d,
unpool_bed_of_nails2d) are drawn by hypothesis (`unpool_cases.scale_specs()`: dtype, scale
factor, shape, NaN, 3-D input, layout), derandomized so that every run checks the same inputs.
Bad inputs (`unpool_cases.bad_<op>`) run in ONE fresh interpreter per device, so a segfault,
abort or hang fails these tests instead of killing pytest; each must raise
RuntimeError/ValueError/TypeError whose message names the offending argument.

Reproduce one good case: `python -c "import sys; sys.path.insert(0, 'tests'); import unpool_cases as U;
U.run_good('max_unpool2d', 123)"`; for a scale-factor op, hypothesis reports the failing (shrunk)
`ScaleSpec`: `U.run_scale_case('unpool_nearest2d', U.ScaleSpec(...))` (with `import torch`).
"""
import pytest
from hypothesis import given, settings

import helpers
import unpool_cases as U

pytestmark = helpers.needs_ops

GOOD_PER_OP = 420
BAD_PER_OP = 100
MIN_PER_OP = 500

for _op in U.OPS:
    helpers.register_bad_cases(f"unpool-fuzz-{_op}", U.BAD[_op], n=BAD_PER_OP, seed=0)


def _fuzz_good_hypothesis(op, device):
    """GOOD_PER_OP hypothesis-drawn inputs of a scale-factor op; a failure is shrunk to a minimal
    ScaleSpec, which hypothesis reports."""
    ran = []

    @settings(max_examples=GOOD_PER_OP, deadline=None, derandomize=True, database=None)
    @given(spec=U.scale_specs())
    def check(spec):
        ran.append(spec)
        U.run_scale_case(op, spec, device)

    check()
    assert len(ran) >= GOOD_PER_OP, f"hypothesis ran {len(ran)} {op} inputs, fewer than {GOOD_PER_OP}"


@pytest.mark.parametrize("op", U.OPS)
def test_fuzz_good(device, kernel_form, op):
    if op in U.SCALE_OPS:
        _fuzz_good_hypothesis(op, device)
        return
    failures = []
    for seed in range(GOOD_PER_OP):
        try:
            U.run_good(op, seed, device)
        except Exception as e:  # collect every failing seed, report the first ones in full
            failures.append(f"seed {seed}: {type(e).__name__}: {e}")
    assert not failures, (f"{len(failures)} of {GOOD_PER_OP} generated {op} inputs failed "
                          f"(reproduce with unpool_cases.run_good({op!r}, seed)):\n" +
                          "\n\n".join(f[:3000] for f in failures[:5]))


@pytest.mark.parametrize("op", U.OPS)
def test_fuzz_bad(device, op):
    results = helpers.bad_case_results(f"unpool-fuzz-{op}", device)
    assert len(results) >= BAD_PER_OP
    assert GOOD_PER_OP + len(results) >= MIN_PER_OP
    helpers.assert_no_bad_case_failures(results, f"generated bad {op} inputs")
