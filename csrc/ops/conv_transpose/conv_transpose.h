// Transpose convolution + crop: the per-element math shared by the CPU and CUDA kernels.
//
// Coordinates. Along one axis, input position i with kernel tap t lands on full-output position
// Y = i*s - p + t*d (the full output has (n_in-1)*s - 2p + d*(k-1) + 1 positions). The cropped
// output position y is Y = y + crop. We work with Z = Y + p >= 0, so Z = i*s + t*d.
//
// Two bodies (contract in common/body.h), each writing one output element:
// - DirectGather: sums input * weight over the taps that land on the element (any stride and
//   dilation). For few channels per group or dilated kernels.
// - PhaseGather: reads the element from the result of the phase GEMM (conv_transpose_ops.h) and
//   adds the bias: the fused "pixel shuffle + crop + bias" write.
// Both write through the output's strides, so the output may be any strided view (a channel slice
// of a U-Net concat buffer).
#pragma once

#include <algorithm>
#include <cstdint>

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include "common/tensor_view.h"

namespace fastseg {
namespace conv_transpose {

// One spatial axis of the problem.
struct CtAxis {
  int64_t n_in;    // input size
  int64_t k, s, p, d;
  int64_t crop;    // first full-output position kept
  int64_t n_out;   // cropped output size
  int64_t step_k;  // tap step between consecutive taps landing on one position: s / gcd(s, d)
  int64_t step_i;  // the matching input step: d / gcd(s, d)
};

C10_HOST_DEVICE inline int64_t gcd64(int64_t a, int64_t b) {
  while (b != 0) {
    const int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

inline CtAxis make_axis(int64_t n_in, int64_t k, int64_t s, int64_t p, int64_t d, int64_t crop, int64_t n_out) {
  const int64_t g = gcd64(s, d);
  return {n_in, k, s, p, d, crop, n_out, s / g, d / g};
}

// Full (uncropped) transpose-convolution output size along an axis.
inline int64_t full_size(int64_t n_in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (n_in - 1) * s - 2 * p + d * (k - 1) + 1;
}

// The first tap landing on cropped output position y: {tap, input position}, or {k, 0} if none.
// Later taps follow as tap += step_k, input -= step_i while tap < k and input >= 0.
C10_HOST_DEVICE inline Axis first_tap(int64_t y, const CtAxis& a) {
  const int64_t z = y + a.crop + a.p;
  const int64_t first_period = a.step_k < a.k ? a.step_k : a.k;
  for (int64_t t = 0; t < first_period; ++t) {
    const int64_t rest = z - t * a.d;
    if (rest < 0) break;
    if (rest % a.s != 0) continue;
    int64_t tap = t, i = rest / a.s;
    if (i >= a.n_in) {  // skip the taps that land beyond the input's end
      const int64_t m = (i - (a.n_in - 1) + a.step_i - 1) / a.step_i;
      tap += m * a.step_k;
      i -= m * a.step_i;
    }
    if (tap < a.k && i >= 0) return {tap, i};
    break;
  }
  return {a.k, 0};
}

// out[n, co, y, x] = bias[co] + sum over ci of the group, taps (ty, tx) landing on (y, x) of
// input[n, ci, iy, ix] * weight[ci, co % cout_g, ty, tx]. Weight is contiguous [Cin, Cout/g, kh, kw].
template <typename T>
struct DirectGather {
  const T* input;
  const T* weight;
  const T* bias;  // nullptr: no bias
  T* out;
  Strides4 is, os;
  CtAxis h, w;
  int64_t cin_g, cout_g;

  C10_HOST_DEVICE Axis row(int64_t y) const { return first_tap(y, h); }
  C10_HOST_DEVICE Axis col(int64_t x) const { return first_tap(x, w); }

  C10_HOST_DEVICE void operator()(int64_t, int64_t n, int64_t co, int64_t y, int64_t x, Axis ry, Axis cx) const {
    using acc_t = at::opmath_type<T>;
    const int64_t g = co / cout_g, co_g = co - g * cout_g;
    acc_t acc = bias != nullptr ? acc_t(bias[co]) : acc_t(0);
    for (int64_t ci = g * cin_g; ci < (g + 1) * cin_g; ++ci) {
      const T* in_c = input + n * is.n + ci * is.c;
      const T* w_c = weight + (ci * cout_g + co_g) * h.k * w.k;
      for (int64_t ty = ry.a, iy = ry.b; ty < h.k && iy >= 0; ty += h.step_k, iy -= h.step_i) {
        for (int64_t tx = cx.a, ix = cx.b; tx < w.k && ix >= 0; tx += w.step_k, ix -= w.step_i) {
          acc += acc_t(in_c[iy * is.h + ix * is.w]) * acc_t(w_c[ty * w.k + tx]);
        }
      }
    }
    out[n * os.n + co * os.c + y * os.h + x * os.w] = T(acc);
  }

  // CPU row form (NCHW outputs; common/body.h): for dilation 1 along x, output phase r
  // (x + crop + p = q*s + r) receives taps r, r + s, ... from input columns q, q - 1, ...: so
  // each (ci, ty, tap) is one contiguous multiply-add over the phase's outputs, which the
  // compiler vectorises. Same sums in the same order as operator(), so the same results.
  static constexpr bool kRowKernel = true;
  int64_t run_row(int64_t, int64_t n, int64_t co, int64_t y, Axis ry, const Axis* cols, void* scratch) const {
    using acc_t = at::opmath_type<T>;
    if (w.d != 1) {
      for (int64_t x = 0; x < w.n_out; ++x) (*this)(0, n, co, y, x, ry, cols[x]);
      return 0;
    }
    acc_t* acc = static_cast<acc_t*>(scratch);
    const int64_t s = w.s, z0 = w.crop + w.p;
    const int64_t g = co / cout_g, co_g = co - g * cout_g;
    const acc_t b0 = bias != nullptr ? acc_t(bias[co]) : acc_t(0);
    T* dst = out + n * os.n + co * os.c + y * os.h;
    // Phase by phase (output columns x_first, x_first + s, ...): accumulate, then store. (Tried:
    // all phases first, then one contiguous pass over the row: slower, the interleaving loop
    // costs more than the strided stores into a row that is in L1 after the first phase.)
    for (int64_t r = 0; r < s; ++r) {
      const int64_t x_first = ((r - z0) % s + s) % s;
      if (x_first >= w.n_out) continue;
      const int64_t count = (w.n_out - x_first + s - 1) / s, q_first = (x_first + z0) / s;
      for (int64_t m = 0; m < count; ++m) acc[m] = b0;
      for (int64_t ci = g * cin_g; ci < (g + 1) * cin_g; ++ci) {
        const T* in_c = input + n * is.n + ci * is.c;
        const T* w_c = weight + (ci * cout_g + co_g) * h.k * w.k;
        for (int64_t ty = ry.a, iy = ry.b; ty < h.k && iy >= 0; ty += h.step_k, iy -= h.step_i) {
          const T* src = in_c + iy * is.h;
          for (int64_t j = 0, tx = r; tx < w.k; ++j, tx += s) {
            const acc_t wv = acc_t(w_c[ty * w.k + tx]);
            // output m of the phase reads input column q_first + m - j, which must be in [0, n_in)
            const int64_t lo = std::max<int64_t>(0, j - q_first);
            const int64_t hi = std::min<int64_t>(count, w.n_in + j - q_first);
            const T* col0 = src + (q_first - j) * is.w;
            if (is.w == 1) {
              for (int64_t m = lo; m < hi; ++m) acc[m] += acc_t(col0[m]) * wv;
            } else {
              for (int64_t m = lo; m < hi; ++m) acc[m] += acc_t(col0[m * is.w]) * wv;
            }
          }
        }
      }
      for (int64_t m = 0; m < count; ++m) dst[(x_first + m * s) * os.w] = T(acc[m]);
    }
    return 0;
  }
};

// Strides (in elements) of the phase GEMM result P, indexed [n, group, phase_y, phase_x, co_g, qy, qx]
// (any order in memory; conv_transpose_ops.h picks it).
struct PhaseStrides {
  int64_t n, g, ry, rx, c, qy, qx;
};

// x-axis phase constants for the CPU row form, computed once on the host:
// crop + p = zq*s + zr, n_out = na*s + nb.
struct PhaseCols {
  int64_t zq, zr, na, nb;
};

inline PhaseCols phase_cols(const CtAxis& a) {
  const int64_t z0 = a.crop + a.p;
  return {z0 / a.s, z0 % a.s, a.n_out / a.s, a.n_out % a.s};
}

// Phase decomposition along one axis: z = q*s + r; q is relative to the first q of the crop.
C10_HOST_DEVICE inline Axis phase_of(int64_t y, const CtAxis& a, int64_t q0, int64_t stride_q, int64_t stride_r) {
  const int64_t z = y + a.crop + a.p;
  const int64_t q = z / a.s, r = z - q * a.s;
  return {(q - q0) * stride_q + r * stride_r, 0};
}

// out[n, co, y, x] = bias[co] + P[n, g, ry, rx, co_g, qy, qx]: one read per element.
template <typename T>
struct PhaseGather {
  const T* phases;
  const T* bias;  // nullptr: no bias
  T* out;
  PhaseStrides ps;
  Strides4 os;
  CtAxis h, w;
  int64_t qy0, qx0;
  int64_t groups, cout_g;
  PhaseCols xp;

  C10_HOST_DEVICE Axis row(int64_t y) const { return phase_of(y, h, qy0, ps.qy, ps.ry); }
  C10_HOST_DEVICE Axis col(int64_t x) const { return phase_of(x, w, qx0, ps.qx, ps.rx); }

  C10_HOST_DEVICE void operator()(int64_t, int64_t n, int64_t co, int64_t y, int64_t x, Axis ry, Axis cx) const {
    using acc_t = at::opmath_type<T>;
    const int64_t g = groups == 1 ? 0 : co / cout_g, co_g = co - g * cout_g;  // no division when ungrouped
    acc_t v = acc_t(phases[n * ps.n + g * ps.g + co_g * ps.c + ry.a + cx.a]);
    if (bias != nullptr) v += acc_t(bias[co]);
    out[n * os.n + co * os.c + y * os.h + x * os.w] = T(v);
  }

  // CPU row form (NCHW outputs): the same reads and sums with the row's invariants hoisted.
  static constexpr bool kRowKernel = true;
  int64_t run_row(int64_t, int64_t n, int64_t co, int64_t y, Axis ry, const Axis* cols, void*) const {
    using acc_t = at::opmath_type<T>;
    const int64_t g = groups == 1 ? 0 : co / cout_g, co_g = co - g * cout_g;
    const T* src = phases + n * ps.n + g * ps.g + co_g * ps.c + ry.a;
    T* dst = out + n * os.n + co * os.c + y * os.h;
    const acc_t b0 = bias != nullptr ? acc_t(bias[co]) : acc_t(0);
    if (ps.qx == 1) {
      // Each phase's inputs are one contiguous run of P (the U-Net layout): phase by phase, a
      // sequential read and a stride-s write, no per-element offsets (the per-element gather
      // below cost as much as the 2x2/s2 GEMM's copy-out).
      // No divisions per row (they cost more than a 56-wide row's copy): with z0 = crop + p =
      // zq*s + zr, phase r starts at x_first = r - zr (+ s if negative), input column zq (+1).
      const int64_t s = w.s;
      for (int64_t r = 0; r < s; ++r) {
        const bool wraps = r < xp.zr;
        const int64_t x_first = wraps ? r - xp.zr + s : r - xp.zr;
        const int64_t count = xp.na + (xp.nb > x_first ? 1 : 0);  // #{m : x_first + m*s < n_out}
        if (count <= 0) continue;
        const T* src_r = src + (xp.zq + (wraps ? 1 : 0) - qx0) + r * ps.rx;
        T* dst_r = dst + x_first * os.w;
        if (s == 2 && os.w == 1) {
          for (int64_t m = 0; m < count; ++m) dst_r[2 * m] = T(acc_t(src_r[m]) + b0);
        } else {
          const int64_t step = s * os.w;
          for (int64_t m = 0; m < count; ++m) dst_r[m * step] = T(acc_t(src_r[m]) + b0);
        }
      }
      return 0;
    }
    if (bias != nullptr) {
      for (int64_t x = 0; x < w.n_out; ++x) dst[x * os.w] = T(acc_t(src[cols[x].a]) + b0);
    } else {
      for (int64_t x = 0; x < w.n_out; ++x) dst[x * os.w] = src[cols[x].a];
    }
    return 0;
  }
};

// The phase GEMM's right-hand side, cols[nc, t, qy, qx] (contiguous; nc = n * Cin + ci,
// t = ty * Tw + tx) = input[n, ci, qy0 + qy - ty, qx0 + qx - tx], zero outside the input. One
// body instead of a zeros + Th*Tw strided copies: on small layers (FCN-8s' 0.2 ms upscore2)
// those ~30 tensor ops cost more than the GEMM.
template <typename T>
struct PhaseColumns {
  const T* input;
  T* cols;
  Strides4 is;
  int64_t cin, H, W, Tw, qy0, qx0;

  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }

  C10_HOST_DEVICE void operator()(int64_t offset, int64_t nc, int64_t t, int64_t qy, int64_t qx, Axis, Axis) const {
    const int64_t n = nc / cin, ci = nc - n * cin, ty = t / Tw, tx = t - ty * Tw;
    const int64_t iy = qy0 + qy - ty, ix = qx0 + qx - tx;
    const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
    cols[offset] = inside ? input[n * is.n + ci * is.c + iy * is.h + ix * is.w] : T(0);
  }
};

// The phase GEMM's left-hand side, wp[g, m, ci, t] (contiguous; t = ty * Tw + tx; m = (co, ry, rx),
// or (ry, rx, co) when phase_major) = weight[g * cin_g + ci, co, ty*s_h + ry, tx*s_w + rx], zero
// for taps past the kernel.
template <typename T>
struct PhaseWeights {
  const T* weight;
  T* wp;
  Strides4 ws;
  int64_t cin_g, cout_g, kh, kw, sh, sw, Tw;
  bool phase_major;

  static constexpr bool kNoAxisTables = true;  // row/col trivial: no tables on CUDA (body.h)
  C10_HOST_DEVICE Axis row(int64_t) const { return {0, 0}; }
  C10_HOST_DEVICE Axis col(int64_t) const { return {0, 0}; }

  C10_HOST_DEVICE void operator()(int64_t offset, int64_t g, int64_t m, int64_t ci, int64_t t, Axis, Axis) const {
    int64_t co, ry, rx;
    if (phase_major) {
      const int64_t r = m / cout_g;
      co = m - r * cout_g, ry = r / sw, rx = r - ry * sw;
    } else {
      const int64_t r = m % (sh * sw);
      co = m / (sh * sw), ry = r / sw, rx = r - ry * sw;
    }
    const int64_t ty = t / Tw, tx = t - ty * Tw, y = ty * sh + ry, x = tx * sw + rx;
    wp[offset] = y < kh && x < kw ? weight[(g * cin_g + ci) * ws.n + co * ws.c + y * ws.h + x * ws.w] : T(0);
  }
};

}  // namespace conv_transpose
}  // namespace fastseg
