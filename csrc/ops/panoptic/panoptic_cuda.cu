// Panoptic fusion: CUDA registration (the per-pixel bodies of panoptic.h, mapped by
// common/cuda_backend.cuh; the CPU tests run the same bodies with
// fastseg.testing.strategy(cpu_row_kernels=False)).
#include <torch/library.h>

#include "common/cuda_backend.cuh"
#include "ops/panoptic/panoptic_ops.h"

TORCH_LIBRARY_IMPL(fastseg, CUDA, m) {
  fastseg::panoptic::register_kernels<fastseg::CudaBackend>(m);
}
