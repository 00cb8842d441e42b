// CUDA thread mapping for the shared kernel bodies (see body.h for the body contract): a capped
// grid-stride loop over the output in memory order, on the current stream. The only
// CUDA-specific code is here: index decomposition (fast 32-bit division when sizes allow),
// launch configuration and launch checks. The per-element work is the body the CPU also runs.
// Includes nothing CPU-only (not cpu_backend.h): a CUDA translation unit must not instantiate
// at::parallel_for or a CPU flow (docs/design.md §4).
#pragma once

#include <algorithm>
#include <limits>

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/detail/IntegerDivider.cuh>
#include <c10/cuda/CUDAException.h>

#include "common/body.h"  // the body contract, counts<Body>, no_axis_tables<Body>
#include "common/tensor_view.h"

namespace fastseg {
namespace cuda_detail {

constexpr int kThreads = 256;

inline int64_t num_blocks(int64_t n) {
  const int64_t cap = int64_t(at::cuda::getCurrentDeviceProperties()->multiProcessorCount) * 16;
  const int64_t want = (n + kThreads - 1) / kThreads;
  return std::max<int64_t>(1, std::min(want, cap));
}

template <typename Body>
__global__ void axis_tables_kernel(Body body, int64_t H, int64_t W, Axis* rows, Axis* cols) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < H + W; i += int64_t(blockDim.x) * gridDim.x) {
    if (i < H) {
      rows[i] = body.row(i);
    } else {
      cols[i - H] = body.col(i - H);
    }
  }
}

// off -> (n, c, y, x). Dividers hold the three innermost sizes in memory order:
// NCHW: (W, H, C), NHWC: (C, W, H).
template <typename index_t>
struct Decompose {
  at::cuda::detail::IntDivider<index_t> d0, d1, d2;
  bool channels_last;
  __device__ void operator()(index_t off, int64_t& n, int64_t& c, int64_t& y, int64_t& x) const {
    auto q0 = d0.divmod(off);
    auto q1 = d1.divmod(q0.div);
    auto q2 = d2.divmod(q1.div);
    if (channels_last) {
      c = q0.mod, x = q1.mod, y = q2.mod, n = q2.div;
    } else {
      x = q0.mod, y = q1.mod, c = q2.mod, n = q2.div;
    }
  }
};

template <typename index_t>
Decompose<index_t> make_decompose(const Shape4& s) {
  using D = at::cuda::detail::IntDivider<index_t>;
  if (s.channels_last) return {D(index_t(s.C)), D(index_t(s.W)), D(index_t(s.H)), true};
  return {D(index_t(s.W)), D(index_t(s.H)), D(index_t(s.C)), false};
}

// rows / cols: the tables of body.row(y) / body.col(x), or null for bodies with kNoAxisTables,
// which compute them inline.
template <typename index_t, typename Body>
__global__ void for_each_4d_kernel(Body body, Decompose<index_t> dec, index_t numel, const Axis* rows,
                                   const Axis* cols, unsigned long long* total) {
  int64_t count = 0;
  for (index_t off = index_t(blockIdx.x) * blockDim.x + threadIdx.x; off < numel;
       off += index_t(blockDim.x) * gridDim.x) {
    int64_t n, c, y, x;
    dec(off, n, c, y, x);
    Axis ry, cx;
    if constexpr (no_axis_tables<Body>) {
      ry = body.row(y);
      cx = body.col(x);
    } else {
      ry = rows[y];
      cx = cols[x];
    }
    if constexpr (counts<Body>) {
      count += body(int64_t(off), n, c, y, x, ry, cx);
    } else {
      body(int64_t(off), n, c, y, x, ry, cx);
    }
  }
  if constexpr (counts<Body>) {
    // Warp sum, then one atomic per warp. Every lane of the warp reaches this point.
    for (int delta = 16; delta > 0; delta /= 2) count += __shfl_down_sync(0xffffffffu, count, delta);
    if ((threadIdx.x & 31) == 0 && count != 0) atomicAdd(total, static_cast<unsigned long long>(count));
  }
}

template <typename Body>
__global__ void for_each_index_kernel(Body body, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x) {
    body(i);
  }
}

template <typename Check>
__global__ void plane_status_kernel(Check check, Shape4 s, int32_t* status) {
  const int64_t numel = s.numel();
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < numel; e += int64_t(blockDim.x) * gridDim.x) {
    const int64_t j = e % s.W, t = e / s.W;
    const int64_t i = t % s.H, nc = t / s.H;
    const int32_t v = check(nc / s.C, nc % s.C, i, j);
    if (v > 0) atomicMax(status + nc, v);
  }
}

}  // namespace cuda_detail

struct CudaBackend {
  // Shared flows select their CPU-only paths with `if constexpr (Backend::kIsCpu)`: discarded here.
  static constexpr bool kIsCpu = false;

  // Returns the total of the body's counts (a device-to-host copy, so a sync) when it counts,
  // else 0 without synchronising. One launch for bodies with kNoAxisTables; otherwise the row and
  // column tables are computed first (one more launch and an allocation of H + W entries).
  template <typename Body>
  static int64_t for_each_4d(const Shape4& s, const Body& body) {
    const int64_t numel = s.numel();
    if (numel == 0) return 0;
    auto stream = at::cuda::getCurrentCUDAStream();
    const auto device_opts = at::TensorOptions().device(at::kCUDA, at::cuda::current_device());
    at::Tensor tables;
    const Axis* rows = nullptr;
    const Axis* cols = nullptr;
    if constexpr (!no_axis_tables<Body>) {
      // Row and column tables: H + W entries, computed once so the main loop does no division
      // beyond the index decomposition.
      tables = at::empty({(s.H + s.W) * int64_t(sizeof(Axis))}, device_opts.dtype(at::kByte));
      Axis* table_rows = reinterpret_cast<Axis*>(tables.mutable_data_ptr<uint8_t>());
      cuda_detail::axis_tables_kernel<<<cuda_detail::num_blocks(s.H + s.W), cuda_detail::kThreads, 0, stream>>>(
          body, s.H, s.W, table_rows, table_rows + s.H);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      rows = table_rows;
      cols = table_rows + s.H;
    }
    const auto blocks = cuda_detail::num_blocks(numel);
    at::Tensor total;
    unsigned long long* total_ptr = nullptr;
    if constexpr (counts<Body>) {
      total = at::zeros({1}, device_opts.dtype(at::kLong));
      total_ptr = reinterpret_cast<unsigned long long*>(total.mutable_data_ptr<int64_t>());
    }
    // 32-bit offsets (fast magic-number division) whenever the output allows it.
    if (numel <= int64_t(std::numeric_limits<int32_t>::max())) {
      cuda_detail::for_each_4d_kernel<uint32_t><<<blocks, cuda_detail::kThreads, 0, stream>>>(
          body, cuda_detail::make_decompose<uint32_t>(s), uint32_t(numel), rows, cols, total_ptr);
    } else {
      cuda_detail::for_each_4d_kernel<int64_t><<<blocks, cuda_detail::kThreads, 0, stream>>>(
          body, cuda_detail::make_decompose<int64_t>(s), numel, rows, cols, total_ptr);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if constexpr (counts<Body>) return total.item<int64_t>();
    return 0;
  }

  // body(i) for i in [0, n), one thread each (grid-stride), on the current stream.
  template <typename Body>
  static void for_each_index(int64_t n, const Body& body) {
    if (n == 0) return;
    cuda_detail::for_each_index_kernel<<<cuda_detail::num_blocks(n), cuda_detail::kThreads, 0,
                                         at::cuda::getCurrentCUDAStream()>>>(body, n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <typename Check>
  static at::Tensor plane_status(const Shape4& s, const Check& check, const at::TensorOptions& device_opts) {
    auto status = at::zeros({s.N * s.C}, device_opts.dtype(at::kInt));
    if (s.numel() == 0) return status;
    auto stream = at::cuda::getCurrentCUDAStream();
    cuda_detail::plane_status_kernel<<<cuda_detail::num_blocks(s.numel()), cuda_detail::kThreads, 0, stream>>>(
        check, s, status.mutable_data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return status;
  }
};

}  // namespace fastseg
