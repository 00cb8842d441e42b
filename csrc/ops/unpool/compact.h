// Unpooling family, max_pool2d_compact and max_unpool2d_compact (the argmax as a uint8 offset in
// its window): the bodies of the pooling, the unpooling gather, both backwards and the offset
// check of the validation pass (docs/design.md §4, §5.1). The geometry and the shared gather are
// in unpool_common.h, the CPU row loops in unpool_rows_cpu.h, the flow in compact_ops.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <ATen/NumericUtils.h>
#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include "common/tensor_view.h"
#include "ops/unpool/unpool_common.h"
#include "ops/unpool/unpool_rows_cpu.h"  // run_row / run_plane only: the CPU row kernels

namespace fastseg {
namespace unpool {

// Offset o at pooled (i, j) is valid iff o < kh*kw and it points inside the H x W plane.
struct OffsetCheck {
  const uint8_t* off;
  Strides4 st;
  Geom gh, gw;
  int64_t H, W;
  C10_HOST_DEVICE int32_t operator()(int64_t n, int64_t c, int64_t i, int64_t j) const {
    const int64_t o = off[st.at(n, c, i, j)];
    if (o >= gh.k * gw.k) return kOutOfPlane;
    const int64_t y = i * gh.s - gh.p + o / gw.k, x = j * gw.s - gw.p + o % gw.k;
    return (y >= 0 && y < H && x >= 0 && x < W) ? kInWindow : kOutOfPlane;
  }
};

// Does the offset stored for window (i, j) point at (y, x)? (The caller guarantees that window
// (i, j) covers (y, x), so the expected offset lies in [0, kh*kw).)
C10_HOST_DEVICE inline bool offset_points_at(uint8_t o, int64_t y, int64_t x, int64_t i, int64_t j, const Geom& gh,
                                             const Geom& gw) {
  return int64_t(o) == (y - (i * gh.s - gh.p)) * gw.k + (x - (j * gw.s - gw.p));
}

template <typename scalar_t, bool kOverlap>
struct CompactUnpoolGather {
  const scalar_t* in;
  const uint8_t* off;
  scalar_t* out;
  Strides4 in_st, off_st;
  Geom gh, gw;
  int64_t W;  // output width
  C10_HOST_DEVICE Axis row(int64_t y) const { return covering_windows(y, gh); }
  C10_HOST_DEVICE Axis col(int64_t x) const { return covering_windows(x, gw); }
  C10_HOST_DEVICE int64_t operator()(int64_t o, int64_t n, int64_t c, int64_t y, int64_t x, Axis ry, Axis cx) const {
    return gather_winner<kOverlap>(out + o, ry, cx, [&](int64_t i, int64_t j) {
      return offset_points_at(off[off_st.at(n, c, i, j)], y, x, i, j, gh, gw);
    }, [&](int64_t i, int64_t j) { return in[in_st.at(n, c, i, j)]; });
  }

  // Row form for the CPU, see unpool_row: an offset points into this row when its window row
  // offset / kw is the row's distance dy from the window top, i.e. offset - dy*kw lies in [0, kw).
  static constexpr bool kRowKernel = !kOverlap;
  int64_t run_row(int64_t off0, int64_t n, int64_t c, int64_t y, Axis ry, const Axis*, void* scratch) const {
    if (ry.a > ry.b) return unpool_row<scalar_t>(out + off0, scratch, W, nullptr, 0, gw, [](int64_t) { return int64_t(-1); });
    const uint8_t* op = off + off_st.at(n, c, ry.a, 0);
    const int64_t row_start = (y - (ry.a * gh.s - gh.p)) * gw.k;
    if (k2_row(gw.k, gw.s, gw.p, in_st.w, off_st.w)) {
      return unpool_row_k2(out + off0, W, in + in_st.at(n, c, ry.a, 0), gw.n,
                           [=](int64_t j) { return 2 * j + (int64_t(op[j]) - row_start); });
    }
    return unpool_row(out + off0, scratch, W, in + in_st.at(n, c, ry.a, 0), in_st.w, gw,
                      [&](int64_t j) { return j * gw.s - gw.p + (int64_t(op[j * off_st.w]) - row_start); });
  }

  // Plane form for the CPU, as MaxUnpoolGather's (points_at as in run_row).
  static constexpr bool kPlaneKernel = !kOverlap;
  bool plane_ok() const {
    return k2_row(gh.k, gh.s, gh.p, 1, 1) && k2_row(gw.k, gw.s, gw.p, in_st.w, off_st.w);
  }
  int64_t run_plane(int64_t off0, int64_t n, int64_t c, int64_t H, int64_t) const {
    const uint8_t* op = off + off_st.at(n, c, 0, 0);
    const int64_t rows = 2 * std::min(gh.n, H / 2);
    const int64_t hits = unpool_plane_k2(out + off0, W, rows, in + in_st.at(n, c, 0, 0), in_st.h, gw.n,
                                         [op, st = off_st.h, W = W](int64_t y, int64_t j) {
                                           // offset o of a 2x2 window: row o / 2, column o % 2
                                           const int64_t o = op[(y / 2) * st + j];
                                           return o < 4 ? (o >> 1) * W + 2 * j + (o & 1) : int64_t(-1);
                                         });
    return hits + plane_rows_after(*this, off0, n, c, rows, H, W);
  }
};

// Backward of max_pool2d_compact: grad_input[y, x] = sum of grad_values over the windows whose
// argmax is (y, x). A gather (no atomics), summed in a fixed order: deterministic.
template <typename scalar_t>
struct CompactPoolBackward {
  const scalar_t* grad;
  const uint8_t* off;
  scalar_t* out;
  Strides4 grad_st, off_st;
  Geom gh, gw;
  C10_HOST_DEVICE Axis row(int64_t y) const { return covering_windows(y, gh); }
  C10_HOST_DEVICE Axis col(int64_t x) const { return covering_windows(x, gw); }
  C10_HOST_DEVICE void operator()(int64_t o, int64_t n, int64_t c, int64_t y, int64_t x, Axis ry, Axis cx) const {
    using acc_t = at::opmath_type<scalar_t>;
    acc_t sum = acc_t(0);
    for (int64_t i = ry.a; i <= ry.b; ++i)
      for (int64_t j = cx.a; j <= cx.b; ++j)
        if (offset_points_at(off[off_st.at(n, c, i, j)], y, x, i, j, gh, gw)) sum += acc_t(grad[grad_st.at(n, c, i, j)]);
    out[o] = scalar_t(sum);
  }
};

// Backward of max_unpool2d_compact: grad_values[i, j] = grad_output at the position its offset names.
template <typename scalar_t>
struct CompactUnpoolBackward {
  const scalar_t* grad;
  const uint8_t* off;
  scalar_t* out;
  Strides4 grad_st, off_st;
  Geom gh, gw;
  C10_HOST_DEVICE Axis row(int64_t i) const { return window_start(i, gh); }
  C10_HOST_DEVICE Axis col(int64_t j) const { return window_start(j, gw); }
  C10_HOST_DEVICE void operator()(int64_t o, int64_t n, int64_t c, int64_t i, int64_t j, Axis ry, Axis cx) const {
    const int64_t k = off[off_st.at(n, c, i, j)];  // validated: inside the window and the plane
    out[o] = grad[grad_st.at(n, c, ry.a + k / gw.k, cx.a + k % gw.k)];
  }
};

// max_pool2d with the argmax as a window offset. Same comparisons as PyTorch's max_pool2d:
// scan row-major, take a value if it is greater than the best so far or NaN (so ties keep the
// first maximum and NaN propagates); start from the first in-bounds position with -inf.
template <typename scalar_t>
struct MaxPoolCompact {
  const scalar_t* in;
  scalar_t* values;
  uint8_t* offsets;
  Strides4 in_st;
  Geom gh, gw;  // n = input size along the axis
  C10_HOST_DEVICE Axis row(int64_t oh) const { return window_start(oh, gh); }
  C10_HOST_DEVICE Axis col(int64_t ow) const { return window_start(ow, gw); }
  C10_HOST_DEVICE void operator()(int64_t o, int64_t n, int64_t c, int64_t, int64_t, Axis ry, Axis cx) const {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t y0 = ry.a, x0 = cx.a;
    const int64_t h0 = y0 < 0 ? 0 : y0, h1 = y0 + gh.k < gh.n ? y0 + gh.k : gh.n;
    const int64_t w0 = x0 < 0 ? 0 : x0, w1 = x0 + gw.k < gw.n ? x0 + gw.k : gw.n;
    acc_t best = acc_t(-INFINITY);
    scalar_t best_value = scalar_t(best);
    int64_t by = h0, bx = w0;
    for (int64_t y = h0; y < h1; ++y) {
      for (int64_t x = w0; x < w1; ++x) {
        const scalar_t v = in[in_st.at(n, c, y, x)];
        const acc_t va = acc_t(v);
        if (va > best || at::_isnan(va)) {
          best = va;
          best_value = v;
          by = y;
          bx = x;
        }
      }
    }
    values[o] = best_value;
    offsets[o] = uint8_t((by - y0) * gw.k + (bx - x0));
  }

  // Row form for the CPU (contract in common/body.h): 2x2 / stride 2 / no padding
  // windows that lie wholly inside the input go through pool_row_k2 (unpool_rows_cpu.h), the rest
  // (ceil-mode edges, other geometries) through operator().
  int64_t ow = 0;  // output width, for the row form
  static constexpr bool kRowKernel = true;
  int64_t run_row(int64_t off0, int64_t n, int64_t c, int64_t oh, Axis ry, const Axis* cols, void*) const {
    int64_t done = 0;
    if (k2_row(gh.k, gh.s, gh.p, in_st.w, 1) && gw.k == 2 && gw.s == 2 && gw.p == 0 && ry.a + 1 < gh.n) {
      done = std::min(ow, gw.n / 2);
      pool_row_k2(values + off0, offsets + off0, in + in_st.at(n, c, ry.a, 0), in + in_st.at(n, c, ry.a + 1, 0), done);
    }
    for (int64_t x = done; x < ow; ++x) (*this)(off0 + x, n, c, oh, x, ry, cols[x]);
    return 0;
  }
};

}  // namespace unpool
}  // namespace fastseg
