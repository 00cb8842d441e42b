"""fastseg benchmark suite.

    python -m benchmarks [--quick] [--filter NAME] [--device cpu|cuda] [--out DIR]
    pytest benchmarks --benchmark-only [--bench-size small|quick|full] [--bench-device cpu|cuda]

Cases live in `benchmarks/cases/<family>.py` and register themselves with the registry in
`benchmarks/registry.py` (harness.py re-exports it); results go to `benchmarks/results/<device-slug>/`.
"""
