"""pytest-benchmark entry points over the same case registry as `python -m benchmarks`.

One entry per (case, mode, variant): `segnet_dec1-fwd-fastseg`, `segnet_dec1-fwd-torch`, ...
grouped by `<case> <mode>` so that fastseg and its baselines sit together in the report. The
fastseg entry first checks that its result agrees with every baseline (fails otherwise) and is
skipped when the compiled ops are not built. `extra_info` holds bytes and GB/s.

    pytest benchmarks --benchmark-only                       # small shapes, fast
    pytest benchmarks --benchmark-only --bench-size full -k segnet_dec1-
"""
import pytest
import torch

from benchmarks import harness

CASES = harness.select_cases()
PARAMS = [
    pytest.param(case.name, mode, v.name, id=f"{case.name}-{mode}-{v.name}")
    for case in CASES for mode in case.modes for v in case.variants if mode in v.modes
]

_STATE = {"key": None, "state": None}  # one case's inputs at a time (entries are ordered by case)


def _state(case, device, size):
    key = (case.name, str(device), size)
    if _STATE["key"] != key:
        _STATE["key"], _STATE["state"] = None, None  # free the previous case's tensors first
        torch.manual_seed(0)
        _STATE["state"] = case.setup(device, size)
        _STATE["key"] = key
    return _STATE["state"]


@pytest.fixture(scope="session")
def bench_device(request):
    name = request.config.getoption("--bench-device")
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("--bench-device cuda but CUDA is not available")
    return device


@pytest.mark.parametrize("case_name,mode,variant_name", PARAMS)
def test_benchmark(benchmark, request, bench_device, case_name, mode, variant_name):
    case = harness.REGISTRY[case_name]
    variant = case.variant(variant_name)
    device = bench_device
    if variant.devices is not None and device.type not in variant.devices:
        pytest.skip(f"{variant_name} does not run on {device.type}")
    if variant.kind == "fastseg":
        usable, reason = harness.fastseg_status(device)
        if not usable:
            pytest.skip(reason)
    size = request.config.getoption("--bench-size")
    state = _state(case, device, size)

    if variant.kind == "fastseg":
        baselines = [v for v in case.variants_for(mode, device.type) if v.kind == "baseline" and v.checked]
        mismatch = harness.check_agreement(case, state, mode, variant, baselines)
        harness.zero_grads(state)
        if mismatch:
            pytest.fail(f"{case_name} {mode}: fastseg disagrees {mismatch}")

    fn = harness.make_callable(case, variant, state, mode)
    cuda = device.type == "cuda"

    def setup():
        harness.zero_grads(state)
        if cuda:
            torch.cuda.synchronize(device)

    def target():
        out = fn()
        if cuda:
            torch.cuda.synchronize(device)
        return out

    nbytes = int(case.bytes(state, mode, variant_name))
    benchmark.group = f"{case_name} {mode}"
    benchmark.extra_info.update(case=case_name, family=case.family, mode=mode, variant=variant_name,
                                kind=variant.kind, size=size, device=str(device), bytes=nbytes,
                                num_threads=torch.get_num_threads())
    benchmark.pedantic(target, setup=setup, rounds=request.config.getoption("--bench-rounds"),
                       warmup_rounds=1, iterations=1)
    harness.zero_grads(state)
    stats = getattr(benchmark, "stats", None)
    median = getattr(getattr(stats, "stats", None), "median", None)
    if median:
        benchmark.extra_info["gbps"] = nbytes / median / 1e9
