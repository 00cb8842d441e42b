// NMS: schemas, the CPU kernels (flow in nms_ops.h, the greedy loop in nms_cpu.h) and the
// strategy switch for tests.
#include <torch/library.h>

#include "common/cpu_backend.h"
#include "common/strategy_switch.h"
#include "ops/nms/nms_cpu.h"
#include "ops/nms/nms_ops.h"

namespace fastseg {
namespace nms {
namespace {
// Testing hook (fastseg.testing.strategy(nms=...)): 0 "auto", 1 "greedy" (CPU only; CUDA always
// uses the bitmask), 2 "bitmask".
StrategySwitch forced("set_nms", 2);
int64_t set_strategy(int64_t strategy) { return forced.set(strategy); }
int64_t get_strategy() { return forced.get(); }
}  // namespace

Strategy forced_strategy() { return static_cast<Strategy>(forced.get()); }

}  // namespace nms
}  // namespace fastseg

TORCH_LIBRARY_FRAGMENT(fastseg, m) {
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
  m.def("batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor");
}

// Testing switch (fastseg.testing.strategy(nms=...)), outside the public op namespace.
TORCH_LIBRARY_FRAGMENT(fastseg_testing, m) {
  m.def("set_nms(int strategy) -> int", &fastseg::nms::set_strategy);
  m.def("get_nms() -> int", &fastseg::nms::get_strategy);
}

TORCH_LIBRARY_IMPL(fastseg, CPU, m) {
  fastseg::nms::register_kernels<fastseg::CpuBackend>(m);
}
