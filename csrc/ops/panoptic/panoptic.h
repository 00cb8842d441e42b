// Panoptic fusion: the per-pixel math shared by the CPU and CUDA kernels (docs/design.md §5.6).
//
// Both fusions walk the instances one at a time in decreasing score order; each step is two
// passes over the instance's pixel rectangle (a Region): CountOverlap sums the instance's mask
// area and how much of it is already taken, the host applies the fusion's rule (accept), and
// Claim writes the new segment id into the mask's free pixels. A mask comes either already
// pasted ([K, H, W]) or as a [K, Mh, Mw] per-box mask pasted on the fly with paste_masks' math
// (paste_masks.h), so no K x H x W tensor is ever made. EfficientPS then takes, per pixel, the
// argmax over the stuff logits and each kept instance's fused logit (Fuse).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include "common/tensor_view.h"
#include "ops/paste_masks/paste_masks.h"

namespace fastseg {
namespace panoptic {

// A rectangle of image pixels: rows [y0, y1), columns [x0, x1).
struct Region {
  int64_t y0, y1, x0, x1;
  C10_HOST_DEVICE bool contains(int64_t y, int64_t x) const { return y >= y0 && y < y1 && x >= x0 && x < x1; }
  C10_HOST_DEVICE bool empty() const { return y1 <= y0 || x1 <= x0; }
};

// Pixels [first, last) of an axis of `size` pixels whose centre i + 0.5 lies in [lo, hi): the
// pixels "inside" a box (EfficientPS bounds MLA and MLB by them). Computed by formula, then
// nudged so that it agrees with the per-pixel test in T exactly.
template <typename T>
C10_HOST_DEVICE inline void box_pixel_range(T lo, T hi, int64_t size, int64_t& first, int64_t& last) {
  first = 0, last = 0;
  if (!(hi > lo) || !(lo == lo) || !(hi == hi) || !(hi > T(0)) || !(lo < static_cast<T>(size))) return;
  const T f = ::ceil(lo - T(0.5)), l = ::ceil(hi - T(0.5));
  first = f < T(0) ? 0 : (f > static_cast<T>(size) ? size : static_cast<int64_t>(f));
  last = l < T(0) ? 0 : (l > static_cast<T>(size) ? size : static_cast<int64_t>(l));
  while (first > 0 && static_cast<T>(first - 1) + T(0.5) >= lo) --first;
  while (first < size && !(static_cast<T>(first) + T(0.5) >= lo)) ++first;
  while (last < size && static_cast<T>(last) + T(0.5) < hi) ++last;
  while (last > 0 && !(static_cast<T>(last - 1) + T(0.5) < hi)) --last;
  if (last < first) last = first;
}

// A region's two counts packed in one int64 (the backends sum one count per body): the mask's
// area in the low 32 bits, the already-taken part of it above. Regions are < 2^31 pixels.
constexpr int64_t kTakenUnit = int64_t(1) << 32;
C10_HOST_DEVICE inline int64_t unpack_area(int64_t packed) { return packed & (kTakenUnit - 1); }
C10_HOST_DEVICE inline int64_t unpack_taken(int64_t packed) { return packed >> 32; }

// Whether an instance with `area` mask pixels, `taken` of them already in a segment, becomes a
// segment. Heuristic (detectron2): non-empty, taken / area <= overlap_threshold, and some pixel
// left free (need_free). EfficientPS: the same without need_free (its fused argmax decides the
// pixels later).
C10_HOST_DEVICE inline bool accept(int64_t area, int64_t taken, double overlap_threshold, bool need_free) {
  if (area <= 0) return false;
  if (static_cast<double>(taken) / static_cast<double>(area) > overlap_threshold) return false;
  return !need_free || area > taken;
}

// ---- instance masks: in(k, y, x) says whether image pixel (x, y) belongs to mask k ----------

// Already pasted [K, H, W] masks (strides s: .n = k, .h = y, .w = x). Probabilities: >= 0.5
// (detectron2's binarisation); bool: as is; logits (EfficientPS): > 0, i.e. sigmoid > 0.5 exactly.
template <typename scalar_t, bool kLogits>
struct PastedMask {
  using T = at::opmath_type<scalar_t>;
  const scalar_t* m;
  Strides4 s;
  C10_HOST_DEVICE T value(int64_t k, int64_t y, int64_t x) const { return T(m[k * s.n + y * s.h + x * s.w]); }
  C10_HOST_DEVICE static bool test(scalar_t v) {
    if constexpr (std::is_same_v<scalar_t, bool>) {
      return v;
    } else if constexpr (kLogits) {
      return T(v) > T(0);
    } else {
      return T(v) >= T(0.5);
    }
  }
  C10_HOST_DEVICE bool operator()(int64_t k, int64_t y, int64_t x) const { return test(m[k * s.n + y * s.h + x * s.w]); }
};

// [K, Mh, Mw] per-box masks, pasted into boxes [K, 4] (opmath, contiguous) on the fly.
template <typename scalar_t, bool kLogits>
struct BoxMask {
  using T = at::opmath_type<scalar_t>;
  const scalar_t* m;
  Strides4 s;
  int64_t mh, mw;
  const T* boxes;
  C10_HOST_DEVICE T value(int64_t k, int64_t y, int64_t x) const {
    return paste_masks::pasted_value(m + k * s.n, s.h, s.w, mh, mw, boxes + 4 * k, y, x);
  }
  C10_HOST_DEVICE bool operator()(int64_t k, int64_t y, int64_t x) const {
    if constexpr (kLogits) {
      return value(k, y, x) > T(0);
    } else {
      return value(k, y, x) >= T(0.5);
    }
  }
};

// ---- the per-instance passes, walked over the instance's Region as a [1, 1, rows, cols] output

template <typename Mask>
struct CountOverlap {
  Mask mask;
  const int32_t* taken;  // [H, W] contiguous: 0 = free
  int64_t width, k;
  Region r;
  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE int64_t operator()(int64_t, int64_t, int64_t, int64_t i, int64_t j, Axis, Axis) const {
    const int64_t y = r.y0 + i, x = r.x0 + j;
    if (!mask(k, y, x)) return 0;
    return taken[y * width + x] != 0 ? kTakenUnit + 1 : 1;
  }
};

template <typename Mask>
struct Claim {
  Mask mask;
  int32_t* out;  // [H, W] contiguous
  int64_t width, k;
  Region r;
  int32_t id;
  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE void operator()(int64_t, int64_t, int64_t, int64_t i, int64_t j, Axis, Axis) const {
    const int64_t y = r.y0 + i, x = r.x0 + j;
    int32_t* p = out + y * width + x;
    if (*p == 0 && mask(k, y, x)) *p = id;
  }
};

// Row extents of pasted masks (Mask = PastedMask), to bound each instance's Region: for element
// (i, y) of a [1, n, H, 1] walk over the instances k = instances[i], extents[i, y] = (first,
// last + 1) of the row's mask pixels, (W, 0) if none.
template <typename Mask>
struct RowExtent {
  static constexpr bool kRowKernel = true;
  static constexpr int64_t kChunk = 64;
  Mask mask;
  const int64_t* instances;  // [n]
  int64_t* extents;          // [n, H, 2]
  int64_t height, width;
  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE void operator()(int64_t, int64_t, int64_t i, int64_t y, int64_t, Axis, Axis) const {
    const int64_t k = instances[i];
    int64_t first = width, last = 0;
    for (int64_t x = 0; x < width; ++x) {
      if (mask(k, y, x)) {
        if (first == width) first = x;
        last = x + 1;
      }
    }
    extents[2 * (i * height + y)] = first;
    extents[2 * (i * height + y) + 1] = last;
  }

  // CPU form (this pass reads all K x H x W mask values, so it is the memory-bound part of the
  // pasted heuristic): branch-free chunks of 64 pixels that the compiler vectorises, from the
  // left until the first mask pixel, then from the right until the last.
  // (An int accumulator, and bool masks read as bytes: GCC vectorises neither an OR-reduction
  // into a bool nor loads of bool.)
  bool any_in(int64_t k, int64_t y, int64_t x0, int64_t x1) const {
    using elem_t = std::remove_cv_t<std::remove_pointer_t<decltype(mask.m)>>;
    int any = 0;
    if (mask.s.w == 1) {  // contiguous rows: a plain pointer loop
      const auto* r = mask.m + k * mask.s.n + y * mask.s.h;
      if constexpr (std::is_same_v<elem_t, bool>) {
        const auto* bytes = reinterpret_cast<const uint8_t*>(r);
        for (int64_t x = x0; x < x1; ++x) any |= bytes[x];
      } else {
        for (int64_t x = x0; x < x1; ++x) any |= Mask::test(r[x]) ? 1 : 0;
      }
    } else {
      for (int64_t x = x0; x < x1; ++x) any |= mask(k, y, x) ? 1 : 0;
    }
    return any != 0;
  }
  int64_t run_row(int64_t, int64_t, int64_t i, int64_t y, Axis, const Axis*, void*) const {
    const int64_t k = instances[i];
    int64_t first = width, last = 0;
    for (int64_t c = 0; c < width; c += kChunk) {
      const int64_t e = c + kChunk < width ? c + kChunk : width;
      if (!any_in(k, y, c, e)) continue;
      for (first = c; !mask(k, y, first); ++first) {
      }
      break;
    }
    if (first < width) {
      for (int64_t e = width; e > first; e -= kChunk) {
        const int64_t c = e - kChunk > first ? e - kChunk : first;
        if (!any_in(k, y, c, e)) continue;
        for (last = e; !mask(k, y, last - 1); --last) {
        }
        break;
      }
    }
    extents[2 * (i * height + y)] = first;
    extents[2 * (i * height + y) + 1] = last;
    return 0;
  }
};

// Heuristic stuff step: every free pixel takes the segment of its semantic class (lut[class],
// 0 for classes that make no segment). Classes were range-checked before.
struct ClaimStuff {
  const int64_t* semantic;  // [H, W], strides sh, sw
  int64_t sh, sw;
  const int32_t* lut;
  int32_t* out;
  int64_t width;
  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE void operator()(int64_t, int64_t, int64_t, int64_t y, int64_t x, Axis, Axis) const {
    int32_t* p = out + y * width + x;
    if (*p == 0) *p = lut[semantic[y * sh + x * sw]];
  }
};

// ---- EfficientPS fused logits ---------------------------------------------------------------

template <typename T>
C10_HOST_DEVICE inline T sigmoid(T v) {
  return T(1) / (T(1) + ::exp(-v));
}

// FL = (sigmoid(MLA) + sigmoid(MLB)) * (MLA + MLB).
template <typename T>
C10_HOST_DEVICE inline T fused_logit(T mla, T mlb) {
  return (sigmoid(mla) + sigmoid(mlb)) * (mla + mlb);
}

// argmax with torch.argmax's order: the first maximum wins, and a NaN beats every number (the
// first NaN wins). Starts from -inf with no winner: a pixel where nothing beats -inf is void.
template <typename T>
C10_HOST_DEVICE inline void consider(T v, int32_t channel, T& best, int32_t& winner) {
  if (v > best || (v != v && best == best)) best = v, winner = channel;
}

// Winner channel per pixel of a [1, 1, H, W] walk: 0..S-1 the stuff channels stuff[j], S + i the
// i-th kept instance (inside its box Region only), -1 none. kept/regions/labels list the kept
// instances in order.
template <typename scalar_t, typename Mask>
struct Fuse {
  using T = at::opmath_type<scalar_t>;
  static constexpr bool kRowKernel = true;
  const scalar_t* sem;  // semantic logits [Cs, H, W], strides ss (.c, .h, .w)
  Strides4 ss;
  const int64_t* stuff;  // [S] channel of each stuff class
  int64_t num_stuff;
  Mask mla;
  const int64_t* kept;    // [Kk] instance index
  const Region* regions;  // [Kk] box pixels
  const int64_t* labels;  // [Kk] semantic channel of each kept instance
  int64_t num_kept;
  int32_t* out;  // [H, W] contiguous
  int64_t width;

  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE T semantic(int64_t c, int64_t y, int64_t x) const { return T(sem[c * ss.c + y * ss.h + x * ss.w]); }
  C10_HOST_DEVICE T thing(int64_t i, int64_t y, int64_t x) const {
    return fused_logit(mla.value(kept[i], y, x), semantic(labels[i], y, x));
  }

  C10_HOST_DEVICE void operator()(int64_t, int64_t, int64_t, int64_t y, int64_t x, Axis, Axis) const {
    T best = -std::numeric_limits<T>::infinity();
    int32_t winner = -1;
    for (int64_t j = 0; j < num_stuff; ++j) consider(semantic(stuff[j], y, x), int32_t(j), best, winner);
    for (int64_t i = 0; i < num_kept; ++i) {
      if (regions[i].contains(y, x)) consider(thing(i, y, x), int32_t(num_stuff + i), best, winner);
    }
    out[y * width + x] = winner;
  }

  // The CPU row form: the same comparisons in the same order per pixel, but channel by channel
  // over the row (stuff planes read contiguously) and only over the boxes that cross the row.
  int64_t run_row(int64_t, int64_t, int64_t, int64_t y, Axis, const Axis*, void* scratch) const {
    T* best = static_cast<T*>(scratch);  // W + 1 slots of 8 bytes >= sizeof(T)
    int32_t* winner = out + y * width;
    for (int64_t x = 0; x < width; ++x) best[x] = -std::numeric_limits<T>::infinity(), winner[x] = -1;
    for (int64_t j = 0; j < num_stuff; ++j) {
      for (int64_t x = 0; x < width; ++x) consider(semantic(stuff[j], y, x), int32_t(j), best[x], winner[x]);
    }
    for (int64_t i = 0; i < num_kept; ++i) {
      const Region& r = regions[i];
      if (y < r.y0 || y >= r.y1) continue;
      for (int64_t x = r.x0; x < r.x1; ++x) consider(thing(i, y, x), int32_t(num_stuff + i), best[x], winner[x]);
    }
    return 0;
  }
};

// Final EfficientPS write, in place: winner channel c (or -1) -> segment id lut[c + 1].
struct WinnerToSegment {
  const int32_t* lut;
  int32_t* map;  // [H, W] contiguous
  int64_t width;
  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE void operator()(int64_t, int64_t, int64_t, int64_t y, int64_t x, Axis, Axis) const {
    int32_t* p = map + y * width + x;
    *p = lut[*p + 1];
  }
};

}  // namespace panoptic
}  // namespace fastseg
