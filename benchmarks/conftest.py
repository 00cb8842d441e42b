"""pytest configuration for `pytest benchmarks --benchmark-only` (pytest-benchmark).

Options (this directory's conftest is loaded because `benchmarks` is given on the command line):
  --bench-size small|quick|full   shapes (default small: N=1, C/4; quick/full: the networks' shapes)
  --bench-device cpu|cuda         default: cuda when available
  --bench-rounds N                timed rounds per entry (default 5, after 1 warm-up round)

Entries use `benchmark.pedantic` so that gradients can be reset outside the timed region;
pytest-benchmark's own --benchmark-min-rounds/--benchmark-max-time therefore do not apply.
"""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # --import-mode=importlib does not put the rootdir on sys.path
    sys.path.insert(0, _ROOT)

try:
    import pytest_benchmark  # noqa: F401
except ImportError:  # without the plugin there is no `benchmark` fixture: collect nothing
    collect_ignore = ["test_benchmarks.py"]


def pytest_addoption(parser):
    group = parser.getgroup("fastseg benchmarks")
    group.addoption("--bench-size", choices=("small", "quick", "full"), default="small",
                    help="fastseg benchmark shapes (default small)")
    group.addoption("--bench-device", default=None, help="cpu or cuda (default: cuda when available)")
    group.addoption("--bench-rounds", type=int, default=5, help="timed rounds per benchmark entry (default 5)")
