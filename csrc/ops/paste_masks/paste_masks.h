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

  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
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

// All masks into one image map, one body call per image row y (element (0, 0, y, 0) of a
// [1, 1, H, 1] walk), so that overlapping masks never race: the masks are visited from the last
// to the first and each covered pixel (value >= threshold) is overwritten, so the lowest index
// covering a pixel wins. out_t bool: an occupancy map (covered pixels set, the rest untouched);
// an integer type: instance ids k + 1 (pixels no mask covers keep their value).
template <typename scalar_t, typename out_t>
struct PasteIntoRow {
  using T = at::opmath_type<scalar_t>;
  const scalar_t* masks;  // [K, Mh, Mw], strides ms
  const T* boxes;         // [K, 4] contiguous, opmath
  out_t* out;             // [H, W], strides os (.h, .w)
  Strides4 ms, os;
  int64_t num_masks, mh, mw, height, width;
  T threshold;

  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }

  C10_HOST_DEVICE void operator()(int64_t, int64_t, int64_t, int64_t y, int64_t, Axis, Axis) const {
    for (int64_t k = num_masks - 1; k >= 0; --k) {
      const T* b = boxes + 4 * k;
      int64_t y0, y1, x0, x1;
      pixel_range(b[1], b[3], mh, height, y0, y1);
      if (y < y0 || y >= y1) continue;
      const T v = mask_coord(y, b[1], b[3], mh);
      if (!(v > T(-1) && v < static_cast<T>(mh))) continue;
      pixel_range(b[0], b[2], mw, width, x0, x1);
      const Tap<T> ty = tap(v, mh);
      const scalar_t* m = masks + k * ms.n;
      for (int64_t x = x0; x < x1; ++x) {
        const T u = mask_coord(x, b[0], b[2], mw);
        if (!(u > T(-1) && u < static_cast<T>(mw))) continue;
        if (!(sample(m, ms.h, ms.w, ty, tap(u, mw)) >= threshold)) continue;
        if constexpr (std::is_same_v<out_t, bool>) {
          out[y * os.h + x * os.w] = true;
        } else {
          out[y * os.h + x * os.w] = static_cast<out_t>(k + 1);
        }
      }
    }
  }
};

// torchvision's paste (roi_heads.paste_masks_in_image): mask k, zero-padded by `pad` cells on each
// side, resized with F.interpolate(mode="bilinear", align_corners=False) to its integer box
// (x0, y0, x1, y1) (inclusive; size max(x1 - x0 + 1, 1)), written where the box meets the image.
// The source index and weights follow ATen's upsample_bilinear2d (area_pixel_compute_source_index,
// guard_index_and_lambda); ATen's CPU kernel sums in another order, so values agree within
// float rounding (a few ulps), not bit for bit.
template <typename T>
C10_HOST_DEVICE inline int64_t resize_source(int64_t dst, int64_t in, int64_t out, T& lambda, int64_t& next) {
  const T scale = static_cast<T>(in) / static_cast<T>(out);
  T src = scale * (static_cast<T>(dst) + T(0.5)) - T(0.5);
  if (src < T(0)) src = T(0);
  int64_t i = static_cast<int64_t>(::floor(src));
  if (i > in - 1) i = in - 1;
  lambda = src - static_cast<T>(i);
  lambda = lambda < T(0) ? T(0) : (lambda > T(1) ? T(1) : lambda);
  next = i < in - 1 ? i + 1 : i;
  return i;
}

template <typename scalar_t>
struct PasteResizedRow {  // element (0, k, y, 0) of a [1, K, H, 1] walk
  using T = at::opmath_type<scalar_t>;
  const scalar_t* masks;  // [K, Mh, Mw], strides ms
  const int64_t* boxes;   // [K, 4] contiguous, integer (expanded) boxes
  scalar_t* out;          // [K, H, W] contiguous, zero-filled
  Strides4 ms;
  int64_t mh, mw, pad, height, width;

  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }

  C10_HOST_DEVICE T padded(const scalar_t* m, int64_t i, int64_t j) const {
    i -= pad, j -= pad;
    return (i >= 0 && i < mh && j >= 0 && j < mw) ? T(m[i * ms.h + j * ms.w]) : T(0);
  }

  C10_HOST_DEVICE void operator()(int64_t, int64_t, int64_t k, int64_t y, int64_t, Axis, Axis) const {
    const int64_t* b = boxes + 4 * k;
    const int64_t bw = b[2] - b[0] + 1 > 1 ? b[2] - b[0] + 1 : 1, bh = b[3] - b[1] + 1 > 1 ? b[3] - b[1] + 1 : 1;
    if (y < b[1] || y > b[3] || y < 0) return;
    const int64_t x0 = b[0] > 0 ? b[0] : 0, x1 = b[2] + 1 < width ? b[2] + 1 : width;
    const int64_t ph = mh + 2 * pad, pw = mw + 2 * pad;
    T ly;
    int64_t iy1;
    const int64_t iy0 = resize_source(y - b[1], ph, bh, ly, iy1);
    const T wy0 = T(1) - ly;
    const scalar_t* m = masks + k * ms.n;
    scalar_t* dst = out + (k * height + y) * width;
    for (int64_t x = x0; x < x1; ++x) {
      T lx;
      int64_t ix1;
      const int64_t ix0 = resize_source(x - b[0], pw, bw, lx, ix1);
      const T wx0 = T(1) - lx;
      const T top = padded(m, iy0, ix0) * wx0 + padded(m, iy0, ix1) * lx;
      const T bottom = padded(m, iy1, ix0) * wx0 + padded(m, iy1, ix1) * lx;
      dst[x] = static_cast<scalar_t>(top * wy0 + bottom * ly);
    }
  }
};

}  // namespace paste_masks
}  // namespace fastseg
