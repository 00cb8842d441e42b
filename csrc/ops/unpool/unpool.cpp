// Unpooling family: schemas and the CPU kernels (the math is in max_unpool.h, compact.h and
// scale.h, the flow in unpool_ops.h and the *_ops.h it includes).
#include <torch/library.h>

#include "common/cpu_backend.h"
#include "ops/unpool/unpool_ops.h"

TORCH_LIBRARY_FRAGMENT(fastseg, m) {
  m.def("max_unpool2d(Tensor input, Tensor indices, int[2] kernel_size, int[2] stride, int[2] padding, "
        "SymInt[2] output_size) -> Tensor");
  m.def("max_unpool2d_backward(Tensor grad_output, Tensor indices) -> Tensor");
  m.def("max_pool2d_compact(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, bool ceil_mode) "
        "-> (Tensor, Tensor)");
  m.def("max_pool2d_compact_backward(Tensor grad_values, Tensor offsets, SymInt[2] input_size, int[2] kernel_size, "
        "int[2] stride, int[2] padding) -> Tensor");
  m.def("max_unpool2d_compact(Tensor values, Tensor offsets, int[2] kernel_size, int[2] stride, int[2] padding, "
        "SymInt[2] output_size) -> Tensor");
  m.def("max_unpool2d_compact_backward(Tensor grad_output, Tensor offsets, int[2] kernel_size, int[2] stride, "
        "int[2] padding) -> Tensor");
  m.def("unpool_nearest2d(Tensor input, int[2] scale_factor) -> Tensor");
  m.def("unpool_nearest2d_backward(Tensor grad_output, int[2] scale_factor) -> Tensor");
  m.def("unpool_bed_of_nails2d(Tensor input, int[2] scale_factor) -> Tensor");
  m.def("unpool_bed_of_nails2d_backward(Tensor grad_output, int[2] scale_factor) -> Tensor");
}

TORCH_LIBRARY_IMPL(fastseg, CPU, m) {
  fastseg::unpool::register_kernels<fastseg::CpuBackend>(m);
}
