// Mask pasting: checks and flow, written once for both backends (math in paste_masks.h).
#pragma once

#include <optional>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/core/DeviceGuard.h>

#include "common/checks.h"
#include "common/tensor_view.h"
#include "ops/paste_masks/paste_masks.h"

namespace fastseg {
namespace paste_masks {

template <typename Backend>
at::Tensor paste_masks(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width,
                       std::optional<double> threshold) {
  const char* op = "paste_masks";
  check_rank(masks, 3, op, "masks");
  check_floating(masks, op, "masks");
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "fastseg.", op, ": boxes must have shape [K, 4], got ",
              boxes.sizes());
  check_floating(boxes, op, "boxes");
  check_same_device(masks, boxes, op, "masks", "boxes");
  TORCH_CHECK(boxes.size(0) == masks.size(0), "fastseg.", op, ": boxes must have one row per mask (", masks.size(0),
              "), got ", boxes.size(0));
  TORCH_CHECK(height >= 0 && width >= 0, "fastseg.", op, ": image_size must be >= 0, got [", height, ", ", width, "]");
  const int64_t K = masks.size(0);
  TORCH_CHECK(K == 0 || (masks.size(1) > 0 && masks.size(2) > 0), "fastseg.", op,
              ": masks must have non-empty [M, M] planes, got ", masks.sizes());
  TORCH_CHECK(!threshold.has_value() || !std::isnan(*threshold), "fastseg.", op, ": threshold must not be NaN");
  c10::DeviceGuard guard(masks.device());
  auto out = at::zeros({K, height, width}, masks.options().dtype(threshold.has_value() ? at::kBool : masks.scalar_type()));
  if (out.numel() == 0) return out;
  const auto acc = masks.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto b = boxes.to(acc).contiguous();
  const Shape4 rows{1, K, height, 1, false};  // one body call per (mask, image row)
  const Strides4 ms{masks.stride(0), 0, masks.stride(1), masks.stride(2)};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, masks.scalar_type(), "fastseg.paste_masks", [&] {
    using T = at::opmath_type<scalar_t>;
    if (threshold.has_value()) {
      Backend::for_each_4d(rows, PasteRow<scalar_t, bool>{masks.const_data_ptr<scalar_t>(), b.const_data_ptr<T>(),
                                                          out.mutable_data_ptr<bool>(), ms, masks.size(1),
                                                          masks.size(2), height, width, T(*threshold)});
    } else {
      Backend::for_each_4d(rows, PasteRow<scalar_t, scalar_t>{masks.const_data_ptr<scalar_t>(), b.const_data_ptr<T>(),
                                                              out.mutable_data_ptr<scalar_t>(), ms, masks.size(1),
                                                              masks.size(2), height, width, T(0)});
    }
  });
  return out;
}

template <typename Backend>
void register_kernels(torch::Library& m) {
  m.impl("paste_masks", &paste_masks<Backend>);
}

}  // namespace paste_masks
}  // namespace fastseg
