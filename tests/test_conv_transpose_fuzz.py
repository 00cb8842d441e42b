"""Generated inputs for conv_transpose2d_crop: >= 500 in all, good and bad (issue 5).

Good inputs (seeded: `conv_transpose_cases.good(seed)`) cycle through the kernel strategies and
are compared with PyTorch (and, every fifth, with fastseg.reference; every third, gradients).
Bad inputs run in ONE fresh interpreter per device, so a crash or hang fails the test instead of
killing pytest; each must raise an error naming the offending argument.

Reproduce one good case: `python -c "import sys; sys.path.insert(0, 'tests'); import
conv_transpose_cases as C; C.run_good(123)"`.
"""

import conv_transpose_cases as C
import helpers

pytestmark = helpers.needs_ops

GOOD = 440
BAD = 120
MIN_TOTAL = 500

helpers.register_bad_cases("conv-transpose-fuzz", "conv_transpose_cases:bad", n=BAD, seed=0)


def test_fuzz_good(device):
    failures = []
    for seed in range(GOOD):
        try:
            C.run_good(seed, device)
        except Exception as e:  # collect every failing seed, report the first ones in full
            failures.append(f"seed {seed}: {type(e).__name__}: {e}")
    assert not failures, (f"{len(failures)} of {GOOD} generated inputs failed (reproduce with "
                          f"conv_transpose_cases.run_good(seed)):\n" + "\n\n".join(f[:2000] for f in failures[:5]))


def test_fuzz_bad(device):
    results = helpers.bad_case_results("conv-transpose-fuzz", device)
    assert len(results) >= BAD
    assert GOOD + len(results) >= MIN_TOTAL
    helpers.assert_no_bad_case_failures(results, "generated bad conv_transpose2d_crop inputs")
