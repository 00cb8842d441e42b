// Unpooling family: register_kernels, which registers every op of the family for one dispatch key
// (docs/design.md §2). The flows (checks, allocation, validation and kernel choice), written once
// for both backends, are split by op: max_unpool_ops.h, compact_ops.h, scale_ops.h (what they
// share in unpool_ops_common.h); the bodies they run are in max_unpool.h, compact.h and scale.h.
// `Backend` is CpuBackend (unpool.cpp) or CudaBackend (unpool_cuda.cu); it only maps the bodies
// onto threads.
#pragma once

#include <torch/library.h>

#include "ops/unpool/max_unpool_ops.h"
#include "ops/unpool/compact_ops.h"
#include "ops/unpool/scale_ops.h"

namespace fastseg {
namespace unpool {

// Registers every op of the family for one dispatch key (CPU in unpool.cpp, CUDA in unpool_cuda.cu).
template <typename Backend>
void register_kernels(torch::Library& m) {
  m.impl("max_unpool2d", &max_unpool2d<Backend>);
  m.impl("max_unpool2d_backward", &max_unpool2d_backward<Backend>);
  m.impl("max_pool2d_compact", &max_pool2d_compact<Backend>);
  m.impl("max_pool2d_compact_backward", &max_pool2d_compact_backward<Backend>);
  m.impl("max_unpool2d_compact", &max_unpool2d_compact<Backend>);
  m.impl("max_unpool2d_compact_backward", &max_unpool2d_compact_backward<Backend>);
  m.impl("unpool_nearest2d", &unpool_nearest2d<Backend>);
  m.impl("unpool_nearest2d_backward", &unpool_nearest2d_backward<Backend>);
  m.impl("unpool_bed_of_nails2d", &unpool_bed_of_nails2d<Backend>);
  m.impl("unpool_bed_of_nails2d_backward", &unpool_bed_of_nails2d_backward<Backend>);
}

}  // namespace unpool
}  // namespace fastseg
