"""Transparent huge pages for large CPU outputs (csrc/common/tensor_view.h: huge_pages_allowed):
asked for only where the kernel's THP defrag policy lets a fault fall back instead of compacting
memory on the spot ("defer" or "never"), or when FASTSEG_HUGE_PAGES=1; never with =0. Checked on
the mapping of a real output: MADV_HUGEPAGE marks its VMA "hg" in /proc/self/smaps."""
import os
import subprocess
import sys

import pytest

import helpers
from helpers_devices import REPO_ROOT
from helpers_subprocess import _child_env

pytestmark = [helpers.needs_ops,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and smaps are Linux's")]

DEFRAG = "/sys/kernel/mm/transparent_hugepage/defrag"

# A 64 MB conv_transpose2d_crop output (over the 8 MB floor), then the VmFlags of the mapping that
# holds its data (glibc serves a block this large from its own mmap).
CHILD = r"""
import torch, fastseg.ops as o
x = torch.randn(1, 1, 1024, 1024)
y = o.conv_transpose2d_crop(x, torch.randn(1, 4, 2, 2), None, stride=2)
assert y.shape == (1, 4, 2048, 2048)
addr = y.data_ptr() + 8192
flags, inside = None, False
for line in open("/proc/self/smaps"):
    head = line.split()[0]
    if "-" in head and not head.endswith(":"):
        lo, hi = (int(v, 16) for v in head.split("-"))
        inside = lo <= addr < hi
    elif inside and head == "VmFlags:":
        flags = line.split()[1:]
print("hg" in flags)
"""


def _advised(value):
    env = _child_env()
    env.pop("FASTSEG_HUGE_PAGES", None)
    if value is not None:
        env["FASTSEG_HUGE_PAGES"] = value
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip() == "True"


def _madvise_available():
    return os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled")


@pytest.mark.skipif(not _madvise_available(), reason="this kernel has no transparent huge pages")
def test_environment_forces_advice_on_and_off():
    assert _advised("1") is True
    assert _advised("0") is False


@pytest.mark.skipif(not os.path.exists(DEFRAG), reason="this kernel has no transparent huge pages")
def test_default_follows_the_defrag_policy():
    policy = open(DEFRAG).read()
    expected = "[defer]" in policy or "[never]" in policy
    assert _advised(None) is expected, policy
