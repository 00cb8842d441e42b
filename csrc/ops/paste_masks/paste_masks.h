// Mask pasting: the per-row math shared by the CPU and CUDA kernels (detectron2's paste).
//
// Image pixel (x, y) has its centre at (x + 0.5, y + 0.5); in the mask of a box (x1, y1, x2, y2)
// that is u = (x + 0.5 - x1) / (x2 - x1) * Mw - 0.5 (v likewise), sampled bilinearly with zeros
// outside the mask (F.grid_sample, align_corners=False, zeros padding). A sample can be non-zero
// only for -1 < u < Mw: the box widened by half a mask cell. Only those pixels are computed; the
// rest of the output stays as allocated (zero). Computed in opmath (float for half masks).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include "common/tensor_view.h"

namespace fastseg {
namespace paste_masks {

template <typename T>
C10_HOST_DEVICE inline T mask_coord(int64_t pixel, T lo, T hi, int64_t cells) {
  return (static_cast<T>(pixel) + T(0.5) - lo) / (hi - lo) * static_cast<T>(cells) - T(0.5);
}

// Pixels [first, last) whose mask coordinate lies in (-1, cells): the box widened by half a cell,
// clipped to the image. Empty for degenerate boxes (hi <= lo) and non-finite coordinates.
template <typename T>
C10_HOST_DEVICE inline void pixel_range(T lo, T hi, int64_t cells, int64_t size, int64_t& first, int64_t& last) {
  first = 0, last = 0;
  if (!(hi > lo) || !(lo == lo) || !(hi == hi)) return;
  const T half = (hi - lo) / static_cast<T>(cells) / T(2);  // half a mask cell, in pixels
  const T a = lo - half - T(0.5), b = hi + half - T(0.5);     // pixel indices with u in (-1, cells)
  if (!(b > T(-1)) || !(a < static_cast<T>(size))) return;
  const T f = ::floor(a) - T(1), l = ::ceil(b) + T(2);         // a cell of slack, re-checked per pixel
  first = f < T(0) ? 0 : static_cast<int64_t>(f);
  last = l > static_cast<T>(size) ? size : static_cast<int64_t>(l);
  if (last < first) last = first;
}

// One axis of a bilinear sample with zeros padding: cells lo = floor(c) and lo + 1, weights.
template <typename T>
struct Tap {
  int64_t lo;
  T w_lo, w_hi;  // 0 where the cell is outside [0, cells)
};

template <typename T>
C10_HOST_DEVICE inline Tap<T> tap(T c, int64_t cells) {
  const T f = ::floor(c);
  Tap<T> t{static_cast<int64_t>(f), T(1) - (c - f), c - f};
  if (t.lo < 0 || t.lo >= cells) t.w_lo = T(0);
  if (t.lo + 1 < 0 || t.lo + 1 >= cells) t.w_hi = T(0);
  return t;
}

// The bilinear sample of mask m (row stride sh, column stride sw) at taps (ty, tx), zeros outside.
template <typename T, typename scalar_t>
C10_HOST_DEVICE inline T sample(const scalar_t* m, int64_t sh, int64_t sw, const Tap<T>& ty, const Tap<T>& tx) {
  T val = 0;
  if (ty.w_lo != T(0)) {
    const scalar_t* r = m + ty.lo * sh;
    if (tx.w_lo != T(0)) val += ty.w_lo * tx.w_lo * T(r[tx.lo * sw]);
    if (tx.w_hi != T(0)) val += ty.w_lo * tx.w_hi * T(r[(tx.lo + 1) * sw]);
  }
  if (ty.w_hi != T(0)) {
    const scalar_t* r = m + (ty.lo + 1) * sh;
    if (tx.w_lo != T(0)) val += ty.w_hi * tx.w_lo * T(r[tx.lo * sw]);
    if (tx.w_hi != T(0)) val += ty.w_hi * tx.w_hi * T(r[(tx.lo + 1) * sw]);
  }
  return val;
}

// The pasted value of mask m (a [Mh, Mw] plane) for box b = (x1, y1, x2, y2) at image pixel
// (x, y): 0 where the sample falls outside the mask.
template <typename T, typename scalar_t>
C10_HOST_DEVICE inline T pasted_value(const scalar_t* m, int64_t sh, int64_t sw, int64_t mh, int64_t mw, const T* b,
                                      int64_t y, int64_t x) {
  const T v = mask_coord(y, b[1], b[3], mh), u = mask_coord(x, b[0], b[2], mw);
  if (!(v > T(-1) && v < static_cast<T>(mh)) || !(u > T(-1) && u < static_cast<T>(mw))) return T(0);
  return sample(m, sh, sw, tap(v, mh), tap(u, mw));
}

// Writes row y of mask k: out[k, y, x] for the x of the box's range. out_t is bool (value >=
// threshold) or the float dtype (the value). Walked as a [1, K, H, 1] output: element (k, y).
template <typename scalar_t, typename out_t>
struct PasteRow {
  using T = at::opmath_type<scalar_t>;
  const scalar_t* masks;  // [K, Mh, Mw], strides ms
  const T* boxes;         // [K, 4] contiguous, opmath
  out_t* out;             // [K, H, W] contiguous
  Strides4 ms;            // (k, -, row, col) strides of masks in .n, .h, .w
  int64_t mh, mw, height, width;
  T threshold;

  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }

  C10_HOST_DEVICE void operator()(int64_t, int64_t, int64_t k, int64_t y, int64_t, Axis, Axis) const {
    const T* b = boxes + 4 * k;
    int64_t y0, y1, x0, x1;
    pixel_range(b[1], b[3], mh, height, y0, y1);
    if (y < y0 || y >= y1) return;
    pixel_range(b[0], b[2], mw, width, x0, x1);
    const T v = mask_coord(y, b[1], b[3], mh);
    if (!(v > T(-1) && v < static_cast<T>(mh))) return;
    const Tap<T> ty = tap(v, mh);
    const scalar_t* m = masks + k * ms.n;
    out_t* dst = out + (k * height + y) * width;
    for (int64_t x = x0; x < x1; ++x) {
      const T u = mask_coord(x, b[0], b[2], mw);
      if (!(u > T(-1) && u < static_cast<T>(mw))) continue;
      const T val = sample(m, ms.h, ms.w, ty, tap(u, mw));
      if constexpr (std::is_same_v<out_t, bool>) {
        dst[x] = val >= threshold;
      } else {
        dst[x] = static_cast<out_t>(val);
      }
    }
  }
};

}  // namespace paste_masks
}  // namespace fastseg
