// Mask pasting: CUDA registration (the per-row body of paste_masks.h, mapped by
// common/cuda_backend.cuh; the CPU tests run the same body).
#include <torch/library.h>

#include "common/cuda_backend.cuh"
#include "ops/paste_masks/paste_masks_ops.h"

TORCH_LIBRARY_IMPL(fastseg, CUDA, m) {
  fastseg::paste_masks::register_kernels<fastseg::CudaBackend>(m);
}
