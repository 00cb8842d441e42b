// RoIAlign's CPU-only paths (the CPU default; `fastseg.testing.strategy(cpu_row_kernels=False)`
// runs the shared bodies of roi_align.h instead): the sample table of a roi is built once and
// applied to every channel, with the same products and summation order as the bodies, so the
// same results. Included by roi_align.cpp only (compiled with OpenMP); the shared flows of
// roi_align_ops.h reach these functions under `if constexpr (Backend::kIsCpu)`, so no CUDA
// translation unit instantiates them (docs/design.md §4; tests/test_cpu_threads.py).
#pragma once

#include <algorithm>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "common/cpu_backend.h"
#include "common/tensor_view.h"
#include "ops/roi_align/roi_align.h"
#include "ops/roi_align/roi_align_ops.h"  // the declarations these definitions match

namespace fastseg {
namespace roi_align {

// The valid samples of one roi, bin by bin (CPU fast path: built once per roi, used for every
// channel). Entry e of bin b: pixel offsets (y * stride_h + x * stride_w) and weights of its 4
// neighbours, the weights being the products Forward/BackwardPlane use.
template <typename T>
struct SampleTable {
  std::vector<int64_t> bin_start;  // pooled_h * pooled_w + 1
  std::vector<int64_t> pos;        // 4 per entry
  std::vector<T> weight;           // 4 per entry

  void build(const RoiGeometry<T>& g, int64_t height, int64_t width, int64_t pooled_h, int64_t pooled_w,
             int64_t stride_h, int64_t stride_w) {
    bin_start.assign(1, 0);
    pos.clear();
    weight.clear();
    for (int64_t ph = 0; ph < pooled_h; ++ph) {
      for (int64_t pw = 0; pw < pooled_w; ++pw) {
        for_each_sample(g, ph, pw, height, width, [&](const AxisSample<T>& ys, const AxisSample<T>& xs) {
          pos.insert(pos.end(), {ys.lo * stride_h + xs.lo * stride_w, ys.lo * stride_h + xs.hi * stride_w,
                                 ys.hi * stride_h + xs.lo * stride_w, ys.hi * stride_h + xs.hi * stride_w});
          weight.insert(weight.end(), {ys.w_lo * xs.w_lo, ys.w_lo * xs.w_hi, ys.w_hi * xs.w_lo, ys.w_hi * xs.w_hi});
        });
        bin_start.push_back(int64_t(pos.size() / 4));
      }
    }
  }
};

// Forward, parallel over rois: one table per roi, applied to every channel (vectorised over
// channels when C is contiguous).
template <typename scalar_t>
void cpu_forward(const Levels<scalar_t>& lv, const int64_t* levels, const at::Tensor& r, at::Tensor& out,
                 int64_t channels, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  using T = at::opmath_type<scalar_t>;
  const int64_t K = r.size(0), C = channels;
  const Strides4 os = strides4(out);
  const T* rois = r.const_data_ptr<T>();
  scalar_t* y = out.mutable_data_ptr<scalar_t>();
  at::parallel_for(0, K, 1, [&](int64_t k0, int64_t k1) {
    SampleTable<T> t;
    std::vector<T> acc(C);
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t l = levels != nullptr ? levels[k] : 0;
      const Strides4& is = lv.strides[l];
      const RoiGeometry<T> g = roi_geometry(rois + k * 5, lv.scale[l], aligned, pooled_h, pooled_w, sampling_ratio);
      t.build(g, lv.height[l], lv.width[l], pooled_h, pooled_w, is.h, is.w);
      const scalar_t* img = lv.data[l] + g.batch * is.n;
      const bool channels_inner = is.c == 1 && C > 1;
      for (int64_t bin = 0; bin < pooled_h * pooled_w; ++bin) {
        const int64_t ph = bin / pooled_w, pw = bin % pooled_w;
        scalar_t* dst = y + k * os.n + ph * os.h + pw * os.w;
        if (channels_inner) {  // C contiguous: vectorised over channels
          std::fill(acc.begin(), acc.end(), T(0));
          for (int64_t e = t.bin_start[bin]; e < t.bin_start[bin + 1]; ++e) {
            const int64_t* p = &t.pos[4 * e];
            const T* w = &t.weight[4 * e];
            const scalar_t *a = img + p[0], *b = img + p[1], *c = img + p[2], *d = img + p[3];
            for (int64_t ch = 0; ch < C; ++ch) {
              acc[ch] += w[0] * T(a[ch]) + w[1] * T(b[ch]) + w[2] * T(c[ch]) + w[3] * T(d[ch]);
            }
          }
          for (int64_t ch = 0; ch < C; ++ch) dst[ch * os.c] = static_cast<scalar_t>(acc[ch] / g.count);
        } else {
          for (int64_t ch = 0; ch < C; ++ch) {
            const scalar_t* plane = img + ch * is.c;
            T v = 0;
            for (int64_t e = t.bin_start[bin]; e < t.bin_start[bin + 1]; ++e) {
              const int64_t* p = &t.pos[4 * e];
              const T* w = &t.weight[4 * e];
              v += w[0] * T(plane[p[0]]) + w[1] * T(plane[p[1]]) + w[2] * T(plane[p[2]]) + w[3] * T(plane[p[3]]);
            }
            dst[ch * os.c] = static_cast<scalar_t>(v / g.count);
          }
        }
      }
    }
  });
}

// Backward, parallel over channels: each task scatters its channels of every roi (in roi order,
// so deterministic), with the roi's table built once per task.
template <typename scalar_t>
void cpu_backward(const at::Tensor& grad, const at::Tensor& r, at::Tensor& grad_input, int64_t pooled_h,
                  int64_t pooled_w, int64_t sampling_ratio, double spatial_scale, bool aligned) {
  using T = at::opmath_type<scalar_t>;
  const int64_t K = r.size(0), C = grad_input.size(1), H = grad_input.size(2), W = grad_input.size(3);
  const Strides4 gs = strides4(grad);
  const scalar_t* gp = grad.const_data_ptr<scalar_t>();
  const T* rois = r.const_data_ptr<T>();
  T* gi = grad_input.mutable_data_ptr<T>();
  const int64_t grain = std::max<int64_t>(1, C / (4 * at::get_num_threads()));
  at::parallel_for(0, C, grain, [&](int64_t c0, int64_t c1) {
    SampleTable<T> t;
    for (int64_t k = 0; k < K; ++k) {
      const RoiGeometry<T> g = roi_geometry(rois + k * 5, T(spatial_scale), aligned, pooled_h, pooled_w, sampling_ratio);
      t.build(g, H, W, pooled_h, pooled_w, W, 1);
      for (int64_t ch = c0; ch < c1; ++ch) {
        T* dst = gi + (g.batch * C + ch) * H * W;
        for (int64_t bin = 0; bin < pooled_h * pooled_w; ++bin) {
          const T gv = T(gp[k * gs.n + ch * gs.c + (bin / pooled_w) * gs.h + (bin % pooled_w) * gs.w]) / g.count;
          for (int64_t e = t.bin_start[bin]; e < t.bin_start[bin + 1]; ++e) {
            const int64_t* p = &t.pos[4 * e];
            const T* w = &t.weight[4 * e];
            dst[p[0]] += gv * w[0];
            dst[p[1]] += gv * w[1];
            dst[p[2]] += gv * w[2];
            dst[p[3]] += gv * w[3];
          }
        }
      }
    }
  });
}

}  // namespace roi_align
}  // namespace fastseg
