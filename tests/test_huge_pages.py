"""Transparent huge pages for large CPU outputs (csrc/common/tensor_view.h: huge_pages_for):
asked for when an output of the same size was allocated less than a second before (a layer
called in a loop), not for a one-off allocation; FASTSEG_HUGE_PAGES=1 asks every time, =0 never.
Checked on the mapping of real outputs: MADV_HUGEPAGE marks its VMA "hg" in /proc/self/smaps."""
import os
import sys

import pytest

import helpers
from helpers_subprocess import stdout_words_with_env

pytestmark = [helpers.needs_ops,
              pytest.mark.skipif(not sys.platform.startswith("linux") or
                                 not os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled"),
                                 reason="madvise(MADV_HUGEPAGE) and smaps are Linux's, with transparent huge pages")]

# Three 64 MB conv_transpose2d_crop outputs (over the 8 MB floor): two back to back, then one
# more than a second later; for each, whether the mapping holding its data is advised.
CHILD = r"""
import time, torch, fastseg.ops as o

def advised(y):
    addr = y.data_ptr() + 8192
    inside = False
    for line in open("/proc/self/smaps"):
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(v, 16) for v in head.split("-"))
            inside = lo <= addr < hi
        elif inside and head == "VmFlags:":
            return "hg" in line.split()[1:]
    raise AssertionError("no mapping holds the output")

def output():
    y = o.conv_transpose2d_crop(torch.ones(1, 1, 1024, 1024), torch.ones(1, 4, 2, 2), None, stride=2)
    assert y.shape == (1, 4, 2048, 2048) and bool((y == 1).all())
    return advised(y)

first = output()
second = output()
time.sleep(1.2)
print(first, second, output())
"""


def _advised(value):
    return stdout_words_with_env(CHILD, "FASTSEG_HUGE_PAGES", value)


def test_repeated_allocations_are_advised_one_offs_are_not():
    assert _advised(None) == ["False", "True", "False"]


def test_environment_forces_advice_on_and_off():
    assert _advised("1") == ["True", "True", "True"]
    assert _advised("0") == ["False", "False", "False"]
