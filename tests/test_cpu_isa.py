"""The instruction-set cap of the CPU loops compiled in several forms (csrc/common/cpu_isa.h):
fastseg.testing.strategy(cpu_isa=...), the environment variable FASTSEG_CPU_ISA, and what is in
effect. That every form computes the same bits is tested with the ops (test_unpool.py, the
`cpu_isa` fixture)."""
import os
import subprocess
import sys

import pytest
import torch

import fastseg.ops as fops
import fastseg.testing as T

import helpers

pytestmark = helpers.needs_ops

LEVELS = T.CPU_ISA_LEVELS  # lowest first


def _lower(a: str, b: str) -> str:
    return min(a, b, key=LEVELS.index)


def _environment_cap() -> str:
    return (os.environ.get("FASTSEG_CPU_ISA") or "auto").lower()


def test_supported_and_in_effect():
    supported = T.cpu_isa_supported()
    assert supported in LEVELS
    assert torch.ops.fastseg_testing.cpu_isa_supported() == supported
    with helpers.strategy(cpu_isa="auto"):
        assert T.current()["cpu_isa"] == "auto"
        assert T.cpu_isa_in_effect() == supported


def test_every_cap_in_effect_is_the_lower_of_cap_and_cpu():
    """A cap above what the CPU supports runs the best it has; the cap itself is what current()
    reports, and it is restored on exit."""
    before = T.current()["cpu_isa"]
    supported = T.cpu_isa_supported()
    for cap in ("avx512", "avx2", "baseline"):
        with helpers.strategy(cpu_isa=cap):
            assert T.current()["cpu_isa"] == cap
            assert T.cpu_isa_in_effect() == _lower(cap, supported), (cap, supported)
        assert T.current()["cpu_isa"] == before


def test_raw_switch_range_checked():
    with pytest.raises(RuntimeError, match="fastseg_testing.set_cpu_isa: strategy must be 0..3"):
        torch.ops.fastseg_testing.set_cpu_isa(4)
    with pytest.raises(ValueError, match="'avx512', 'avx2', 'baseline'"):
        T.strategy(cpu_isa="sse2")


def test_default_comes_from_the_environment():
    assert T.current()["cpu_isa"] == _environment_cap()


_CHILD = """
import torch, fastseg.ops as fops, fastseg.testing as T
v, i = torch.nn.functional.max_pool2d(torch.randn(1, 2, 8, 160), 2, return_indices=True)
fops.max_unpool2d(v, i, 2)  # the row loops (80 windows per row): reads FASTSEG_CPU_ISA
print("CAP", T.current()["cpu_isa"], T.cpu_isa_in_effect(), T.cpu_isa_supported())
"""


def _child(value: str) -> subprocess.CompletedProcess:
    """Runs _CHILD in a fresh interpreter with FASTSEG_CPU_ISA=value."""
    env = {**helpers._child_env(), "FASTSEG_CPU_ISA": value}
    return subprocess.run([sys.executable, "-c", _CHILD], cwd=helpers.REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=helpers.SUBPROCESS_TIMEOUT_S)


@pytest.mark.parametrize("value, cap", [("avx2", "avx2"), ("baseline", "baseline"), ("AVX512", "avx512"),
                                        ("auto", "auto"), ("", "auto")])
def test_environment_variable_caps_the_isa(value, cap):
    proc = _child(value)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("CAP ")][-1].split()
    current, in_effect, supported = line[1:]
    assert current == cap
    assert in_effect == _lower("avx512" if cap == "auto" else cap, supported)


def test_bad_environment_value_raises_at_first_op_naming_the_variable():
    code = """
    import os
    os.environ["FASTSEG_CPU_ISA"] = "avx9000"
    import torch, fastseg.ops as fops
    x = torch.randn(1, 2, 8, 160)  # importing did not raise; the first op using the loops does (80 windows: the row loops)
    v, i = torch.nn.functional.max_pool2d(x, 2, return_indices=True)
    fops.max_unpool2d(v, i, 2)
    """
    msg = helpers.raises_in_subprocess(code, "RuntimeError", r"FASTSEG_CPU_ISA='avx9000'")
    for allowed in ("avx512", "avx2", "baseline"):
        assert allowed in msg, msg


def test_forms_agree_on_one_call():
    """A quick cross-check here (the thorough one is in test_unpool.py): the same bits under every
    cap this CPU can run."""
    gen = helpers.torch_gen(3)
    v, i = torch.nn.functional.max_pool2d(torch.randn(2, 3, 16, 70, generator=gen), 2, return_indices=True)
    outs = []
    for p in helpers.cpu_isa_params():
        if any(m.args and m.args[0] for m in p.marks):  # this CPU lacks it
            continue
        with helpers.cpu_isa(p.values[0]):
            outs.append(fops.max_unpool2d(v, i, 2))
    for o in outs[1:]:
        helpers.assert_same(o, outs[0])
