// Unpooling family: CUDA registration. Everything but the thread mapping (common/cuda_backend.cuh)
// is shared with the CPU kernels (the bodies and the flows that unpool_ops.h includes).
#include <torch/library.h>

#include "common/cuda_backend.cuh"
#include "ops/unpool/unpool_ops.h"

TORCH_LIBRARY_IMPL(fastseg, CUDA, m) {
  fastseg::unpool::register_kernels<fastseg::CudaBackend>(m);
}
