// Unpooling family, max_unpool2d (int64 flat indices): the bodies of the forward gather (with its
// CPU row and plane forms) and of the backward, and the index checks of the validation pass
// (docs/design.md §4, §5.1). The geometry and the shared gather are in unpool_common.h, the CPU
// row loops in unpool_rows_cpu.h, the flow in max_unpool_ops.h.
#pragma once

#include <algorithm>
#include <cstdint>

#include <c10/macros/Macros.h>

#include "common/tensor_view.h"
#include "ops/unpool/unpool_common.h"
#include "ops/unpool/unpool_rows_cpu.h"  // run_row / run_plane only: the CPU row kernels

namespace fastseg {
namespace unpool {

// Flat index v stored at pooled position (i, j) of an output plane H x W.
C10_HOST_DEVICE inline int32_t flat_index_status(int64_t v, int64_t i, int64_t j, const Geom& gh, const Geom& gw,
                                                 int64_t H, int64_t W) {
  if (!(v >= 0 && v < H * W)) return kOutOfPlane;
  const int64_t y0 = i * gh.s - gh.p, x0 = j * gw.s - gw.p;
  const int64_t r0 = y0 < 0 ? 0 : y0, r1 = y0 + gh.k < H ? y0 + gh.k : H;
  const int64_t c0 = x0 < 0 ? 0 : x0, c1 = x0 + gw.k < W ? x0 + gw.k : W;
  // k row segments [r*W + c0, r*W + c1): no division per index.
  for (int64_t r = r0; r < r1; ++r) {
    if (v >= r * W + c0 && v < r * W + c1) return kInWindow;
  }
  return kOutOfWindow;
}

struct FlatIndexCheck {
  const int64_t* idx;
  Strides4 st;
  Geom gh, gw;
  int64_t H, W;
  C10_HOST_DEVICE int32_t operator()(int64_t n, int64_t c, int64_t i, int64_t j) const {
    return flat_index_status(idx[st.at(n, c, i, j)], i, j, gh, gw, H, W);
  }
};

// out[n, c, y, x] = input at the largest pooled position (i, j) whose index is y*W + x, else 0.
// Returns how many indices point at (y, x) from a window that covers it; the flow compares the
// total with the number of indices, so a full validation pass is needed only when some index
// is out of range or out of its window.
// kOverlap = false when kernel_size <= stride on both axes: then at most one window covers a pixel
// and the search is a single compare (the SegNet/DeconvNet case, kept branch-free for speed).
template <typename scalar_t, bool kOverlap>
struct MaxUnpoolGather {
  const scalar_t* in;
  const int64_t* idx;
  scalar_t* out;
  Strides4 in_st, idx_st;
  Geom gh, gw;
  int64_t W;
  C10_HOST_DEVICE Axis row(int64_t y) const { return covering_windows(y, gh); }
  C10_HOST_DEVICE Axis col(int64_t x) const { return covering_windows(x, gw); }
  C10_HOST_DEVICE int64_t operator()(int64_t off, int64_t n, int64_t c, int64_t y, int64_t x, Axis ry, Axis cx) const {
    const int64_t target = y * W + x;
    return gather_winner<kOverlap>(out + off, ry, cx, [&](int64_t i, int64_t j) {
      return idx[idx_st.at(n, c, i, j)] == target;
    }, [&](int64_t i, int64_t j) { return in[in_st.at(n, c, i, j)]; });
  }

  // Row form for the CPU (contract in common/body.h), see unpool_row.
  static constexpr bool kRowKernel = !kOverlap;
  int64_t run_row(int64_t off0, int64_t n, int64_t c, int64_t y, Axis ry, const Axis*, void* scratch) const {
    if (ry.a > ry.b) return unpool_row<scalar_t>(out + off0, scratch, W, nullptr, 0, gw, [](int64_t) { return int64_t(-1); });
    const int64_t* ip = idx + idx_st.at(n, c, ry.a, 0);
    const int64_t row0 = y * W;
    if (k2_row(gw.k, gw.s, gw.p, in_st.w, idx_st.w)) {
      return unpool_row_k2(out + off0, W, in + in_st.at(n, c, ry.a, 0), gw.n,
                           [=](int64_t j) { return ip[j] - row0; });
    }
    return unpool_row(out + off0, scratch, W, in + in_st.at(n, c, ry.a, 0), in_st.w, gw,
                      [&](int64_t j) { return ip[j * idx_st.w] - row0; });
  }

  // Plane form for the CPU (contract in common/body.h): 2x2 / stride 2 / no padding. Below
  // kFlatScatterMaxWindows windows per row it is PyTorch's scatter, which writes the flow's
  // final result (max_unpool2d's, out-of-window indices included) and counts the in-range
  // indices: equal to the total only when the validation pass would find nothing to do.
  static constexpr bool kPlaneKernel = !kOverlap;
  bool plane_ok() const {
    return k2_row(gh.k, gh.s, gh.p, 1, 1) && k2_row(gw.k, gw.s, gw.p, in_st.w, idx_st.w);
  }
  int64_t run_plane(int64_t off0, int64_t n, int64_t c, int64_t H, int64_t) const {
    const int64_t* ip = idx + idx_st.at(n, c, 0, 0);
    if (gw.n < kFlatScatterMaxWindows) {  // up to a few dozen windows per row: PyTorch's own scatter
      return max_unpool_plane_scatter(out + off0, H, W, in + in_st.at(n, c, 0, 0), in_st.h, ip, idx_st.h, gh.n,
                                      gw.n);
    }
    const int64_t rows = 2 * std::min(gh.n, H / 2);  // the rows of full window rows
    const int64_t hits = unpool_plane_k2(out + off0, W, rows, in + in_st.at(n, c, 0, 0), in_st.h, gw.n,
                                         [ip, st = idx_st.h, W = W](int64_t y, int64_t j) {
                                           return ip[(y / 2) * st + j] - y * W;  // from row y's start
                                         });
    return hits + plane_rows_after(*this, off0, n, c, rows, H, W);
  }
};

// grad_input[n, c, i, j] = grad_output[n, c, plane position idx[n, c, i, j]]. Returns 1 per index
// inside the H x W plane (an index outside it reads nothing and writes 0): the flow compares the
// total with the number of indices, so the range is validated without a pass of its own.
template <typename scalar_t>
struct MaxUnpoolBackward {
  const scalar_t* grad;
  const int64_t* idx;
  scalar_t* out;
  Strides4 grad_st, idx_st;
  int64_t H, W;
  bool grad_plane_flat;  // grad_st.w == 1 && grad_st.h == W
  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE int64_t operator()(int64_t off, int64_t n, int64_t c, int64_t i, int64_t j, Axis, Axis) const {
    const int64_t v = idx[idx_st.at(n, c, i, j)];
    const bool inside = uint64_t(v) < uint64_t(H * W);
    const int64_t u = inside ? v : 0;
    // A row-major plane (the usual case) is indexed by v directly, without a division.
    const int64_t pos = grad_plane_flat ? u : (u / W) * grad_st.h + (u % W) * grad_st.w;
    out[off] = inside ? grad[n * grad_st.n + c * grad_st.c + pos] : scalar_t(0);
    return inside;
  }

  // Plane form for the CPU (contract in common/body.h): a contiguous index plane and a
  // row-major grad plane make the plane one flat gather; the pooled rows (7 to 30 windows in
  // SegNet and DeconvNet) are too short to pay for a call each.
  static constexpr bool kPlaneKernel = true;
  int64_t h = 0, w = 0;  // the index plane, set by the flow
  bool plane_ok() const { return grad_plane_flat && idx_st.w == 1 && idx_st.h == w; }
  int64_t run_plane(int64_t off0, int64_t n, int64_t c, int64_t, int64_t) const {
    return gather_plane(out + off0, grad + n * grad_st.n + c * grad_st.c, idx + idx_st.at(n, c, 0, 0), h * w, H * W);
  }
};

}  // namespace unpool
}  // namespace fastseg
