// Transpose convolution + crop: CUDA registration. Everything but the thread mapping
// (common/cuda_backend.cuh) is shared with the CPU kernels (conv_transpose.h bodies,
// conv_transpose_ops.h flow; the GEMMs are cuBLAS through ATen).
#include <torch/library.h>

#include "common/cuda_backend.cuh"
#include "ops/conv_transpose/conv_transpose_ops.h"

TORCH_LIBRARY_IMPL(fastseg, CUDA, m) {
  fastseg::conv_transpose::register_kernels<fastseg::CudaBackend>(m);
}
