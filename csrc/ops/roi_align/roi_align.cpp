// RoIAlign: schemas (torchvision's, in the fastseg namespace) and the CPU kernels (math in
// roi_align.h, flow in roi_align_ops.h, the CPU-only sample-table paths in roi_align_cpu.h).
#include <torch/library.h>

#include "common/cpu_backend.h"
#include "common/strategy_switch.h"
#include "ops/roi_align/roi_align_cpu.h"
#include "ops/roi_align/roi_align_ops.h"

namespace fastseg {
namespace roi_align {
namespace {
// Testing hook (fastseg.testing.strategy(roi_align_backward=...)): 0 "auto" (CPU: tables; CUDA:
// atomic scatter unless deterministic algorithms are on), 1 "plane", the deterministic plane
// backward, 2 "scatter", the atomic scatter.
StrategySwitch forced("set_roi_align_backward", 2);
int64_t set_backward(int64_t strategy) { return forced.set(strategy); }
int64_t get_backward() { return forced.get(); }
}  // namespace

BackwardStrategy forced_backward() { return static_cast<BackwardStrategy>(forced.get()); }

}  // namespace roi_align
}  // namespace fastseg

TORCH_LIBRARY_FRAGMENT(fastseg, m) {
  m.def("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
        "int sampling_ratio, bool aligned) -> Tensor");
  m.def("roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, int sampling_ratio, "
        "bool aligned) -> Tensor");
  m.def("multi_scale_roi_align(Tensor[] features, Tensor rois, Tensor levels, float[] scales, SymInt pooled_height, "
        "SymInt pooled_width, int sampling_ratio) -> Tensor");
}

// Testing switch (fastseg.testing.strategy(roi_align_backward=...)), outside the public op namespace.
TORCH_LIBRARY_FRAGMENT(fastseg_testing, m) {
  m.def("set_roi_align_backward(int strategy) -> int", &fastseg::roi_align::set_backward);
  m.def("get_roi_align_backward() -> int", &fastseg::roi_align::get_backward);
}

TORCH_LIBRARY_IMPL(fastseg, CPU, m) {
  fastseg::roi_align::register_kernels<fastseg::CpuBackend>(m);
}
