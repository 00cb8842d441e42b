// Mask pasting: schema and the CPU kernel (math in paste_masks.h, flow in paste_masks_ops.h).
#include <torch/library.h>

#include "common/cpu_backend.h"
#include "ops/paste_masks/paste_masks_ops.h"

TORCH_LIBRARY_FRAGMENT(fastseg, m) {
  m.def("paste_masks(Tensor masks, Tensor boxes, SymInt height, SymInt width, float? threshold) -> Tensor");
  m.def("paste_masks_into(Tensor masks, Tensor boxes, float threshold, Tensor(a!) into) -> ()");
  m.def("paste_masks_in_image(Tensor masks, Tensor boxes, int padding, SymInt height, SymInt width) -> Tensor");
}

TORCH_LIBRARY_IMPL(fastseg, CPU, m) {
  fastseg::paste_masks::register_kernels<fastseg::CpuBackend>(m);
}
