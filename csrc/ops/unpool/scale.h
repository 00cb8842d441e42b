// Unpooling family, the scale ops unpool_nearest2d and unpool_bed_of_nails2d (an integer scale
// per axis, no indices): their forward and backward bodies (docs/design.md §4, §5.1; contract in
// common/body.h). The CPU row loops are in unpool_rows_cpu.h, the flow in scale_ops.h.
#pragma once

#include <cstdint>

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include "common/tensor_view.h"
#include "ops/unpool/unpool_rows_cpu.h"  // run_row only: the CPU row kernels

namespace fastseg {
namespace unpool {

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

  // Row form for the CPU (contract in common/body.h).
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
  static constexpr bool kNoAxisTables = true;  // row/col one multiply: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t i) const { return {i * sh, 0}; }
  C10_HOST_DEVICE Axis col(int64_t j) const { return {j * sw, 0}; }
  C10_HOST_DEVICE void operator()(int64_t o, int64_t n, int64_t c, int64_t, int64_t, Axis ry, Axis cx) const {
    using acc_t = at::opmath_type<scalar_t>;
    acc_t sum = acc_t(0);
    for (int64_t a = 0; a < sh; ++a)
      for (int64_t b = 0; b < sw; ++b) sum += acc_t(grad[grad_st.at(n, c, ry.a + a, cx.a + b)]);
    out[o] = scalar_t(sum);
  }

  // Row form for the CPU (contract in common/body.h): the 2x2 blocks vectorised.
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
  static constexpr bool kNoAxisTables = true;  // row/col one multiply: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t i) const { return {i * sh, 0}; }
  C10_HOST_DEVICE Axis col(int64_t j) const { return {j * sw, 0}; }
  C10_HOST_DEVICE void operator()(int64_t o, int64_t n, int64_t c, int64_t, int64_t, Axis ry, Axis cx) const {
    out[o] = grad[grad_st.at(n, c, ry.a, cx.a)];
  }
};

}  // namespace unpool
}  // namespace fastseg
