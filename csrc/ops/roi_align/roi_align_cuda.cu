// RoIAlign: CUDA registration. The kernels are the shared bodies of roi_align.h (the CPU tests
// run them), mapped by common/cuda_backend.cuh.
#include <torch/library.h>

#include "common/cuda_backend.cuh"
#include "ops/roi_align/roi_align_ops.h"

TORCH_LIBRARY_IMPL(fastseg, CUDA, m) {
  fastseg::roi_align::register_kernels<fastseg::CudaBackend>(m);
}
