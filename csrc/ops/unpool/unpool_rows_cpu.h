// CPU-only row forms of the unpooling bodies for the common geometries (2x2 windows, stride 2, no
// padding; integer scale 2), with unit strides along the row: SegNet's and DeconvNet's layers.
// Each loop is written branch-free so that the compiler vectorises it; GCC does so only with AVX2
// (baseline x86-64 SSE2 has no 64-bit lane compare), so on x86-64 the loops are compiled for AVX2
// and AVX-512 too and picked at run time (fastest_isa, common/cpu_isa.h; capped by FASTSEG_CPU_ISA).
// Each writes what the body's operator() (max_unpool.h, compact.h, scale.h) writes, which the GPU
// runs: the tests compare both forms (fastseg.testing.strategy(cpu_row_kernels=...)), under every
// instruction set (strategy(cpu_isa=...)), and both with PyTorch.
#pragma once

#include <algorithm>
#include <cstdint>

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include "common/cpu_isa.h"  // fastest_isa, FASTSEG_INLINE_LAMBDA
#include "common/keep_or_zero.h"

namespace fastseg {
namespace unpool {

// Whether a row can take the k2 loops: the geometry, and unit strides along the row.
inline bool k2_row(const int64_t k, const int64_t s, const int64_t p, int64_t value_stride, int64_t index_stride) {
  return k == 2 && s == 2 && p == 0 && value_stride == 1 && index_stride == 1;
}

// Unpooling gather, out[0, W) of one output row: window j covers columns 2j and 2j + 1 (those
// < W), n windows; points_at(j) is the column window j's index names if it names this row
// (anything else is a miss). Returns the hits (as unpool_row in unpool_common.h).
template <typename scalar_t, typename PointsAt>
C10_ALWAYS_INLINE int64_t unpool_row_k2_loop(scalar_t* __restrict out, int64_t W, const scalar_t* __restrict values,
                                             int64_t n, const PointsAt& points_at) {
  const int64_t m = std::min(n, W / 2);  // windows with both columns inside the row
  int64_t hits = 0;
  for (int64_t j = 0; j < m; ++j) {
    const int64_t d = points_at(j) - 2 * j;
    const scalar_t v = values[j];
    out[2 * j] = keep_or_zero(d == 0, v);  // (not ?: which the compiler may make a branch)
    out[2 * j + 1] = keep_or_zero(d == 1, v);
    hits += uint64_t(d) < 2;
  }
  // A last window with one column in the row (odd W), and columns no window covers (W > 2n).
  for (int64_t x = 2 * m; x < W; ++x) {
    const int64_t j = x / 2;
    const bool hit = j < n && points_at(j) == x;
    hits += hit;
    out[x] = hit ? values[j] : scalar_t(0);
  }
  return hits;
}

template <typename scalar_t, typename PointsAt>
inline int64_t unpool_row_k2(scalar_t* out, int64_t W, const scalar_t* values, int64_t n, const PointsAt& points_at) {
  return fastest_isa([&]() FASTSEG_INLINE_LAMBDA { return unpool_row_k2_loop(out, W, values, n, points_at); });
}

// Unpooling gather over the first `rows` rows of an H x W output plane (contiguous at out), in
// one call: short rows (DeconvNet's 14 to 56) cost more in per-row overhead than in work.
// Output row y is unpool_row_k2 over pooled row y / 2 with points_at(y, j) for its windows.
template <typename scalar_t, typename PointsAt>
C10_ALWAYS_INLINE int64_t unpool_plane_k2_loop(scalar_t* out, int64_t W, int64_t rows, const scalar_t* values,
                                               int64_t value_row_stride, int64_t n, const PointsAt& points_at) {
  int64_t hits = 0;
  for (int64_t y = 0; y < rows; ++y) {
    hits += unpool_row_k2_loop(out + y * W, W, values + (y / 2) * value_row_stride, n,
                               [&](int64_t j) FASTSEG_INLINE_LAMBDA { return points_at(y, j); });
  }
  return hits;
}

template <typename scalar_t, typename PointsAt>
inline int64_t unpool_plane_k2(scalar_t* out, int64_t W, int64_t rows, const scalar_t* values,
                               int64_t value_row_stride, int64_t n, const PointsAt& points_at) {
  return fastest_isa([&]() FASTSEG_INLINE_LAMBDA {
    return unpool_plane_k2_loop(out, W, rows, values, value_row_stride, n, points_at);
  });
}

// max_pool2d_compact, one output row over 2x2 / stride 2 windows [0, m) that lie wholly inside the
// input rows r0, r1: MaxPoolCompact's sequential rule (take a value if it is greater than the
// best so far or NaN, row-major) written branch-free. Starting from the window's first value is
// the same as starting from -inf and taking it.
template <typename scalar_t>
C10_ALWAYS_INLINE void pool_row_k2_loop(scalar_t* __restrict values, uint8_t* __restrict offsets,
                                        const scalar_t* __restrict r0, const scalar_t* __restrict r1, int64_t m) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t j = 0; j < m; ++j) {
    const scalar_t v[4] = {r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]};
    acc_t best = acc_t(v[0]);
    scalar_t best_value = v[0];
    uint8_t o = 0;
    for (int t = 1; t < 4; ++t) {
      const acc_t a = acc_t(v[t]);
      const bool take = (a > best) | (a != a);
      best = take ? a : best;
      best_value = take ? v[t] : best_value;
      o = take ? uint8_t(t) : o;
    }
    values[j] = best_value;
    offsets[j] = o;
  }
}

template <typename scalar_t>
inline void pool_row_k2(scalar_t* values, uint8_t* offsets, const scalar_t* r0, const scalar_t* r1, int64_t m) {
  fastest_isa([&]() FASTSEG_INLINE_LAMBDA { pool_row_k2_loop(values, offsets, r0, r1, m); });
}

// Nearest x2 along the row: out[2j] = out[2j + 1] = in[j], j < w.
template <typename scalar_t>
C10_ALWAYS_INLINE void nearest_row_x2_loop(scalar_t* __restrict out, const scalar_t* __restrict in, int64_t w) {
  for (int64_t j = 0; j < w; ++j) {
    out[2 * j] = in[j];
    out[2 * j + 1] = in[j];
  }
}

template <typename scalar_t>
inline void nearest_row_x2(scalar_t* out, const scalar_t* in, int64_t w) {
  fastest_isa([&]() FASTSEG_INLINE_LAMBDA { nearest_row_x2_loop(out, in, w); });
}

// Backward of nearest x2 x2: out[j] = sum of the 2x2 block j of grad rows g0, g1, in opmath and
// in NearestBackward's order (0, then row-major), so the bits match.
template <typename scalar_t>
C10_ALWAYS_INLINE void nearest_backward_row_x2_loop(scalar_t* __restrict out, const scalar_t* __restrict g0,
                                                    const scalar_t* __restrict g1, int64_t w) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t j = 0; j < w; ++j) {
    acc_t sum = acc_t(0);
    sum += acc_t(g0[2 * j]);
    sum += acc_t(g0[2 * j + 1]);
    sum += acc_t(g1[2 * j]);
    sum += acc_t(g1[2 * j + 1]);
    out[j] = scalar_t(sum);
  }
}

template <typename scalar_t>
inline void nearest_backward_row_x2(scalar_t* out, const scalar_t* g0, const scalar_t* g1, int64_t w) {
  fastest_isa([&]() FASTSEG_INLINE_LAMBDA { nearest_backward_row_x2_loop(out, g0, g1, w); });
}

}  // namespace unpool
}  // namespace fastseg
