"""The CPU's measured choice between the phase GEMM and ATen for transpose convolution
(docs/design.md §5.2): measured once per problem, kept for the process, the same result on every
later call, equal to the forced run of the strategy it chose, and off under
FASTSEG_CONV_TRANSPOSE_MEASURE=0."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import fastseg.ops as fops
import fastseg.testing as ft

import helpers
from helpers_subprocess import _child_env
from helpers_devices import REPO_ROOT

pytestmark = helpers.needs_ops

# 2 x 64 x 48 x 48 outputs x 64 inputs = 18.9M multiply-adds: above the 2^24 measuring floor.
BIG = dict(n=2, c=64, hw=24)


def _problem(channels_last: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(BIG["n"], BIG["c"], BIG["hw"], BIG["hw"], generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(BIG["c"], BIG["c"], 2, 2, generator=g) * 0.1
    b = torch.randn(BIG["c"], generator=g)
    return x, w, b


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_measured_once_and_kept(channels_last):
    ft.conv_transpose_choices(clear=True)
    x, w, b = _problem(channels_last)
    first = fops.conv_transpose2d_crop(x, w, b, stride=2)
    choices = ft.conv_transpose_choices()
    assert len(choices) == 1
    c = choices[0]
    assert (c["N"], c["Cin"], c["Cout"], c["OH"], c["OW"], c["kh"], c["sh"]) == (2, 64, 64, 48, 48, 2, 2)
    assert c["input_channels_last"] == int(channels_last) and c["threads"] == torch.get_num_threads()
    assert c["strategy"] in ("gemm", "aten")
    # Later calls reuse the choice: bit-identical results, no new measurement.
    again = fops.conv_transpose2d_crop(x, w, b, stride=2)
    assert torch.equal(first, again)
    assert ft.conv_transpose_choices() == choices
    with ft.strategy(conv_transpose=c["strategy"]):
        forced = fops.conv_transpose2d_crop(x, w, b, stride=2)
    assert torch.equal(first, forced)
    expected = F.conv_transpose2d(x.double(), w.double(), b.double(), stride=2).float()
    torch.testing.assert_close(first, expected, rtol=1e-4, atol=1e-4)
    assert first.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_out_and_small_problems():
    ft.conv_transpose_choices(clear=True)
    x, w, b = _problem(False)
    out = torch.full((2, 64, 48, 48), float("nan"))
    fops.conv_transpose2d_crop(x, w, b, stride=2, out=out)
    torch.testing.assert_close(out, F.conv_transpose2d(x, w, b, stride=2), rtol=1e-4, atol=1e-4)
    assert [c["out_channels_last"] for c in ft.conv_transpose_choices()] == [0]
    # Below the floor the shape rule decides alone: nothing is measured.
    small = fops.conv_transpose2d_crop(x[:1, :, :8, :8], w, b, stride=2)
    assert small.shape == (1, 64, 16, 16) and len(ft.conv_transpose_choices()) == 1
    # A forced strategy never measures.
    ft.conv_transpose_choices(clear=True)
    with ft.strategy(conv_transpose="gemm"):
        fops.conv_transpose2d_crop(x, w, b, stride=2)
    assert ft.conv_transpose_choices() == []


def test_measuring_off_by_environment():
    code = ("import torch, fastseg.ops as o, fastseg.testing as t\n"
            "x = torch.randn(2, 64, 24, 24); w = torch.randn(64, 64, 2, 2)\n"
            "o.conv_transpose2d_crop(x, w, None, stride=2)\n"
            "print(len(t.conv_transpose_choices()))\n")
    env = dict(_child_env(), FASTSEG_CONV_TRANSPOSE_MEASURE="0")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"
    # and on by default
    env.pop("FASTSEG_CONV_TRANSPOSE_MEASURE")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
