// Unpooling family: the per-element math shared by the CPU and CUDA kernels.
//
// Every struct below is a *body* (contract in common/cpu_backend.h): it computes one output
// element; CpuBackend and CudaBackend only decide which thread runs which element. Index math is
// int64. Values are only moved, never combined, except in the backward sums (done in opmath).
#pragma once

#include <cmath>
#include <algorithm>
#include <cstring>
#include <type_traits>

#include <ATen/NumericUtils.h>
#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include "common/keep_or_zero.h"
#include "common/tensor_view.h"
#include "ops/unpool/unpool_rows_cpu.h"  // run_row only: the CPU row kernels

namespace fastseg {
namespace unpool {

// Pooling geometry along one axis: window i covers [i*s - p, i*s - p + k); n windows.
struct Geom {
  int64_t k, s, p, n;
};

// The windows i in [0, g.n) that cover position y, as an inclusive range {a, b} (empty if a > b).
C10_HOST_DEVICE inline Axis covering_windows(int64_t y, const Geom& g) {
  const int64_t t = y + g.p;  // >= 0
  int64_t hi = t / g.s;
  const int64_t lo_t = t - g.k + 1;
  const int64_t lo = lo_t <= 0 ? 0 : (lo_t + g.s - 1) / g.s;
  if (hi > g.n - 1) hi = g.n - 1;
  return {lo, hi};
}

// Window start (may be negative) in a, unused b.
C10_HOST_DEVICE inline Axis window_start(int64_t i, const Geom& g) { return {i * g.s - g.p, 0}; }

// Status codes of an index, maximised per plane.
constexpr int32_t kInWindow = 0;      // where the gather will find it
constexpr int32_t kOutOfWindow = 1;   // valid position, but no window of this geometry at (i, j) covers it
constexpr int32_t kOutOfPlane = 2;    // not a position of the output plane: an error

// The gather shared by both unpooling forwards: among the windows (i, j) in ry x cx that cover the
// pixel, those whose index points at it are matches; the one at the largest input position wins
// (PyTorch's sequential CPU result for duplicates). Writes the winner's value (or 0) to *out and
// returns the number of matches.
template <bool kOverlap, typename scalar_t, typename Match, typename Value>
C10_HOST_DEVICE inline int64_t gather_winner(scalar_t* out, Axis ry, Axis cx, const Match& match, const Value& value) {
  if (!kOverlap) {
    if (ry.a > ry.b || cx.a > cx.b) {  // no window covers the pixel (predictable per row/column)
      *out = scalar_t(0);
      return 0;
    }
    const bool m = match(ry.a, cx.a);
    *out = keep_or_zero(m, value(ry.a, cx.a));
    return m;
  }
  int64_t matches = 0;
  scalar_t v = scalar_t(0);
  // Descending (i, j) = descending flat input position: the first match is the winner.
  for (int64_t i = ry.b; i >= ry.a; --i) {
    for (int64_t j = cx.b; j >= cx.a; --j) {
      if (match(i, j)) {
        if (matches == 0) v = value(i, j);
        ++matches;
      }
    }
  }
  *out = v;
  return matches;
}

// CPU row form of the non-overlapping unpooling gathers (MaxUnpoolGather, CompactUnpoolGather):
// builds one output row of width W from its window row. points_at(j) is the column that window
// j's index names if it names this row (anything else is a miss); it is a hit when that column
// lies inside window j and the row. Visits each index once per output row instead of once per
// output pixel. The row is built in `scratch` (W + 1 elements: the last takes the stores of
// misses, so the store is unconditional, as a branch would mispredict half the time), then copied
// out. Returns the number of hits, as operator() would count them. values == nullptr: no window
// row covers this row, which is all zeros.
template <typename scalar_t, typename PointsAt>
inline int64_t unpool_row(scalar_t* out_row, void* scratch, int64_t W, const scalar_t* values, int64_t value_stride,
                          const Geom& gw, const PointsAt& points_at) {
  scalar_t* buf = static_cast<scalar_t*>(scratch);
  std::fill(buf, buf + W, scalar_t(0));
  int64_t hits = 0;
  for (int64_t j = 0; values != nullptr && j < gw.n; ++j) {
    const int64_t x0 = j * gw.s - gw.p;
    const int64_t x = points_at(j);
    const bool hit = (uint64_t(x - x0) < uint64_t(gw.k)) & (uint64_t(x) < uint64_t(W));
    hits += hit;
    buf[W + ((x - W) & -int64_t(hit))] = values[j * value_stride];  // x if hit, else W: no branch
  }
  std::copy(buf, buf + W, out_row);
  return hits;
}

// ---------------------------------------------------------------------------- max_unpool2d

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

// Range only (the backward has no geometry): kInWindow or kOutOfPlane.
struct FlatRangeCheck {
  const int64_t* idx;
  Strides4 st;
  int64_t plane;  // H * W
  C10_HOST_DEVICE int32_t operator()(int64_t n, int64_t c, int64_t i, int64_t j) const {
    const int64_t v = idx[st.at(n, c, i, j)];
    return (v >= 0 && v < plane) ? kInWindow : kOutOfPlane;
  }
};

struct FlatIndexCheck {
  const int64_t* idx;
  Strides4 st;
  Geom gh, gw;
  int64_t H, W;
  C10_HOST_DEVICE int32_t operator()(int64_t n, int64_t c, int64_t i, int64_t j) const {
    return flat_index_status(idx[st.at(n, c, i, j)], i, j, gh, gw, H, W);
  }
};

// Rows [first, H) of an H x W plane, which a k2 plane form (unpool_plane_k2) leaves to the
// per-element body (the one output row of a last, partial window row).
template <typename Body>
inline int64_t plane_rows_after(const Body& b, int64_t off0, int64_t n, int64_t c, int64_t first, int64_t H,
                                int64_t W) {
  int64_t hits = 0;
  for (int64_t y = first; y < H; ++y) {
    const Axis ry = b.row(y);
    for (int64_t x = 0; x < W; ++x) hits += b(off0 + y * W + x, n, c, y, x, ry, b.col(x));
  }
  return hits;
}

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

  // Row form for the CPU (contract in common/cpu_backend.h), see unpool_row.
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

  // Plane form for the CPU (contract in common/cpu_backend.h): 2x2 / stride 2 / no padding.
  static constexpr bool kPlaneKernel = !kOverlap;
  bool plane_ok() const {
    return k2_row(gh.k, gh.s, gh.p, 1, 1) && k2_row(gw.k, gw.s, gw.p, in_st.w, idx_st.w);
  }
  int64_t run_plane(int64_t off0, int64_t n, int64_t c, int64_t H, int64_t) const {
    const int64_t* ip = idx + idx_st.at(n, c, 0, 0);
    const int64_t rows = 2 * std::min(gh.n, H / 2);  // the rows of full window rows
    const int64_t hits = unpool_plane_k2(out + off0, W, rows, in + in_st.at(n, c, 0, 0), in_st.h, gw.n,
                                         [ip, st = idx_st.h, W = W](int64_t y, int64_t j) {
                                           return ip[(y / 2) * st + j] - y * W;
                                         });
    return hits + plane_rows_after(*this, off0, n, c, rows, H, W);
  }
};

// grad_input[n, c, i, j] = grad_output[n, c, plane position idx[n, c, i, j]].
template <typename scalar_t>
struct MaxUnpoolBackward {
  const scalar_t* grad;
  const int64_t* idx;
  scalar_t* out;
  Strides4 grad_st, idx_st;
  int64_t H, W;
  bool grad_plane_flat;  // grad_st.w == 1 && grad_st.h == W
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE void operator()(int64_t off, int64_t n, int64_t c, int64_t i, int64_t j, Axis, Axis) const {
    const int64_t v = idx[idx_st.at(n, c, i, j)];  // validated to lie in [0, H*W)
    // A row-major plane (the usual case) is indexed by v directly, without a division.
    const int64_t pos = grad_plane_flat ? v : (v / W) * grad_st.h + (v % W) * grad_st.w;
    out[off] = grad[n * grad_st.n + c * grad_st.c + pos];
  }
};

// ---------------------------------------------------------------------------- compact (uint8 offsets)

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
                                         [op, st = off_st.h](int64_t y, int64_t j) {
                                           return 2 * j + (int64_t(op[(y / 2) * st + j]) - 2 * (y % 2));
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

  // Row form for the CPU (contract in common/cpu_backend.h): 2x2 / stride 2 / no padding
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

// ---------------------------------------------------------------------------- nearest, bed of nails

template <typename scalar_t>
struct NearestForward {
  const scalar_t* in;
  scalar_t* out;
  Strides4 in_st;
  int64_t sh, sw;
  C10_HOST_DEVICE Axis row(int64_t y) const { return {y / sh, 0}; }
  C10_HOST_DEVICE Axis col(int64_t x) const { return {x / sw, 0}; }
  C10_HOST_DEVICE void operator()(int64_t o, int64_t n, int64_t c, int64_t, int64_t, Axis ry, Axis cx) const {
    out[o] = in[in_st.at(n, c, ry.a, cx.a)];
  }

  // Row form for the CPU (contract in common/cpu_backend.h).
  int64_t w = 0;  // input width
  static constexpr bool kRowKernel = true;
  int64_t run_row(int64_t off0, int64_t n, int64_t c, int64_t, Axis ry, const Axis* cols, void*) const {
    const scalar_t* r = in + in_st.at(n, c, ry.a, 0);
    if (sw == 2 && in_st.w == 1) {
      nearest_row_x2(out + off0, r, w);
    } else {
      for (int64_t x = 0; x < w * sw; ++x) out[off0 + x] = r[cols[x].a * in_st.w];
    }
    return 0;
  }
};

// grad_input[i, j] = sum of grad_output over block (i, j), in opmath, row-major order.
template <typename scalar_t>
struct NearestBackward {
  const scalar_t* grad;
  scalar_t* out;
  Strides4 grad_st;
  int64_t sh, sw;
  C10_HOST_DEVICE Axis row(int64_t i) const { return {i * sh, 0}; }
  C10_HOST_DEVICE Axis col(int64_t j) const { return {j * sw, 0}; }
  C10_HOST_DEVICE void operator()(int64_t o, int64_t n, int64_t c, int64_t, int64_t, Axis ry, Axis cx) const {
    using acc_t = at::opmath_type<scalar_t>;
    acc_t sum = acc_t(0);
    for (int64_t a = 0; a < sh; ++a)
      for (int64_t b = 0; b < sw; ++b) sum += acc_t(grad[grad_st.at(n, c, ry.a + a, cx.a + b)]);
    out[o] = scalar_t(sum);
  }

  // Row form for the CPU (contract in common/cpu_backend.h): the 2x2 blocks vectorised.
  int64_t w = 0;  // grad_input width
  static constexpr bool kRowKernel = true;
  int64_t run_row(int64_t off0, int64_t n, int64_t c, int64_t i, Axis ry, const Axis* cols, void*) const {
    if (sh == 2 && sw == 2 && grad_st.w == 1) {
      nearest_backward_row_x2(out + off0, grad + grad_st.at(n, c, ry.a, 0), grad + grad_st.at(n, c, ry.a + 1, 0), w);
    } else {
      for (int64_t j = 0; j < w; ++j) (*this)(off0 + j, n, c, i, j, ry, cols[j]);
    }
    return 0;
  }
};

template <typename scalar_t>
struct BedOfNailsForward {
  const scalar_t* in;
  scalar_t* out;
  Strides4 in_st;
  int64_t sh, sw;
  // Source row/column, or -1 where the output is a zero.
  C10_HOST_DEVICE Axis row(int64_t y) const { return {y % sh == 0 ? y / sh : -1, 0}; }
  C10_HOST_DEVICE Axis col(int64_t x) const { return {x % sw == 0 ? x / sw : -1, 0}; }
  C10_HOST_DEVICE void operator()(int64_t o, int64_t n, int64_t c, int64_t, int64_t, Axis ry, Axis cx) const {
    out[o] = (ry.a >= 0 && cx.a >= 0) ? in[in_st.at(n, c, ry.a, cx.a)] : scalar_t(0);
  }
};

template <typename scalar_t>
struct BedOfNailsBackward {
  const scalar_t* grad;
  scalar_t* out;
  Strides4 grad_st;
  int64_t sh, sw;
  C10_HOST_DEVICE Axis row(int64_t i) const { return {i * sh, 0}; }
  C10_HOST_DEVICE Axis col(int64_t j) const { return {j * sw, 0}; }
  C10_HOST_DEVICE void operator()(int64_t o, int64_t n, int64_t c, int64_t, int64_t, Axis ry, Axis cx) const {
    out[o] = grad[grad_st.at(n, c, ry.a, cx.a)];
  }
};

}  // namespace unpool
}  // namespace fastseg
