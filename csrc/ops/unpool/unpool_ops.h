// Unpooling family: argument checks, output allocation, validation and kernel choice, written
// once for both backends. `Backend` is CpuBackend (unpool.cpp) or CudaBackend (unpool_cuda.cu);
// it only maps the bodies of unpool.h onto threads.
#pragma once

#include <limits>
#include <type_traits>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/core/DeviceGuard.h>

#include "common/checks.h"
#include "common/tensor_view.h"
#include "ops/unpool/unpool.h"

namespace fastseg {
namespace unpool {

constexpr int64_t kMaxCompactWindow = 255;  // uint8 offsets

// Bound on each geometry value, so that the window arithmetic (y + p, i * s, ...) cannot
// overflow int64; no real pooling window comes near it.
constexpr int64_t kMaxGeometry = int64_t(1) << 31;

inline void check_geometry(const char* op, c10::IntArrayRef k, c10::IntArrayRef s, c10::IntArrayRef p) {
  check_pair(k, 1, op, "kernel_size");
  check_pair(s, 1, op, "stride");
  check_pair(p, 0, op, "padding");
  for (auto [v, name] : {std::pair{k, "kernel_size"}, std::pair{s, "stride"}, std::pair{p, "padding"}}) {
    TORCH_CHECK(v[0] <= kMaxGeometry && v[1] <= kMaxGeometry, "fastseg.", op, ": ", name, " must be <= 2^31, got ", v);
  }
}

inline void check_compact_window(const char* op, c10::IntArrayRef k) {
  // Compare each side first: the product of two large sides could wrap around.
  TORCH_CHECK(k[0] <= kMaxCompactWindow && k[1] <= kMaxCompactWindow && k[0] * k[1] <= kMaxCompactWindow, "fastseg.",
              op, ": kernel_size ", k, " has more than ", kMaxCompactWindow,
              " elements; uint8 offsets allow at most ", kMaxCompactWindow);
}

// H * W must not wrap around (flat indices are int64).
inline void check_plane_size(const char* op, const char* name, int64_t H, int64_t W) {
  TORCH_CHECK(W == 0 || H <= std::numeric_limits<int64_t>::max() / W, "fastseg.", op, ": ", name, " ", H, "x", W,
              " is too large");
}

// PyTorch's rule for an explicit unpooling size (F.max_unpool2d): strictly within `stride` of the
// default (h - 1) * s - 2p + k. The Python wrapper checks it too, except on symbolic sizes
// (torch.export with dynamic shapes), where it cannot without specialising them: this is the check then.
inline void check_unpool_size(const char* op, int64_t h, int64_t w, c10::IntArrayRef k, c10::IntArrayRef s,
                              c10::IntArrayRef p, c10::IntArrayRef output_size) {
  const int64_t in[2] = {h, w};
  for (int d = 0; d < 2; ++d) {
    const int64_t def = (in[d] - 1) * s[d] - 2 * p[d] + k[d];
    TORCH_CHECK(def - s[d] < output_size[d] && output_size[d] < def + s[d], "fastseg.", op, ": output_size ",
                output_size, " is inconsistent with the pooling geometry: dimension ", d, " must be in (",
                def - s[d], ", ", def + s[d], ") exclusive (default ", def, ")");
  }
}

inline Geom geom(c10::IntArrayRef k, c10::IntArrayRef s, c10::IntArrayRef p, int d, int64_t n) {
  return {k[d], s[d], p[d], n};
}

// Calls f(std::bool_constant<overlap>) where overlap says whether windows can overlap.
template <typename F>
void with_overlap(const Geom& gh, const Geom& gw, const F& f) {
  if (gh.k > gh.s || gw.k > gw.s) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

// Runs a per-plane check on the backend; returns the per-plane status on the CPU (a sync on CUDA).
template <typename Backend, typename Check>
at::Tensor plane_status(const at::Tensor& t, const Check& check) {
  Shape4 s{t.size(0), t.size(1), t.size(2), t.size(3), false};
  return Backend::plane_status(s, check, t.options()).to(at::kCPU);
}

inline int32_t worst(const at::Tensor& status) {
  return status.numel() == 0 ? kInWindow : status.max().item<int32_t>();
}

// Error for flat indices outside [0, H*W): names the first offending value and its position.
[[noreturn]] inline void raise_index_out_of_plane(const char* op, const at::Tensor& indices, int64_t H, int64_t W) {
  auto bad = at::logical_or(indices < 0, indices >= H * W).nonzero();
  auto pos = bad[0].to(at::kCPU);
  auto where = pos.accessor<int64_t, 1>();
  int64_t value = indices.index({where[0], where[1], where[2], where[3]}).item<int64_t>();
  TORCH_CHECK(false, "fastseg.", op, ": indices must lie in [0, H*W) = [0, ", H * W, ") for an output of ", H, "x",
              W, ", got ", value, " at [", where[0], ", ", where[1], ", ", where[2], ", ", where[3], "]");
}

[[noreturn]] inline void raise_bad_offset(const char* op, c10::IntArrayRef k, int64_t H, int64_t W) {
  TORCH_CHECK(false, "fastseg.", op, ": offsets must be < kernel_size[0]*kernel_size[1] = ", k[0] * k[1],
              " and point inside the ", H, "x", W, " plane (as max_pool2d_compact produces them)");
}

// Planes whose indices no window of the geometry could produce (hand-made indices): recomputed
// with a scatter that gives PyTorch's result (the larger input position wins). Device-agnostic
// ATen code on the selected planes only; the common case never gets here.
inline void scatter_planes(at::Tensor& out, const at::Tensor& input, const at::Tensor& indices,
                           const at::Tensor& status) {
  auto planes = (status == kOutOfWindow).nonzero().flatten().to(out.device());
  const int64_t C = input.size(1), hw = input.size(2) * input.size(3), H = out.size(2), W = out.size(3);
  auto x = input.reshape({-1, hw}).index_select(0, planes);
  auto ix = indices.reshape({-1, hw}).index_select(0, planes);
  auto pos = at::arange(hw, ix.options()).expand_as(ix);
  auto winner = at::full({planes.size(0), H * W}, -1, ix.options()).scatter_reduce_(1, ix, pos, "amax", true);
  auto values = at::where(winner >= 0, x.gather(1, winner.clamp_min(0)), at::zeros({}, x.options()));
  out.index_put_({at::div(planes, C, "floor"), at::remainder(planes, C)}, values.view({-1, H, W}));
}

template <typename Backend>
at::Tensor max_unpool2d(const at::Tensor& input, const at::Tensor& indices, c10::IntArrayRef k, c10::IntArrayRef s,
                        c10::IntArrayRef p, c10::IntArrayRef output_size) {
  const char* op = "max_unpool2d";
  check_rank(input, 4, op, "input");
  check_floating(input, op, "input");
  check_dtype(indices, at::kLong, op, "indices");
  check_same_shape(input, indices, op, "input", "indices");
  check_same_device(input, indices, op, "input", "indices");
  check_geometry(op, k, s, p);
  check_pair(output_size, 0, op, "output_size");
  check_plane_size(op, "output_size", output_size[0], output_size[1]);
  check_unpool_size(op, input.size(2), input.size(3), k, s, p, output_size);
  c10::DeviceGuard guard(input.device());
  const int64_t N = input.size(0), C = input.size(1), h = input.size(2), w = input.size(3);
  const int64_t H = output_size[0], W = output_size[1];
  const Geom gh = geom(k, s, p, 0, h), gw = geom(k, s, p, 1, w);
  auto out = empty_4d(input, N, C, H, W, input.scalar_type());
  if (N * C == 0) return out;

  // Fast path: gather, counting the indices found from their own window. Only when some index
  // was not found (out of range: an error; or out of its window: hand-made indices) does a
  // validation pass run, and the scatter fallback for the planes that need it.
  int64_t found = 0;
  if (out.numel() > 0 && h * w > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastseg.max_unpool2d", [&] {
      with_overlap(gh, gw, [&](auto overlap) {
        found = Backend::for_each_4d(shape4(out), MaxUnpoolGather<scalar_t, decltype(overlap)::value>{
                                                      input.const_data_ptr<scalar_t>(), indices.const_data_ptr<int64_t>(),
                                                      out.mutable_data_ptr<scalar_t>(), strides4(input),
                                                      strides4(indices), gh, gw, W});
      });
    });
  } else {
    out.zero_();
  }
  if (found != indices.numel()) {
    auto status = plane_status<Backend>(
        indices, FlatIndexCheck{indices.const_data_ptr<int64_t>(), strides4(indices), gh, gw, H, W});
    const int32_t bad = worst(status);
    if (bad == kOutOfPlane) raise_index_out_of_plane(op, indices, H, W);
    if (bad == kOutOfWindow) scatter_planes(out, input, indices, status);
  }
  return out;
}

template <typename Backend>
at::Tensor max_unpool2d_backward(const at::Tensor& grad_output, const at::Tensor& indices) {
  const char* op = "max_unpool2d_backward";
  check_rank(grad_output, 4, op, "grad_output");
  check_floating(grad_output, op, "grad_output");
  check_rank(indices, 4, op, "indices");
  check_dtype(indices, at::kLong, op, "indices");
  check_same_device(grad_output, indices, op, "grad_output", "indices");
  TORCH_CHECK(grad_output.size(0) == indices.size(0) && grad_output.size(1) == indices.size(1), "fastseg.", op,
              ": indices must have the batch and channel sizes of grad_output ", grad_output.sizes(), ", got ",
              indices.sizes());
  c10::DeviceGuard guard(grad_output.device());
  const int64_t H = grad_output.size(2), W = grad_output.size(3);
  auto out = empty_4d(indices, indices.size(0), indices.size(1), indices.size(2), indices.size(3),
                      grad_output.scalar_type());
  auto status = plane_status<Backend>(indices, FlatRangeCheck{indices.const_data_ptr<int64_t>(), strides4(indices), H * W});
  if (worst(status) == kOutOfPlane) raise_index_out_of_plane(op, indices, H, W);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "fastseg.max_unpool2d_backward", [&] {
    Backend::for_each_4d(shape4(out), MaxUnpoolBackward<scalar_t>{grad_output.const_data_ptr<scalar_t>(),
                                                                  indices.const_data_ptr<int64_t>(),
                                                                  out.mutable_data_ptr<scalar_t>(),
                                                                  strides4(grad_output), strides4(indices), H, W,
                                                                  grad_output.stride(3) == 1 && grad_output.stride(2) == W});
  });
  return out;
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
