// Unpooling family, unpool_nearest2d, unpool_bed_of_nails2d and their backwards: one flow for
// the forwards and one for the backwards (checks, output size, allocation), the body a template
// argument (docs/design.md §2, §5.1). Templated on the backend, registered in unpool_ops.h; the
// bodies are in scale.h.
#pragma once

#include <limits>
#include <type_traits>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/core/DeviceGuard.h>

#include "common/checks.h"
#include "common/tensor_view.h"
#include "ops/unpool/scale.h"

namespace fastseg {
namespace unpool {

// Bodies with a CPU row form (NearestForward, NearestBackward) carry the row width `w`.
template <typename B, typename = void>
struct has_row_width : std::false_type {};
template <typename B>
struct has_row_width<B, std::void_t<decltype(std::declval<B&>().w)>> : std::true_type {};
template <typename B>
B with_row_width(B body, int64_t w) {
  if constexpr (has_row_width<B>::value) body.w = w;
  return body;
}

// Nearest and bed-of-nails share their checks and shapes; Body selects the kernel.
template <typename Backend, template <typename> class Body>
at::Tensor scale_unpool(const char* op, const at::Tensor& input, c10::IntArrayRef scale) {
  check_rank(input, 4, op, "input");
  check_floating(input, op, "input");
  check_pair(scale, 1, op, "scale_factor");
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  TORCH_CHECK(input.size(2) <= kMax / scale[0] && input.size(3) <= kMax / scale[1], "fastseg.", op,
              ": scale_factor ", scale, " is too large for input ", input.sizes(), " (the output size overflows)");
  c10::DeviceGuard guard(input.device());
  auto out = empty_4d(input, input.size(0), input.size(1), input.size(2) * scale[0], input.size(3) * scale[1],
                      input.scalar_type());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastseg.scale_unpool", [&] {
    Backend::for_each_4d(shape4(out), with_row_width(Body<scalar_t>{input.const_data_ptr<scalar_t>(),
                                                                    out.mutable_data_ptr<scalar_t>(), strides4(input),
                                                                    scale[0], scale[1]},
                                                     input.size(3)));
  });
  return out;
}

template <typename Backend, template <typename> class Body>
at::Tensor scale_unpool_backward(const char* op, const at::Tensor& grad_output, c10::IntArrayRef scale) {
  check_rank(grad_output, 4, op, "grad_output");
  check_floating(grad_output, op, "grad_output");
  check_pair(scale, 1, op, "scale_factor");
  TORCH_CHECK(grad_output.size(2) % scale[0] == 0 && grad_output.size(3) % scale[1] == 0, "fastseg.", op,
              ": grad_output height and width must be multiples of scale_factor ", scale, ", got ", grad_output.sizes());
  c10::DeviceGuard guard(grad_output.device());
  auto out = empty_4d(grad_output, grad_output.size(0), grad_output.size(1), grad_output.size(2) / scale[0],
                      grad_output.size(3) / scale[1], grad_output.scalar_type());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "fastseg.scale_unpool_backward", [&] {
    Backend::for_each_4d(shape4(out), with_row_width(Body<scalar_t>{grad_output.const_data_ptr<scalar_t>(),
                                                                    out.mutable_data_ptr<scalar_t>(),
                                                                    strides4(grad_output), scale[0], scale[1]},
                                                     out.size(3)));
  });
  return out;
}

template <typename Backend>
at::Tensor unpool_nearest2d(const at::Tensor& input, c10::IntArrayRef scale) {
  return scale_unpool<Backend, NearestForward>("unpool_nearest2d", input, scale);
}
template <typename Backend>
at::Tensor unpool_nearest2d_backward(const at::Tensor& grad, c10::IntArrayRef scale) {
  return scale_unpool_backward<Backend, NearestBackward>("unpool_nearest2d_backward", grad, scale);
}
template <typename Backend>
at::Tensor unpool_bed_of_nails2d(const at::Tensor& input, c10::IntArrayRef scale) {
  return scale_unpool<Backend, BedOfNailsForward>("unpool_bed_of_nails2d", input, scale);
}
template <typename Backend>
at::Tensor unpool_bed_of_nails2d_backward(const at::Tensor& grad, c10::IntArrayRef scale) {
  return scale_unpool_backward<Backend, BedOfNailsBackward>("unpool_bed_of_nails2d_backward", grad, scale);
}

}  // namespace unpool
}  // namespace fastseg
