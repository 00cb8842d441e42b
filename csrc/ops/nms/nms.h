// Non-maximum suppression: the IoU test shared by the CPU and CUDA kernels, the suppression
// bitmask body (one 64-bit word per box and block of 64 later boxes) and the CPU greedy pass.
//
// Exactly torchvision's arithmetic, so that the kept index lists are identical: areas
// (x2 - x1) * (y2 - y1), intersection sides max(0, min(x2) - max(x1)) with std::max/std::min's
// NaN behaviour, IoU = inter / (area_a + area_b - inter), suppressed when IoU > threshold
// (decided as torchvision's CPU kernel does, which compares in double: see threshold_as). In opmath precision: float for
// float16/bfloat16/float32 boxes, double for float64. No multiply-add is fused (CUDA code
// uses the explicitly rounded intrinsics), so both backends decide every pair alike.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include "common/tensor_view.h"

namespace fastseg {
namespace nms {

constexpr int64_t kBlock = 64;  // boxes per mask word

// std::max / std::min exactly (NaN in the second argument loses), usable on the device.
template <typename T>
C10_HOST_DEVICE inline T max_of(T a, T b) { return (a < b) ? b : a; }
template <typename T>
C10_HOST_DEVICE inline T min_of(T a, T b) { return (b < a) ? b : a; }

// a * b and a - b without contraction into a fused multiply-add on the device.
C10_HOST_DEVICE inline float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
C10_HOST_DEVICE inline double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

template <typename T>
C10_HOST_DEVICE inline T area_of(T x1, T y1, T x2, T y2) { return mul(x2 - x1, y2 - y1); }

// The threshold as a T that decides like the double: for every T value v,
// v > threshold_as<T>(t)  <=>  double(v) > t  (t rounded down to the largest T <= t).
template <typename T>
inline T threshold_as(double t) {
  T v = static_cast<T>(t);
  if (static_cast<double>(v) > t) v = std::nextafter(v, -std::numeric_limits<T>::infinity());
  return v;
}

// Whether box b is suppressed by box a (a with its precomputed area); threshold from threshold_as.
template <typename T>
C10_HOST_DEVICE inline bool iou_above(T ax1, T ay1, T ax2, T ay2, T a_area, T bx1, T by1, T bx2, T by2, T b_area,
                                      T threshold) {
  const T w = max_of(T(0), min_of(ax2, bx2) - max_of(ax1, bx1));
  const T h = max_of(T(0), min_of(ay2, by2) - max_of(ay1, by1));
  const T inter = mul(w, h);
  const T iou = inter / (a_area + b_area - inter);
  return iou > threshold;
}

// Boxes in score order as opmath arrays (structure of arrays), plus the class of each for
// batched NMS (nullptr: one class).
template <typename T>
struct SortedBoxes {
  const T* x1;
  const T* y1;
  const T* x2;
  const T* y2;
  const T* area;
  const int64_t* cls;
};

// mask[i, b] = bit (j - 64 b) for each later box j (j > i) in block b that box i suppresses.
// Walked as a [1, 1, K, blocks] output.
template <typename T>
struct SuppressionMask {
  SortedBoxes<T> bx;
  uint64_t* mask;
  int64_t n_boxes, n_blocks;
  T threshold;  // threshold_as<T>(iou_threshold)

  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t i) const { return {i, 0}; }
  C10_HOST_DEVICE Axis col(int64_t b) const { return {b, 0}; }

  C10_HOST_DEVICE void operator()(int64_t off, int64_t, int64_t, int64_t i, int64_t b, Axis, Axis) const {
    const int64_t j0 = b * kBlock;
    const int64_t j_end = j0 + kBlock < n_boxes ? j0 + kBlock : n_boxes;
    uint64_t word = 0;
    const T ax1 = bx.x1[i], ay1 = bx.y1[i], ax2 = bx.x2[i], ay2 = bx.y2[i], a_area = bx.area[i];
    for (int64_t j = (i + 1 > j0 ? i + 1 : j0); j < j_end; ++j) {
      if (bx.cls != nullptr && bx.cls[j] != bx.cls[i]) continue;
      if (iou_above(ax1, ay1, ax2, ay2, a_area, bx.x1[j], bx.y1[j], bx.x2[j], bx.y2[j], bx.area[j], threshold)) {
        word |= uint64_t(1) << (j - j0);
      }
    }
    mask[off] = word;
  }
};

}  // namespace nms
}  // namespace fastseg
