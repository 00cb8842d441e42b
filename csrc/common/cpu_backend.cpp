// The switch between the CPU row kernels and the per-element bodies (see cpu_backend.h).
#include <atomic>

#include <torch/library.h>

#include "common/cpu_backend.h"

namespace fastseg {
namespace {
std::atomic<bool> row_kernels{true};

// Testing hook: returns the previous setting.
bool set_cpu_row_kernels(bool enabled) { return row_kernels.exchange(enabled); }
}  // namespace

bool cpu_row_kernels_enabled() { return row_kernels.load(std::memory_order_relaxed); }

}  // namespace fastseg

TORCH_LIBRARY_FRAGMENT(fastseg, m) {
  m.def("_set_cpu_row_kernels(bool enabled) -> bool", &fastseg::set_cpu_row_kernels);
}
