// The switch between the CPU row kernels and the per-element bodies (declared in body.h; read by
// cpu_backend.h and the CPU-only flows), and the owner of the `fastseg_testing` op namespace: the
// testing switches of every op family (this one, and TORCH_LIBRARY_FRAGMENT(fastseg_testing) in
// csrc/ops/*/<family>.cpp). They are not part of the public `fastseg` op namespace; Python uses
// them through fastseg.testing.strategy(...).
#include <atomic>

#include <torch/library.h>

#include "common/cpu_backend.h"

namespace fastseg {
namespace {
std::atomic<bool> row_kernels{true};

// Testing hook: returns the previous setting.
bool set_cpu_row_kernels(bool enabled) { return row_kernels.exchange(enabled); }
bool get_cpu_row_kernels() { return row_kernels.load(); }
}  // namespace

bool cpu_row_kernels_enabled() { return row_kernels.load(std::memory_order_relaxed); }

}  // namespace fastseg

TORCH_LIBRARY(fastseg_testing, m) {
  m.def("set_cpu_row_kernels(bool enabled) -> bool", &fastseg::set_cpu_row_kernels);
  m.def("get_cpu_row_kernels() -> bool", &fastseg::get_cpu_row_kernels);
}
