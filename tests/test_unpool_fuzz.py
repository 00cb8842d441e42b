"""Generated inputs for every unpooling op: >= 500 per op, good and bad (issue §4).

Good inputs (seeded, reproducible: `unpool_cases.good_<op>(seed)`) run in this process and are
compared with PyTorch and fastseg.reference, forward and backward, in random dtypes, layouts,
geometries and output sizes. Bad inputs (`unpool_cases.bad_<op>`) run in ONE fresh interpreter
per device, so a segfault, abort or hang fails these tests instead of killing pytest; each must
raise RuntimeError/ValueError/TypeError whose message names the offending argument.

Reproduce one good case: `python -c "import sys; sys.path.insert(0, 'tests'); import unpool_cases as U;
U.run_good('max_unpool2d', 123)"`.
"""
import pytest

import helpers
import unpool_cases as U

pytestmark = helpers.needs_ops

GOOD_PER_OP = 420
BAD_PER_OP = 100
MIN_PER_OP = 500

for _op in U.OPS:
    helpers.register_bad_cases(f"unpool-fuzz-{_op}", U.BAD[_op], n=BAD_PER_OP, seed=0)


@pytest.mark.parametrize("op", U.OPS)
def test_fuzz_good(device, kernel_form, op):
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
