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

// Unpooling over the first `rows` (even) rows of an H x W output plane (contiguous at out), in
// one call, n windows per row pair; target(y, j), y even, is the offset from output row y's
// start of the pixel window j's index names (a miss is anything outside the window). Both forms
// return the hits, as unpool_row_k2 over each row would.
//
// Rows of many windows: unpool_row_k2 over each row (vectorised: one pass of full-vector stores).
template <typename scalar_t, typename Target>
C10_ALWAYS_INLINE int64_t unpool_plane_k2_rows_loop(scalar_t* out, int64_t W, int64_t rows, const scalar_t* values,
                                                    int64_t value_row_stride, int64_t n, const Target& target) {
  int64_t hits = 0;
  for (int64_t y = 0; y < rows; y += 2) {
    const scalar_t* v = values + (y / 2) * value_row_stride;
    hits += unpool_row_k2_loop(out + y * W, W, v, n, [&](int64_t j) FASTSEG_INLINE_LAMBDA { return target(y, j); });
    hits += unpool_row_k2_loop(out + (y + 1) * W, W, v, n,
                               [&](int64_t j) FASTSEG_INLINE_LAMBDA { return target(y, j) - W; });
  }
  return hits;
}

// Rows of few windows (DeconvNet's unpool5: 7): there the per-row
// vector set-up and remainders cost more than the work. As PyTorch's max_unpool2d: the plane is
// zeroed, then each window's value is stored at the pixel its index names; here only if that
// pixel is inside the window (else a 0 over the window's own first pixel, and no count),
// branch-free: the window's row is random data.
template <typename scalar_t, typename Target>
C10_ALWAYS_INLINE int64_t unpool_plane_k2_scatter_loop(scalar_t* out, int64_t W, int64_t rows,
                                                       const scalar_t* values, int64_t value_row_stride, int64_t n,
                                                       const Target& target) {
  const int64_t m = std::min(n, W / 2);  // windows with both columns inside the rows
  int64_t hits = 0;
  // One fill for the plane (a few hundred bytes at these widths: the stores below hit L1), not
  // one call per row pair of 7 windows.
  std::fill(out, out + rows * W, scalar_t(0));
  for (int64_t y = 0; y < rows; y += 2) {
    scalar_t* top = out + y * W;
    const scalar_t* v = values + (y / 2) * value_row_stride;
    for (int64_t j = 0; j < m; ++j) {
      const int64_t d = target(y, j) - 2 * j;
      // 0 or 1 (the two tests exclude each other), and arithmetic rather than ?: or ||, which
      // GCC turns into branches that mispredict on half of the windows
      const int64_t found = int64_t(uint64_t(d) < 2) + int64_t(uint64_t(d - W) < 2);
      top[2 * j + (d & -found)] = keep_or_zero(found != 0, v[j]);
      hits += found;
    }
    // A last window with one column in the rows (odd W), and columns no window covers (W > 2n).
    for (int64_t r = 0; r < 2; ++r) {
      for (int64_t x = 2 * m; x < W; ++x) {
        const int64_t j = x / 2;
        const bool hit = j < n && target(y, j) == r * W + x;
        hits += hit;
        top[r * W + x] = hit ? v[j] : scalar_t(0);
      }
    }
  }
  return hits;
}

// Below this many windows per row the scatter form; measured on Zen 4, 2 threads, both forms in
// one build: 7 windows (DeconvNet's unpool5) 0.42x -> 0.59x PyTorch with the scatter, but from 14
// windows on the row form wins (unpool4 1.21x vs 1.14x, SegNet's dec5 0.79x vs 0.70x, dec4
// 1.32x vs 0.92x, 240 windows 4.4x vs 3.2x). Scalar code: the same choice under every ISA.
constexpr int64_t kPlaneScatterMaxWindows = 12;

template <typename scalar_t, typename Target>
inline int64_t unpool_plane_k2(scalar_t* out, int64_t W, int64_t rows, const scalar_t* values,
                               int64_t value_row_stride, int64_t n, const Target& target) {
  if (n < kPlaneScatterMaxWindows) {
    return unpool_plane_k2_scatter_loop(out, W, rows, values, value_row_stride, n, target);
  }
  return fastest_isa([&]() FASTSEG_INLINE_LAMBDA {
    return unpool_plane_k2_rows_loop(out, W, rows, values, value_row_stride, n, target);
  });
}

// max_unpool2d's plane of up to a few dozen windows per row, as PyTorch's CPU kernel computes it: the H x W
// plane zeroed, then every pooled value stored at the flat index its index names, in input order
// (a later window overwrites: the larger input position wins). That is max_unpool2d's result for
// any index inside the plane, in its window or not, so the count is of indices inside the plane:
// only an out-of-range one sends the flow to its validation pass, which raises (the store of
// such an index goes to pixel 0 of a plane the error discards). One range test per index and no
// window arithmetic. Used below kFlatScatterMaxWindows windows per row; measured on Zen 4, both
// forms in one build, 2 threads: against PyTorch, DeconvNet's unpool4 (14 windows) 1.19x with the
// row gather, 2.34x with this scatter, SegNet's dec5 (15) 1.04x vs 2.51x, dec4 (30) 1.93x vs
// 2.49x, DeconvNet's unpool3 (28) 1.90x vs 2.25-2.53x, SegNet's dec3 (60) 2.82x vs 3.36x; from
// 112 windows on the two are within noise (dec1, unpool1: 3.8-4.7x either way) and the vector
// row gather, one pass of full-vector stores without the zero fill, is kept. Scalar code, so an
// AVX2 machine only moves the balance further towards it.
constexpr int64_t kFlatScatterMaxWindows = 64;

template <typename scalar_t>
C10_ALWAYS_INLINE int64_t max_unpool_plane_scatter(scalar_t* __restrict out, int64_t H, int64_t W,
                                                   const scalar_t* __restrict values, int64_t value_row_stride,
                                                   const int64_t* __restrict idx, int64_t idx_row_stride, int64_t h,
                                                   int64_t w) {
  const uint64_t size = uint64_t(H * W);
  std::fill(out, out + H * W, scalar_t(0));
  int64_t inside = 0;
  for (int64_t i = 0; i < h; ++i) {
    const scalar_t* v = values + i * value_row_stride;
    const int64_t* ix = idx + i * idx_row_stride;
    for (int64_t j = 0; j < w; ++j) {
      const int64_t t = ix[j];
      const bool ok = uint64_t(t) < size;
      out[ok ? t : 0] = v[j];
      inside += ok;
    }
  }
  return inside;
}

// out[t] = plane[idx[t]] for t < n where idx[t] lies in [0, size), else 0; returns how many did.
template <typename scalar_t>
C10_ALWAYS_INLINE int64_t gather_plane_loop(scalar_t* __restrict out, const scalar_t* __restrict plane,
                                            const int64_t* __restrict idx, int64_t n, int64_t size) {
  int64_t inside = 0;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t v = idx[t];
    const bool ok = uint64_t(v) < uint64_t(size);
    out[t] = keep_or_zero(ok, plane[ok ? v : 0]);
    inside += ok;
  }
  return inside;
}

template <typename scalar_t>
inline int64_t gather_plane(scalar_t* out, const scalar_t* plane, const int64_t* idx, int64_t n, int64_t size) {
  return fastest_isa([&]() FASTSEG_INLINE_LAMBDA { return gather_plane_loop(out, plane, idx, n, size); });
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

// Rows shorter than this run the baseline form whatever cpu_isa() is: there the AVX2 / AVX-512
// forms' vector set-up and scalar remainder cost more than their vectors save (measured on Zen 4,
// one thread: the baseline form ~2x faster under both at 7-56 windows, DeconvNet's and SegNet's
// deep layers; at 240 windows the vector forms are ~25 % faster).
constexpr int64_t kPoolRowVectorMinWindows = 96;

template <typename scalar_t>
inline void pool_row_k2(scalar_t* values, uint8_t* offsets, const scalar_t* r0, const scalar_t* r1, int64_t m) {
  if (m < kPoolRowVectorMinWindows) return pool_row_k2_loop(values, offsets, r0, r1, m);
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
