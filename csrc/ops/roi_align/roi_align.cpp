// RoIAlign: schemas (torchvision's, in the fastseg namespace) and the CPU kernels (math in
// roi_align.h, flow in roi_align_ops.h).
#include <atomic>

#include <torch/library.h>

#include "common/cpu_backend.h"
#include "ops/roi_align/roi_align_ops.h"

namespace fastseg {
namespace roi_align {
namespace {
std::atomic<int64_t> forced{0};

// Testing hook: 0 auto (CPU: tables; CUDA: atomic scatter unless deterministic algorithms are
// on), 1 the deterministic plane backward, 2 the atomic scatter. Returns the previous setting.
int64_t set_backward(int64_t strategy) {
  TORCH_CHECK(strategy >= 0 && strategy <= 2, "fastseg._set_roi_align_backward: strategy must be 0..2, got ",
              strategy);
  return forced.exchange(strategy);
}
}  // namespace

BackwardStrategy forced_backward() { return static_cast<BackwardStrategy>(forced.load(std::memory_order_relaxed)); }

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
  m.def("_set_roi_align_backward(int strategy) -> int", &fastseg::roi_align::set_backward);
}

TORCH_LIBRARY_IMPL(fastseg, CPU, m) {
  fastseg::roi_align::register_kernels<fastseg::CpuBackend>(m);
}
