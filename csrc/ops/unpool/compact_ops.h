// Unpooling family, max_pool2d_compact, max_unpool2d_compact and their backwards: checks (windows
// of at most 255 elements: uint8 offsets), the pooled size, allocation, the offset validation and
// the choice of body (docs/design.md §2, §5.1). Templated on the backend, registered in
// unpool_ops.h; the bodies are in compact.h.
#pragma once

#include <tuple>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/core/DeviceGuard.h>

#include "common/checks.h"
#include "common/tensor_view.h"
#include "ops/unpool/compact.h"
#include "ops/unpool/unpool_ops_common.h"

namespace fastseg {
namespace unpool {

constexpr int64_t kMaxCompactWindow = 255;  // uint8 offsets

inline void check_compact_window(const char* op, c10::IntArrayRef k) {
  // Compare each side first: the product of two large sides could wrap around.
  TORCH_CHECK(k[0] <= kMaxCompactWindow && k[1] <= kMaxCompactWindow && k[0] * k[1] <= kMaxCompactWindow, "fastseg.",
              op, ": kernel_size ", k, " has more than ", kMaxCompactWindow,
              " elements; uint8 offsets allow at most ", kMaxCompactWindow);
}

[[noreturn]] inline void raise_bad_offset(const char* op, c10::IntArrayRef k, int64_t H, int64_t W) {
  TORCH_CHECK(false, "fastseg.", op, ": offsets must be < kernel_size[0]*kernel_size[1] = ", k[0] * k[1],
              " and point inside the ", H, "x", W, " plane (as max_pool2d_compact produces them)");
}

// PyTorch's pooling_output_shape (dilation 1).
inline int64_t pooled_size(int64_t size, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  const int64_t num = size + 2 * p - (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= size + p) --out;
  return out;
}

template <typename Backend>
std::tuple<at::Tensor, at::Tensor> max_pool2d_compact(const at::Tensor& input, c10::IntArrayRef k,
                                                      c10::IntArrayRef s, c10::IntArrayRef p, bool ceil_mode) {
  const char* op = "max_pool2d_compact";
  check_rank(input, 4, op, "input");
  check_floating(input, op, "input");
  check_geometry(op, k, s, p);
  check_compact_window(op, k);
  TORCH_CHECK(p[0] <= k[0] / 2 && p[1] <= k[1] / 2, "fastseg.", op,
              ": padding must be at most half of kernel_size, got padding ", p, " for kernel_size ", k);
  const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  TORCH_CHECK(H > 0 && W > 0, "fastseg.", op, ": input must have non-zero height and width, got ", input.sizes());
  const int64_t oh = pooled_size(H, k[0], s[0], p[0], ceil_mode), ow = pooled_size(W, k[1], s[1], p[1], ceil_mode);
  TORCH_CHECK(oh >= 1 && ow >= 1, "fastseg.", op, ": input of size ", H, "x", W, " is too small for kernel_size ", k,
              " and padding ", p, " (output would be ", oh, "x", ow, ")");
  c10::DeviceGuard guard(input.device());
  auto values = empty_4d(input, N, C, oh, ow, input.scalar_type());
  auto offsets = empty_4d(input, N, C, oh, ow, at::kByte);
  if (values.numel() == 0) return {values, offsets};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastseg.max_pool2d_compact", [&] {
    Backend::for_each_4d(shape4(values),
                         MaxPoolCompact<scalar_t>{input.const_data_ptr<scalar_t>(), values.mutable_data_ptr<scalar_t>(),
                                                  offsets.mutable_data_ptr<uint8_t>(), strides4(input),
                                                  geom(k, s, p, 0, H), geom(k, s, p, 1, W), ow});
  });
  return {values, offsets};
}

// Checks shared by the three ops that read offsets.
inline void check_offsets(const char* op, const at::Tensor& values, const char* values_name, const at::Tensor& offsets) {
  check_rank(values, 4, op, values_name);
  check_floating(values, op, values_name);
  check_dtype(offsets, at::kByte, op, "offsets");
  check_same_shape(values, offsets, op, values_name, "offsets");
  check_same_device(values, offsets, op, values_name, "offsets");
}

template <typename Backend>
void validate_offsets(const char* op, const at::Tensor& offsets, c10::IntArrayRef k, c10::IntArrayRef s,
                      c10::IntArrayRef p, int64_t H, int64_t W) {
  const Geom gh = geom(k, s, p, 0, offsets.size(2)), gw = geom(k, s, p, 1, offsets.size(3));
  auto status = plane_status<Backend>(offsets, OffsetCheck{offsets.const_data_ptr<uint8_t>(), strides4(offsets), gh, gw, H, W});
  if (worst(status) != kInWindow) raise_bad_offset(op, k, H, W);
}

template <typename Backend>
at::Tensor max_pool2d_compact_backward(const at::Tensor& grad_values, const at::Tensor& offsets,
                                       c10::IntArrayRef input_size, c10::IntArrayRef k, c10::IntArrayRef s,
                                       c10::IntArrayRef p) {
  const char* op = "max_pool2d_compact_backward";
  check_offsets(op, grad_values, "grad_values", offsets);
  check_geometry(op, k, s, p);
  check_compact_window(op, k);
  check_pair(input_size, 0, op, "input_size");
  check_plane_size(op, "input_size", input_size[0], input_size[1]);
  c10::DeviceGuard guard(grad_values.device());
  const int64_t H = input_size[0], W = input_size[1];
  validate_offsets<Backend>(op, offsets, k, s, p, H, W);
  auto out = empty_4d(grad_values, grad_values.size(0), grad_values.size(1), H, W, grad_values.scalar_type());
  if (out.numel() == 0) return out;
  const Geom gh = geom(k, s, p, 0, offsets.size(2)), gw = geom(k, s, p, 1, offsets.size(3));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_values.scalar_type(), "fastseg.max_pool2d_compact_backward", [&] {
    if (gh.k <= gh.s && gw.k <= gw.s) {
      // Windows do not overlap, so each input pixel receives at most one gradient: this is
      // exactly unpooling the gradient (and gets its fast row kernel).
      Backend::for_each_4d(shape4(out), CompactUnpoolGather<scalar_t, false>{
                                            grad_values.const_data_ptr<scalar_t>(), offsets.const_data_ptr<uint8_t>(),
                                            out.mutable_data_ptr<scalar_t>(), strides4(grad_values), strides4(offsets),
                                            gh, gw, W});
    } else {
      Backend::for_each_4d(shape4(out), CompactPoolBackward<scalar_t>{grad_values.const_data_ptr<scalar_t>(),
                                                                      offsets.const_data_ptr<uint8_t>(),
                                                                      out.mutable_data_ptr<scalar_t>(),
                                                                      strides4(grad_values), strides4(offsets), gh, gw});
    }
  });
  return out;
}

template <typename Backend>
at::Tensor max_unpool2d_compact(const at::Tensor& values, const at::Tensor& offsets, c10::IntArrayRef k,
                                c10::IntArrayRef s, c10::IntArrayRef p, c10::IntArrayRef output_size) {
  const char* op = "max_unpool2d_compact";
  check_offsets(op, values, "values", offsets);
  check_geometry(op, k, s, p);
  check_compact_window(op, k);
  check_pair(output_size, 0, op, "output_size");
  check_plane_size(op, "output_size", output_size[0], output_size[1]);
  check_unpool_size(op, values.size(2), values.size(3), k, s, p, output_size);
  c10::DeviceGuard guard(values.device());
  const int64_t H = output_size[0], W = output_size[1];
  auto out = empty_4d(values, values.size(0), values.size(1), H, W, values.scalar_type());
  if (values.size(0) * values.size(1) == 0) return out;
  // As in max_unpool2d: every valid offset is found exactly once by the gather; a validation
  // pass runs only to report an invalid one.
  int64_t found = 0;
  if (out.numel() > 0 && values.size(2) * values.size(3) > 0) {
    const Geom gh = geom(k, s, p, 0, values.size(2)), gw = geom(k, s, p, 1, values.size(3));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, values.scalar_type(), "fastseg.max_unpool2d_compact", [&] {
      with_overlap(gh, gw, [&](auto overlap) {
        found = Backend::for_each_4d(shape4(out), CompactUnpoolGather<scalar_t, decltype(overlap)::value>{
                                                      values.const_data_ptr<scalar_t>(), offsets.const_data_ptr<uint8_t>(),
                                                      out.mutable_data_ptr<scalar_t>(), strides4(values),
                                                      strides4(offsets), gh, gw, W});
      });
    });
  } else {
    out.zero_();
  }
  if (found != offsets.numel()) validate_offsets<Backend>(op, offsets, k, s, p, H, W);
  return out;
}

template <typename Backend>
at::Tensor max_unpool2d_compact_backward(const at::Tensor& grad_output, const at::Tensor& offsets, c10::IntArrayRef k,
                                         c10::IntArrayRef s, c10::IntArrayRef p) {
  const char* op = "max_unpool2d_compact_backward";
  check_rank(grad_output, 4, op, "grad_output");
  check_floating(grad_output, op, "grad_output");
  check_rank(offsets, 4, op, "offsets");
  check_dtype(offsets, at::kByte, op, "offsets");
  check_same_device(grad_output, offsets, op, "grad_output", "offsets");
  TORCH_CHECK(grad_output.size(0) == offsets.size(0) && grad_output.size(1) == offsets.size(1), "fastseg.", op,
              ": offsets must have the batch and channel sizes of grad_output ", grad_output.sizes(), ", got ",
              offsets.sizes());
  check_geometry(op, k, s, p);
  check_compact_window(op, k);
  c10::DeviceGuard guard(grad_output.device());
  const int64_t H = grad_output.size(2), W = grad_output.size(3);
  validate_offsets<Backend>(op, offsets, k, s, p, H, W);
  auto out = empty_4d(offsets, offsets.size(0), offsets.size(1), offsets.size(2), offsets.size(3),
                      grad_output.scalar_type());
  if (out.numel() == 0) return out;
  const Geom gh = geom(k, s, p, 0, offsets.size(2)), gw = geom(k, s, p, 1, offsets.size(3));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "fastseg.max_unpool2d_compact_backward", [&] {
    Backend::for_each_4d(shape4(out), CompactUnpoolBackward<scalar_t>{grad_output.const_data_ptr<scalar_t>(),
                                                                      offsets.const_data_ptr<uint8_t>(),
                                                                      out.mutable_data_ptr<scalar_t>(),
                                                                      strides4(grad_output), strides4(offsets), gh, gw});
  });
  return out;
}

}  // namespace unpool
}  // namespace fastseg
