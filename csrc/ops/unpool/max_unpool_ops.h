// Unpooling family, max_unpool2d and max_unpool2d_backward: checks, allocation, the counting
// gather and, when some index was not found, the validation pass with its error and its scatter
// fallback (docs/design.md §2, §5.1). Templated on the backend, registered in unpool_ops.h; the
// bodies are in max_unpool.h.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/core/DeviceGuard.h>

#include "common/checks.h"
#include "common/tensor_view.h"
#include "ops/unpool/max_unpool.h"
#include "ops/unpool/unpool_ops_common.h"

namespace fastseg {
namespace unpool {

// Error for flat indices outside [0, H*W): names the first offending value and its position.
[[noreturn]] inline void raise_index_out_of_plane(const char* op, const at::Tensor& indices, int64_t H, int64_t W) {
  auto bad = at::logical_or(indices < 0, indices >= H * W).nonzero();
  auto pos = bad[0].to(at::kCPU);
  auto where = pos.accessor<int64_t, 1>();
  int64_t value = indices.index({where[0], where[1], where[2], where[3]}).item<int64_t>();
  TORCH_CHECK(false, "fastseg.", op, ": indices must lie in [0, H*W) = [0, ", H * W, ") for an output of ", H, "x",
              W, ", got ", value, " at [", where[0], ", ", where[1], ", ", where[2], ", ", where[3], "]");
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
  if (out.numel() == 0) return out;
  // The gather counts the indices inside the plane; any other is an error, found by a second
  // look only then.
  int64_t found = 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "fastseg.max_unpool2d_backward", [&] {
    MaxUnpoolBackward<scalar_t> body{grad_output.const_data_ptr<scalar_t>(), indices.const_data_ptr<int64_t>(),
                                     out.mutable_data_ptr<scalar_t>(), strides4(grad_output), strides4(indices), H, W,
                                     grad_output.stride(3) == 1 && grad_output.stride(2) == W};
    body.h = indices.size(2), body.w = indices.size(3);
    found = Backend::for_each_4d(shape4(out), body);
  });
  if (found != indices.numel()) raise_index_out_of_plane(op, indices, H, W);
  return out;
}

}  // namespace unpool
}  // namespace fastseg
