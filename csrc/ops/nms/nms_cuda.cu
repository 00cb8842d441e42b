// NMS: CUDA registration. The suppression bitmask is the body in nms.h (the CPU tests run it
// through fastseg.testing.strategy(nms="bitmask")); the flow is nms_ops.h.
#include <torch/library.h>

#include "common/cuda_backend.cuh"
#include "ops/nms/nms_ops.h"

TORCH_LIBRARY_IMPL(fastseg, CUDA, m) {
  fastseg::nms::register_kernels<fastseg::CudaBackend>(m);
}
