// NMS: schemas, the CPU kernels (flow in nms_ops.h) and the strategy switch for tests.
#include <atomic>

#include <torch/library.h>

#include "common/cpu_backend.h"
#include "ops/nms/nms_ops.h"

namespace fastseg {
namespace nms {
namespace {
std::atomic<int64_t> forced{0};

// Testing hook: 0 auto, 1 greedy (CPU only; CUDA always uses the bitmask), 2 bitmask.
// Returns the previous setting.
int64_t set_strategy(int64_t strategy) {
  TORCH_CHECK(strategy >= 0 && strategy <= 2, "fastseg._set_nms_strategy: strategy must be 0..2, got ", strategy);
  return forced.exchange(strategy);
}
}  // namespace

Strategy forced_strategy() { return static_cast<Strategy>(forced.load(std::memory_order_relaxed)); }

}  // namespace nms
}  // namespace fastseg

TORCH_LIBRARY_FRAGMENT(fastseg, m) {
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
  m.def("batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor");
  m.def("_set_nms_strategy(int strategy) -> int", &fastseg::nms::set_strategy);
}

TORCH_LIBRARY_IMPL(fastseg, CPU, m) {
  fastseg::nms::register_kernels<fastseg::CpuBackend>(m);
}
