// Panoptic fusion: schemas and the CPU kernels (math in panoptic.h, flow in panoptic_ops.h).
#include <torch/library.h>

#include "common/cpu_backend.h"
#include "ops/panoptic/panoptic_ops.h"

TORCH_LIBRARY_FRAGMENT(fastseg, m) {
  m.def(
      "panoptic_fusion_heuristic(Tensor semantic, Tensor masks, Tensor? boxes, Tensor scores, Tensor labels, "
      "float overlap_threshold, int stuff_area_threshold, float score_threshold, int[] thing_ids) -> (Tensor, Tensor)");
  m.def(
      "panoptic_fusion_efficientps(Tensor semantic_logits, Tensor mask_logits, Tensor boxes, Tensor scores, "
      "Tensor labels, int[] stuff_ids, float score_threshold, float overlap_threshold, int min_stuff_area, "
      "bool pasted) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(fastseg, CPU, m) {
  fastseg::panoptic::register_kernels<fastseg::CpuBackend>(m);
}
