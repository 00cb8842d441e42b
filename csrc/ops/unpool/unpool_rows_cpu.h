// CPU-only row form of the non-overlapping unpooling gathers for the 2x2 / stride 2 / no padding
// geometry with unit-stride values and indices (SegNet's and DeconvNet's unpooling): each
// window's two output pixels are written directly, with no scratch row. GCC vectorises the loop
// only with AVX2 (baseline x86-64 SSE2 has no 64-bit lane compare), so on x86-64 it is also
// compiled for AVX2 and picked at run time. Same writes and count as unpool_row (unpool.h); the
// tests run both (torch.ops.fastseg._set_cpu_row_kernels) and compare them with PyTorch.
#pragma once

#include <algorithm>
#include <cstdint>

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__CUDACC__)
#define FASTSEG_UNPOOL_AVX2 1
#endif

namespace fastseg {
namespace unpool {

// out[0, W) of one output row; window j covers columns 2j and 2j + 1 (those < W), n windows;
// points_at(j) is the column window j's index names if it names this row (anything else is a
// miss). Returns the hits.
template <typename scalar_t, typename PointsAt>
C10_ALWAYS_INLINE int64_t unpool_row_k2_body(scalar_t* __restrict out, int64_t W,
                                                    const scalar_t* __restrict values, int64_t n,
                                                    const PointsAt& points_at) {
  const int64_t m = std::min(n, W / 2);  // windows with both columns inside the row
  int64_t hits = 0;
  for (int64_t j = 0; j < m; ++j) {
    const int64_t d = points_at(j) - 2 * j;
    const scalar_t v = values[j];
    out[2 * j] = d == 0 ? v : scalar_t(0);
    out[2 * j + 1] = d == 1 ? v : scalar_t(0);
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

#ifdef FASTSEG_UNPOOL_AVX2
template <typename scalar_t, typename PointsAt>
__attribute__((target("avx2"))) int64_t unpool_row_k2_avx2(scalar_t* out, int64_t W, const scalar_t* values,
                                                           int64_t n, const PointsAt& points_at) {
  return unpool_row_k2_body(out, W, values, n, points_at);
}

inline bool cpu_has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

template <typename scalar_t, typename PointsAt>
inline int64_t unpool_row_k2(scalar_t* out, int64_t W, const scalar_t* values, int64_t n, const PointsAt& points_at) {
#ifdef FASTSEG_UNPOOL_AVX2
  if (cpu_has_avx2()) return unpool_row_k2_avx2(out, W, values, n, points_at);
#endif
  return unpool_row_k2_body(out, W, values, n, points_at);
}

// One output row of max_pool2d_compact over 2x2 / stride 2 windows [0, m) that lie wholly inside
// the input rows r0, r1 (unit stride): the sequential rule of MaxPoolCompact (take a value if it
// is greater than the best so far or NaN, row-major) written branch-free so that it vectorises.
// Starting from the window's first value is the same as starting from -inf and taking it.
template <typename scalar_t>
C10_ALWAYS_INLINE void pool_row_k2_body(scalar_t* __restrict values, uint8_t* __restrict offsets,
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

#ifdef FASTSEG_UNPOOL_AVX2
template <typename scalar_t>
__attribute__((target("avx2"))) void pool_row_k2_avx2(scalar_t* values, uint8_t* offsets, const scalar_t* r0,
                                                      const scalar_t* r1, int64_t m) {
  pool_row_k2_body(values, offsets, r0, r1, m);
}
#endif

template <typename scalar_t>
inline void pool_row_k2(scalar_t* values, uint8_t* offsets, const scalar_t* r0, const scalar_t* r1, int64_t m) {
#ifdef FASTSEG_UNPOOL_AVX2
  if (cpu_has_avx2()) return pool_row_k2_avx2(values, offsets, r0, r1, m);
#endif
  pool_row_k2_body(values, offsets, r0, r1, m);
}

// Whether a row can take unpool_row_k2: the geometry, and unit strides along the row.
inline bool k2_row(const int64_t k, const int64_t s, const int64_t p, int64_t value_stride, int64_t index_stride) {
  return k == 2 && s == 2 && p == 0 && value_stride == 1 && index_stride == 1;
}

}  // namespace unpool
}  // namespace fastseg
