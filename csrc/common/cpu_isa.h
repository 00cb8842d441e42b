// The CPU instruction set for the hand-vectorised loops (the unpooling row kernels), chosen at run
// time, and its cap.
//
// The library is compiled for baseline x86-64; loops that pay for wider vectors are written once,
// branch-free, and compiled again inside run_avx2 / run_avx512 (GCC target attributes, the loop
// inlined into each). fastest_isa(f) runs f in the form of cpu_isa():
//   cpu_isa() = min(cpu_isa_supported(), cap)
// where the cap is, at first, the environment variable FASTSEG_CPU_ISA (avx512, avx2 or baseline;
// unset, empty or auto: no cap), read once, at the first call of an op that uses these loops. Any
// other value raises there (c10::Error, a RuntimeError in Python) naming the variable and the
// allowed values. A cap above what the CPU has runs the best the CPU has. Tests change the cap
// through torch.ops.fastseg_testing.set_cpu_isa (fastseg.testing.strategy(cpu_isa=...)) to run
// every form on one machine; comparison runs cap it to AVX2 (benchmarks/README.md).
//
// "avx512" means AVX-512 F, BW, VL and DQ (x86-64-v4 less CD): mask-register compares and
// selects, two-table permutes (the stride-2 loads), 64-bit unsigned min, byte-masked stores. Its
// vectors are 256 bits wide (prefer-vector-width=256, as GCC tunes for AVX-512 CPUs): measured on
// Zen 4 (whose 512-bit ops are two 256-bit halves), zmm vectors were no faster for the unpooling
// loops and 35% slower for the compact pooling rows, whose 64-window vectors left most of a
// 240-window row to the scalar remainder. nvcc never sees the target attributes: under __CUDACC__
// (and off x86-64 or GCC/Clang) fastest_isa(f) is f().
#pragma once

#include <atomic>

#include <c10/macros/Macros.h>

namespace fastseg {

// Ordered: a cap admits every level at or below it.
enum class CpuIsa : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// "baseline", "avx2", "avx512".
const char* cpu_isa_name(CpuIsa isa);

// The best level this CPU (and OS) supports.
CpuIsa cpu_isa_supported();

namespace detail {
// cpu_isa() once known, -1 before the first call.
extern std::atomic<int> cpu_isa_in_effect;
// Reads FASTSEG_CPU_ISA unless the cap was set, stores and returns cpu_isa() (throws c10::Error
// for a bad FASTSEG_CPU_ISA).
int resolve_cpu_isa();
}  // namespace detail

// The level the loops run at: one relaxed atomic load once known.
inline CpuIsa cpu_isa() {
  int v = detail::cpu_isa_in_effect.load(std::memory_order_relaxed);
  if (C10_UNLIKELY(v < 0)) v = detail::resolve_cpu_isa();
  return static_cast<CpuIsa>(v);
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(__CUDACC__)
#define FASTSEG_X86_ISA_DISPATCH 1
// Lambdas handed to fastest_isa are written `[&]() FASTSEG_INLINE_LAMBDA { ... }`, and the loops
// they call C10_ALWAYS_INLINE, so that all of it is compiled inside run_avx2 / run_avx512.
#define FASTSEG_INLINE_LAMBDA __attribute__((always_inline))

template <typename F>
__attribute__((target("avx2"))) auto run_avx2(const F& f) {
  return f();
}

template <typename F>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,prefer-vector-width=256"))) auto run_avx512(const F& f) {
  return f();
}
#else
#define FASTSEG_INLINE_LAMBDA
#endif

// Runs f() compiled for cpu_isa().
template <typename F>
inline auto fastest_isa(const F& f) {
#ifdef FASTSEG_X86_ISA_DISPATCH
  switch (cpu_isa()) {
    case CpuIsa::kAvx512:
      return run_avx512(f);
    case CpuIsa::kAvx2:
      return run_avx2(f);
    case CpuIsa::kBaseline:
      break;
  }
#endif
  return f();
}

}  // namespace fastseg
