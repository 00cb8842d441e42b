// The CPU instruction-set cap (see cpu_isa.h): FASTSEG_CPU_ISA, and its testing switch
// torch.ops.fastseg_testing.set_cpu_isa / get_cpu_isa, with cpu_isa_supported() and
// cpu_isa_in_effect() for tests and benchmarks to read.
#include "common/cpu_isa.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>

#include <c10/util/Exception.h>
#include <torch/library.h>

namespace fastseg {

namespace detail {
std::atomic<int> cpu_isa_in_effect{-1};
}  // namespace detail

namespace {

// The switch's choices, in the order of fastseg.testing.SETTINGS["cpu_isa"] (0 = no cap).
constexpr int64_t kChoices = 4;
constexpr const char* kChoiceNames[kChoices] = {"auto", "avx512", "avx2", "baseline"};
constexpr CpuIsa kChoiceCap[kChoices] = {CpuIsa::kAvx512, CpuIsa::kAvx512, CpuIsa::kAvx2, CpuIsa::kBaseline};

std::mutex mutex;     // guards choice (the hot path reads only detail::cpu_isa_in_effect)
int64_t choice = -1;  // the cap, one of kChoices; -1 until FASTSEG_CPU_ISA is read

// The choice FASTSEG_CPU_ISA names (case-insensitive; unset or empty: auto).
int64_t choice_from_environment() {
  const char* raw = std::getenv("FASTSEG_CPU_ISA");
  if (raw == nullptr || raw[0] == '\0') return 0;
  std::string value(raw);
  for (char& ch : value) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  int64_t i = 0;
  while (i < kChoices && value != kChoiceNames[i]) ++i;
  TORCH_CHECK(i < kChoices, "fastseg: the environment variable FASTSEG_CPU_ISA='", raw,
              "' is not one of avx512, avx2, baseline, auto (the cap on the instruction set of "
              "fastseg's vectorised CPU loops; unset or auto: no cap)");
  return i;
}

// With mutex held: reads FASTSEG_CPU_ISA the first time; publishes the level in effect.
void settle_locked() {
  if (choice < 0) choice = choice_from_environment();  // throws (and stays unread) if bad
  const CpuIsa cap = kChoiceCap[choice];
  const CpuIsa have = cpu_isa_supported();
  detail::cpu_isa_in_effect.store(static_cast<int>(cap < have ? cap : have));
}

// Testing hooks (fastseg.testing.strategy(cpu_isa=...)): returns the previous choice.
int64_t set_cpu_isa(int64_t strategy) {
  TORCH_CHECK(strategy >= 0 && strategy < kChoices, "fastseg_testing.set_cpu_isa: strategy must be 0..",
              kChoices - 1, ", got ", strategy);
  std::lock_guard<std::mutex> lock(mutex);
  settle_locked();
  const int64_t previous = choice;
  choice = strategy;
  settle_locked();
  return previous;
}

int64_t get_cpu_isa() {
  std::lock_guard<std::mutex> lock(mutex);
  settle_locked();
  return choice;
}

std::string cpu_isa_supported_name() { return cpu_isa_name(cpu_isa_supported()); }
std::string cpu_isa_in_effect_name() { return cpu_isa_name(cpu_isa()); }

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kBaseline:
      break;
  }
  return "baseline";
}

CpuIsa cpu_isa_supported() {
#ifdef FASTSEG_X86_ISA_DISPATCH
  static const CpuIsa best = [] {
    __builtin_cpu_init();
    // __builtin_cpu_supports also checks that the OS saves the ymm / zmm state.
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
      return CpuIsa::kAvx512;
    }
    return __builtin_cpu_supports("avx2") ? CpuIsa::kAvx2 : CpuIsa::kBaseline;
  }();
  return best;
#else
  return CpuIsa::kBaseline;
#endif
}

namespace detail {
int resolve_cpu_isa() {
  std::lock_guard<std::mutex> lock(mutex);
  settle_locked();
  return cpu_isa_in_effect.load();
}
}  // namespace detail

}  // namespace fastseg

TORCH_LIBRARY_FRAGMENT(fastseg_testing, m) {
  m.def("set_cpu_isa(int strategy) -> int", &fastseg::set_cpu_isa);
  m.def("get_cpu_isa() -> int", &fastseg::get_cpu_isa);
  m.def("cpu_isa_supported() -> str", &fastseg::cpu_isa_supported_name);
  m.def("cpu_isa_in_effect() -> str", &fastseg::cpu_isa_in_effect_name);
}
