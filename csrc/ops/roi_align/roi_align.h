// RoIAlign: the per-element math shared by the CPU and CUDA kernels (torchvision's semantics).
//
// A roi (batch, x1, y1, x2, y2) is scaled by spatial_scale (and shifted by -0.5 when aligned;
// otherwise its size is clamped to >= 1), split into pooled_h x pooled_w bins, and each bin is
// the average of grid_h x grid_w bilinear samples (grid = sampling_ratio, or ceil(bin size) when
// sampling_ratio <= 0). Samples outside [-1, size] contribute 0; others are clamped into the map.
// Computed in opmath (float for float16/bfloat16).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include "common/tensor_view.h"

namespace fastseg {
namespace roi_align {

template <typename T>
struct RoiGeometry {
  int64_t batch;
  T start_h, start_w, bin_h, bin_w;
  int64_t grid_h, grid_w;
  T count;
};

template <typename T>
C10_HOST_DEVICE inline RoiGeometry<T> roi_geometry(const T* roi, T spatial_scale, bool aligned, int64_t pooled_h,
                                                   int64_t pooled_w, int64_t sampling_ratio) {
  RoiGeometry<T> g;
  g.batch = static_cast<int64_t>(roi[0]);
  const T offset = aligned ? T(0.5) : T(0);
  g.start_w = roi[1] * spatial_scale - offset;
  g.start_h = roi[2] * spatial_scale - offset;
  const T end_w = roi[3] * spatial_scale - offset;
  const T end_h = roi[4] * spatial_scale - offset;
  T roi_w = end_w - g.start_w, roi_h = end_h - g.start_h;
  if (!aligned) {
    roi_w = roi_w > T(1) ? roi_w : T(1);
    roi_h = roi_h > T(1) ? roi_h : T(1);
  }
  g.bin_h = roi_h / static_cast<T>(pooled_h);
  g.bin_w = roi_w / static_cast<T>(pooled_w);
  g.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(::ceil(roi_h / static_cast<T>(pooled_h)));
  g.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(::ceil(roi_w / static_cast<T>(pooled_w)));
  const int64_t n = g.grid_h * g.grid_w;
  g.count = static_cast<T>(n > 1 ? n : 1);
  return g;
}

// One axis of a bilinear sample: rows/columns lo and hi with weights w_lo, w_hi (0 if outside).
template <typename T>
struct AxisSample {
  int64_t lo, hi;
  T w_lo, w_hi;
  bool valid;
};

template <typename T>
C10_HOST_DEVICE inline AxisSample<T> axis_sample(T v, int64_t size) {
  AxisSample<T> s{0, 0, T(0), T(0), false};
  if (v < T(-1) || v > static_cast<T>(size)) return s;
  if (v <= T(0)) v = T(0);
  s.lo = static_cast<int64_t>(v);
  if (s.lo >= size - 1) {
    s.lo = s.hi = size - 1;
    v = static_cast<T>(s.lo);
  } else {
    s.hi = s.lo + 1;
  }
  const T l = v - static_cast<T>(s.lo);
  s.w_lo = T(1) - l;
  s.w_hi = l;
  s.valid = true;
  return s;
}

// Sample position i of grid along a bin: start + bin_index * bin + (i + 0.5) * bin / grid.
template <typename T>
C10_HOST_DEVICE inline T sample_at(T start, int64_t bin_index, T bin, int64_t i, int64_t grid) {
  return start + static_cast<T>(bin_index) * bin + (static_cast<T>(i) + T(0.5)) * bin / static_cast<T>(grid);
}

// Calls f(ys, xs) for every sample of bin (ph, pw) of a roi that lies on the map, in row-major
// sample order (the order every kernel sums in).
template <typename T, typename F>
C10_HOST_DEVICE inline void for_each_sample(const RoiGeometry<T>& g, int64_t ph, int64_t pw, int64_t height,
                                            int64_t width, F&& f) {
  for (int64_t iy = 0; iy < g.grid_h; ++iy) {
    const AxisSample<T> ys = axis_sample(sample_at(g.start_h, ph, g.bin_h, iy, g.grid_h), height);
    if (!ys.valid) continue;
    for (int64_t ix = 0; ix < g.grid_w; ++ix) {
      const AxisSample<T> xs = axis_sample(sample_at(g.start_w, pw, g.bin_w, ix, g.grid_w), width);
      if (xs.valid) f(ys, xs);
    }
  }
}

// Mean of the samples of bin (ph, pw) of a roi in one channel plane (strides is.h, is.w).
template <typename scalar_t, typename T>
C10_HOST_DEVICE inline T bin_average(const scalar_t* plane, const Strides4& is, int64_t height, int64_t width,
                                     const RoiGeometry<T>& g, int64_t ph, int64_t pw) {
  T acc = 0;
  for_each_sample(g, ph, pw, height, width, [&](const AxisSample<T>& ys, const AxisSample<T>& xs) {
    const scalar_t* r_lo = plane + ys.lo * is.h;
    const scalar_t* r_hi = plane + ys.hi * is.h;
    acc += ys.w_lo * xs.w_lo * T(r_lo[xs.lo * is.w]) + ys.w_lo * xs.w_hi * T(r_lo[xs.hi * is.w]) +
           ys.w_hi * xs.w_lo * T(r_hi[xs.lo * is.w]) + ys.w_hi * xs.w_hi * T(r_hi[xs.hi * is.w]);
  });
  return acc / g.count;
}

// out[k, c, ph, pw] = mean of the bin's samples of input[batch(k), c].
template <typename scalar_t>
struct Forward {
  using T = at::opmath_type<scalar_t>;
  const scalar_t* input;
  const T* rois;  // [K, 5] contiguous, opmath
  scalar_t* out;
  Strides4 is;
  int64_t height, width, pooled_h, pooled_w, sampling_ratio;
  T spatial_scale;
  bool aligned;

  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }

  C10_HOST_DEVICE void operator()(int64_t off, int64_t k, int64_t c, int64_t ph, int64_t pw, Axis, Axis) const {
    const RoiGeometry<T> g = roi_geometry(rois + k * 5, spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio);
    out[off] = static_cast<scalar_t>(bin_average(input + g.batch * is.n + c * is.c, is, height, width, g, ph, pw));
  }
};

// Feature levels of multi-level RoIAlign (FPN P2-P5...), passed by value to the kernels.
constexpr int kMaxLevels = 8;
template <typename scalar_t>
struct Levels {
  const scalar_t* data[kMaxLevels];
  Strides4 strides[kMaxLevels];
  int64_t height[kMaxLevels], width[kMaxLevels];
  at::opmath_type<scalar_t> scale[kMaxLevels];
};

// Multi-level forward in one launch: roi k reads level levels[k] (torchvision's
// MultiScaleRoIAlign: aligned=False, the level's spatial scale).
template <typename scalar_t>
struct MultiLevelForward {
  using T = at::opmath_type<scalar_t>;
  Levels<scalar_t> lv;
  const T* rois;
  const int64_t* levels;
  scalar_t* out;
  int64_t pooled_h, pooled_w, sampling_ratio;

  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }

  C10_HOST_DEVICE void operator()(int64_t off, int64_t k, int64_t c, int64_t ph, int64_t pw, Axis, Axis) const {
    const int64_t l = levels[k];
    const RoiGeometry<T> g = roi_geometry(rois + k * 5, lv.scale[l], false, pooled_h, pooled_w, sampling_ratio);
    const Strides4& is = lv.strides[l];
    out[off] = static_cast<scalar_t>(
        bin_average(lv.data[l] + g.batch * is.n + c * is.c, is, lv.height[l], lv.width[l], g, ph, pw));
  }
};

// Backward for one plane of grad_input (index = n * C + c): scatters grad[k, c, :, :] of every
// roi of batch n into it, in roi order. Planes are independent, so this is parallel and
// deterministic without atomics. grad_input must be zero on entry; T accumulates in opmath
// (float planes for float16/bfloat16 are accumulated in a float buffer by the caller).
template <typename scalar_t>
struct BackwardPlane {
  using T = at::opmath_type<scalar_t>;
  const scalar_t* grad;  // [K, C, ph, pw]
  const T* rois;
  T* grad_input;         // [N, C, H, W] contiguous, opmath
  Strides4 gs;
  int64_t n_rois, channels, height, width, pooled_h, pooled_w, sampling_ratio;
  T spatial_scale;
  bool aligned;

  C10_HOST_DEVICE void operator()(int64_t plane) const {
    const int64_t n = plane / channels, c = plane - n * channels;
    T* dst = grad_input + plane * height * width;
    for (int64_t k = 0; k < n_rois; ++k) {
      const RoiGeometry<T> g = roi_geometry(rois + k * 5, spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio);
      if (g.batch != n) continue;
      for (int64_t ph = 0; ph < pooled_h; ++ph) {
        for (int64_t pw = 0; pw < pooled_w; ++pw) {
          const T gv = T(grad[k * gs.n + c * gs.c + ph * gs.h + pw * gs.w]) / g.count;
          for_each_sample(g, ph, pw, height, width, [&](const AxisSample<T>& ys, const AxisSample<T>& xs) {
            dst[ys.lo * width + xs.lo] += gv * (ys.w_lo * xs.w_lo);
            dst[ys.lo * width + xs.hi] += gv * (ys.w_lo * xs.w_hi);
            dst[ys.hi * width + xs.lo] += gv * (ys.w_hi * xs.w_lo);
            dst[ys.hi * width + xs.hi] += gv * (ys.w_hi * xs.w_hi);
          });
        }
      }
    }
  }
};

// *p += v atomically, for the scatter backward: atomicAdd on the GPU; on the CPU (where only the
// tests run this body, to check the code the GPU runs) a compare-and-swap loop on the bits
// (std::atomic_ref would need C++20; torch 2.11's extensions build as C++17).
template <typename T>
C10_HOST_DEVICE inline void atomic_add(T* p, T v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(p, v);
#else
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  static_assert(sizeof(T) == sizeof(Bits), "atomic_add: float or double");
  Bits* addr = reinterpret_cast<Bits*>(p);
  Bits old = __atomic_load_n(addr, __ATOMIC_RELAXED);
  for (;;) {
    T cur;
    std::memcpy(&cur, &old, sizeof(T));
    const T next = cur + v;
    Bits want;
    std::memcpy(&want, &next, sizeof(T));
    if (__atomic_compare_exchange_n(addr, &old, want, /*weak=*/true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return;
  }
#endif
}

// Backward for one element (k, c, ph, pw) of grad: scatters it into its bin's samples with
// atomic adds, like torchvision's CUDA kernel. One thread per grad element (K*C*ph*pw of them,
// where BackwardPlane has only N*C), but the order of the adds varies from run to run, so the
// result is not bit-reproducible: used on CUDA unless deterministic algorithms are requested.
template <typename scalar_t>
struct BackwardScatter {
  using T = at::opmath_type<scalar_t>;
  const scalar_t* grad;  // [K, C, ph, pw]
  const T* rois;
  T* grad_input;         // [N, C, H, W] contiguous, opmath, zero on entry
  Strides4 gs;
  int64_t channels, height, width, pooled_h, pooled_w, sampling_ratio;
  T spatial_scale;
  bool aligned;

  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }

  C10_HOST_DEVICE void operator()(int64_t, int64_t k, int64_t c, int64_t ph, int64_t pw, Axis, Axis) const {
    const RoiGeometry<T> g = roi_geometry(rois + k * 5, spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio);
    const T gv = T(grad[k * gs.n + c * gs.c + ph * gs.h + pw * gs.w]) / g.count;
    T* dst = grad_input + (g.batch * channels + c) * height * width;
    for_each_sample(g, ph, pw, height, width, [&](const AxisSample<T>& ys, const AxisSample<T>& xs) {
      atomic_add(dst + ys.lo * width + xs.lo, gv * (ys.w_lo * xs.w_lo));
      atomic_add(dst + ys.lo * width + xs.hi, gv * (ys.w_lo * xs.w_hi));
      atomic_add(dst + ys.hi * width + xs.lo, gv * (ys.w_hi * xs.w_lo));
      atomic_add(dst + ys.hi * width + xs.hi, gv * (ys.w_hi * xs.w_hi));
    });
  }
};

}  // namespace roi_align
}  // namespace fastseg
