"""Builds the one extension `fastseg._C` (C++ always, CUDA when available).

FASTSEG_CUDA=0|1 forces the choice; by default CUDA is used when the installed torch is a CUDA
build and a CUDA toolkit is found. The choice never depends on a GPU being present: CI machines
have none but must still compile and link the CUDA kernels. DEBUG=1 builds with -O0 -g.
"""
import glob
import os
import sys

from setuptools import find_packages, setup

# cpp_extension reads CUDA_HOME at import time. Torch guesses it from the `nvcc` on PATH, which on
# our machines is a wrapper in /usr/local/bin, so the guess (/usr/local) has no lib64/libcudart and
# the link fails. Set it before the import when the standard location exists.
if "CUDA_HOME" not in os.environ and "CUDA_PATH" not in os.environ:
    if os.path.exists("/usr/local/cuda/bin/nvcc"):
        os.environ["CUDA_HOME"] = "/usr/local/cuda"

import torch  # noqa: E402
from torch.utils import cpp_extension  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))


def _use_cuda() -> bool:
    flag = os.environ.get("FASTSEG_CUDA")
    if flag is not None:
        return flag.strip().lower() not in ("0", "false", "no", "off", "")
    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


def _pip_cuda_include_dirs():
    """CUDA math-library headers shipped in the nvidia-* wheels (cusparse.h, cublas_v2.h, ...).

    ATen/cuda/CUDAContext.h includes them; a bare nvcc toolkit may not have them.
    """
    dirs = []
    for site in sys.path:
        for d in sorted(glob.glob(os.path.join(site, "nvidia", "*", "include"))):
            if os.path.isdir(d) and d not in dirs:
                dirs.append(d)
    return dirs


def _openmp_flags():
    """-fopenmp where torch's CPU parallelism is OpenMP (its Linux wheels): at::parallel_for is a
    header template that runs serially unless the including code is compiled with OpenMP, so
    without it every fastseg CPU kernel used one thread. The libgomp.so.1 that torch has already
    loaded serves our references too (same soname)."""
    if sys.platform.startswith("linux") and "OpenMP" in torch.__config__.parallel_info():
        return ["-fopenmp"]
    return []


def _extension():
    use_cuda = _use_cuda()
    debug = os.environ.get("DEBUG", "0") == "1"
    opt = ["-O0", "-g"] if debug else ["-O3"]
    sources = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
    include_dirs = [os.path.join(ROOT, "csrc")]
    define_macros = []
    # No -std flag: cpp_extension picks the standard the installed torch needs (C++20 from 2.13).
    extra = {"cxx": opt + ["-fdiagnostics-color=always"] + _openmp_flags()}
    ext_cls = cpp_extension.CppExtension
    if use_cuda:
        if cpp_extension.CUDA_HOME is None:
            raise RuntimeError("FASTSEG_CUDA=1 but no CUDA toolkit was found (set CUDA_HOME)")
        ext_cls = cpp_extension.CUDAExtension
        sources += sorted(glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True))
        include_dirs += _pip_cuda_include_dirs()
        define_macros.append(("WITH_CUDA", None))
        # No --use_fast_math: it would break bit-compatibility with the reference ops. -fmad=false:
        # nvcc contracts a * b + c into one FMA (one rounding) where the CPU build rounds twice;
        # the shared bodies must compute the same bits on both (paste coordinates at a 0.5
        # threshold, argmax ties), so no contraction.
        extra["nvcc"] = opt + ["-lineinfo", "-fmad=false"]
    return ext_cls(
        "fastseg._C",
        sources,
        include_dirs=include_dirs,
        define_macros=define_macros,
        extra_compile_args=extra,
        extra_link_args=_openmp_flags(),
        py_limited_api=True,
    )


setup(
    packages=find_packages(include=["fastseg", "fastseg.*", "benchmarks", "benchmarks.*"]),
    ext_modules=[_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
