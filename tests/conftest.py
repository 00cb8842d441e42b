"""Fixtures shared by every test file (see helpers.py for the helpers themselves)."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402

torch.set_num_threads(helpers.TEST_THREADS)


@pytest.fixture(params=helpers.DEVICES)
def device(request) -> str:
    """Every available device: cpu, plus cuda when a GPU and fastseg's CUDA kernels are present."""
    return request.param


@pytest.fixture(params=helpers.KERNEL_FORMS)
def kernel_form(request, device):
    """CPU kernel form ("row" / "element", see helpers.cpu_kernel_form), active during the test."""
    with helpers.kernel_form_or_skip(device, request.param):
        yield request.param


@pytest.fixture(params=helpers.cpu_isa_params())
def cpu_isa(request):
    """The CPU loops' instruction set ("avx512", "avx2", "baseline"; see helpers.cpu_isa), in
    effect during the test; skipped where this CPU lacks it."""
    with helpers.cpu_isa(request.param):
        yield request.param


@pytest.fixture(params=helpers.DTYPES, ids=helpers.dtype_id)
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_report_header(config):
    import fastseg

    return (f"fastseg: HAS_OPS={fastseg.HAS_OPS} HAS_CUDA_KERNELS={fastseg.HAS_CUDA_KERNELS} "
            f"devices={helpers.DEVICES} torchvision={helpers.HAS_TORCHVISION} torch={torch.__version__}")
