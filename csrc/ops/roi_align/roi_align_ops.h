// RoIAlign: checks, roi validation and the two kernels' flow, written once for both backends.
// Forward: one Forward body per output element (in the output's memory order, so channels-last
// input gives channels-last output read with C innermost). Backward on CUDA: one BackwardScatter
// body per grad element (atomic adds, as torchvision), or, when
// torch.are_deterministic_algorithms_enabled(), one BackwardPlane body per (n, c) plane of
// grad_input: deterministic without atomics (torchvision's CPU backward is a serial scatter).
// On the CPU, by default, per-roi sample tables shared by all channels instead, forward and
// backward (cpu_forward / cpu_backward): CPU-only code in roi_align_cpu.h, which only
// roi_align.cpp includes. The flows below reach it under `if constexpr (Backend::kIsCpu)`, so
// the CUDA translation unit never instantiates it (docs/design.md §4).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "common/body.h"
#include "common/checks.h"
#include "common/tensor_view.h"
#include "ops/roi_align/roi_align.h"

namespace fastseg {
namespace roi_align {

// Testing hook (fastseg.testing.strategy(roi_align_backward=...)): 0 auto, 1 plane (deterministic),
// 2 atomic scatter.
enum class BackwardStrategy : int64_t { kAuto = 0, kPlane = 1, kScatter = 2 };
BackwardStrategy forced_backward();

// Adaptive sampling (sampling_ratio <= 0) takes ceil(bin size) samples per axis; beyond this
// many per bin a roi is refused instead of running for hours.
constexpr double kMaxSamplesPerBin = double(1 << 24);

inline void check_args(const char* op, const at::Tensor& rois, const at::Tensor& like, int64_t pooled_h,
                       int64_t pooled_w) {
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, "fastseg.", op,
              ": rois must have shape [K, 5] (batch index, x1, y1, x2, y2), got ", rois.sizes());
  check_floating(rois, op, "rois");
  check_same_device(like, rois, op, "input", "rois");
  TORCH_CHECK(pooled_h >= 1 && pooled_w >= 1, "fastseg.", op, ": output_size must be >= 1, got [", pooled_h, ", ",
              pooled_w, "]");
}

// The rois in opmath precision, contiguous, after checking, in this order, that every level
// index names a level (multi_scale_roi_align: `levels`, `n_levels`), every coordinate is finite,
// every batch index names an image (torchvision truncates it to an int) and adaptive sampling
// stays bounded. The checks are reductions on the rois' device into one small summary that is
// read back once: on CUDA one device-to-host copy per call (a sync, so the op cannot be captured
// in a CUDA graph), whatever the number of checks. The same tensor ops run on the CPU, where the
// read is free.
inline at::Tensor prepared_rois(const char* op, const at::Tensor& rois, int64_t batch, at::ScalarType acc,
                                double spatial_scale, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,
                                const at::Tensor* levels = nullptr, int64_t n_levels = 0) {
  auto r = rois.to(acc).contiguous();
  if (r.size(0) == 0) return r;
  // The summary (double): [per column of the rois: min x5, max x5; (adaptive sampling: samples
  // per bin along x, along y); (levels: min, max)]. Every coordinate is finite iff the column
  // minima and maxima are (aminmax propagates NaN, and an infinity is a minimum or a maximum);
  // column 0's are the batch index range.
  const auto columns = at::aminmax(r, /*dim=*/0);
  std::vector<at::Tensor> parts{at::cat({std::get<0>(columns), std::get<1>(columns)}).to(at::kDouble)};
  if (sampling_ratio <= 0) {
    // Samples per bin along x and y: the largest ceil(max(roi size, 1) / pooled size), taken as
    // ceil(largest size / pooled size) (the same value: division by a positive number and ceil
    // are monotone). Roi sizes (w, h) from columns (x2, y2) - (x1, y1); the aligned shift does
    // not change them. Scalar divisors: a divisor tensor would be one more host-device copy.
    const auto size = (r.narrow(1, 3, 2) - r.narrow(1, 1, 2)).to(at::kDouble) * spatial_scale;
    const auto largest = size.clamp_min(1).amax(0);
    parts.push_back(
        at::ceil(at::stack({largest.select(0, 0) / double(pooled_w), largest.select(0, 1) / double(pooled_h)})));
  }
  if (levels != nullptr) {
    const auto level_range = at::aminmax(*levels);
    parts.push_back(at::stack({std::get<0>(level_range), std::get<1>(level_range)}).to(at::kDouble));
  }
  const at::Tensor summary = (parts.size() == 1 ? parts[0] : at::cat(parts)).to(at::kCPU);  // the one read
  const double* lo = summary.const_data_ptr<double>();
  const double* hi = lo + 5;
  const double* samples = lo + 10;                                     // adaptive sampling only
  const double* level_range_v = lo + (sampling_ratio <= 0 ? 12 : 10);  // levels only
  if (levels != nullptr) {
    TORCH_CHECK(level_range_v[0] >= 0 && level_range_v[1] < double(n_levels), "fastseg.", op,
                ": levels must be in [0, ", n_levels, ")");
  }
  bool finite = true;
  for (int i = 0; i < 5; ++i) finite = finite && std::isfinite(lo[i]) && std::isfinite(hi[i]);
  TORCH_CHECK(finite, "fastseg.", op, ": rois must be finite, got a NaN or infinite coordinate");
  TORCH_CHECK(lo[0] > -1 && hi[0] < double(batch), "fastseg.", op, ": rois[:, 0] (batch index) must be in [0, ", batch,
              "), got values in [", lo[0], ", ", hi[0], "]");
  if (sampling_ratio <= 0) {
    const double gw = samples[0], gh = samples[1];
    TORCH_CHECK(gh * gw <= kMaxSamplesPerBin, "fastseg.", op, ": rois too large for adaptive sampling (", gh, "x", gw,
                " samples per bin at spatial_scale ", spatial_scale, "); pass sampling_ratio > 0");
  }
  return r;
}

// CPU fast paths (the default; `fastseg.testing.strategy(cpu_row_kernels=False)` runs the shared
// bodies instead): the sample table of a roi is built once and applied to every channel. Same
// products and summation order as the bodies, so the same results. Defined in roi_align_cpu.h
// (CPU translation unit only); declared here for the `if constexpr (Backend::kIsCpu)` branches.
template <typename scalar_t>
void cpu_forward(const Levels<scalar_t>& lv, const int64_t* levels, const at::Tensor& r, at::Tensor& out,
                 int64_t channels, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned);
template <typename scalar_t>
void cpu_backward(const at::Tensor& grad, const at::Tensor& r, at::Tensor& grad_input, int64_t pooled_h,
                  int64_t pooled_w, int64_t sampling_ratio, double spatial_scale, bool aligned);

// The levels' data for the kernels. On the CPU fast path, a level that the rois sample densely
// is first copied to channels-last (gathers with C innermost are several times faster than
// per-plane gathers; the copy pays for itself); `keep` holds those copies.
template <typename scalar_t>
Levels<scalar_t> make_levels(c10::ArrayRef<at::Tensor> features, c10::ArrayRef<double> scales, int64_t n_rois,
                             int64_t pooled_h, int64_t pooled_w, bool cpu_fast, std::vector<at::Tensor>& keep) {
  Levels<scalar_t> lv{};
  for (size_t l = 0; l < features.size(); ++l) {
    const at::Tensor& f = features[l];
    const bool dense = n_rois * pooled_h * pooled_w * 16 >= f.size(0) * f.size(2) * f.size(3);
    keep.push_back(cpu_fast && dense && f.stride(1) != 1 && f.size(1) > 1 ? f.contiguous(at::MemoryFormat::ChannelsLast)
                                                                          : f);
    lv.data[l] = keep.back().const_data_ptr<scalar_t>();
    lv.strides[l] = strides4(keep.back());
    lv.height[l] = f.size(2);
    lv.width[l] = f.size(3);
    lv.scale[l] = static_cast<at::opmath_type<scalar_t>>(scales[l]);
  }
  return lv;
}

inline at::ScalarType opmath_of(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

template <typename Backend>
at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                     int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  const char* op = "roi_align";
  check_rank(input, 4, op, "input");
  check_floating(input, op, "input");
  check_args(op, rois, input, pooled_h, pooled_w);
  c10::DeviceGuard guard(input.device());
  const int64_t K = rois.size(0), C = input.size(1);
  auto out = empty_4d(input, K, C, pooled_h, pooled_w, input.scalar_type());
  if (out.numel() == 0) return out;
  TORCH_CHECK(input.size(2) > 0 && input.size(3) > 0, "fastseg.", op, ": input must have non-zero height and width, got ",
              input.sizes());
  const auto acc = opmath_of(input.scalar_type());
  const auto r = prepared_rois(op, rois, input.size(0), acc, spatial_scale, pooled_h, pooled_w, sampling_ratio);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastseg.roi_align", [&] {
    using T = at::opmath_type<scalar_t>;
    if constexpr (Backend::kIsCpu) {
      if (cpu_row_kernels_enabled()) {
        std::vector<at::Tensor> keep;
        const double scale[1] = {spatial_scale};
        const auto lv = make_levels<scalar_t>({input}, scale, K, pooled_h, pooled_w, true, keep);
        cpu_forward<scalar_t>(lv, nullptr, r, out, C, pooled_h, pooled_w, sampling_ratio, aligned);
        return;
      }
    }
    Backend::for_each_4d(shape4(out), Forward<scalar_t>{input.const_data_ptr<scalar_t>(), r.const_data_ptr<T>(),
                                                        out.mutable_data_ptr<scalar_t>(), strides4(input),
                                                        input.size(2), input.size(3), pooled_h, pooled_w,
                                                        sampling_ratio, T(spatial_scale), aligned});
  });
  return out;
}

template <typename Backend>
at::Tensor roi_align_backward(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                              int64_t pooled_w, int64_t batch_size, int64_t channels, int64_t height, int64_t width,
                              int64_t sampling_ratio, bool aligned) {
  const char* op = "roi_align_backward";
  check_rank(grad, 4, op, "grad");
  check_floating(grad, op, "grad");
  check_args(op, rois, grad, pooled_h, pooled_w);
  TORCH_CHECK(grad.size(0) == rois.size(0) && grad.size(1) == channels && grad.size(2) == pooled_h &&
                  grad.size(3) == pooled_w,
              "fastseg.", op, ": grad must have shape [K, C, pooled_h, pooled_w] = [", rois.size(0), ", ", channels,
              ", ", pooled_h, ", ", pooled_w, "], got ", grad.sizes());
  TORCH_CHECK(batch_size >= 0 && channels >= 0 && height >= 0 && width >= 0, "fastseg.", op,
              ": input sizes must be >= 0");
  c10::DeviceGuard guard(grad.device());
  const auto acc = opmath_of(grad.scalar_type());
  auto grad_input = zeros_huge({batch_size, channels, height, width}, grad.options().dtype(acc));
  if (grad.numel() > 0 && grad_input.numel() > 0) {
    const auto r = prepared_rois(op, rois, batch_size, acc, spatial_scale, pooled_h, pooled_w, sampling_ratio);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "fastseg.roi_align_backward", [&] {
      using T = at::opmath_type<scalar_t>;
      const BackwardStrategy forced = forced_backward();
      if constexpr (Backend::kIsCpu) {
        if (cpu_row_kernels_enabled() && forced == BackwardStrategy::kAuto) {
          cpu_backward<scalar_t>(grad, r, grad_input, pooled_h, pooled_w, sampling_ratio, spatial_scale, aligned);
          return;
        }
      }
      // Auto: the atomic scatter on CUDA unless deterministic algorithms are on; the CPU (its
      // tables switched off) runs the deterministic plane body.
      const bool scatter = forced == BackwardStrategy::kScatter ||
                           (forced == BackwardStrategy::kAuto && !Backend::kIsCpu &&
                            !at::globalContext().deterministicAlgorithms());
      if (scatter) {
        Backend::for_each_4d(Shape4{rois.size(0), channels, pooled_h, pooled_w, false},
                             BackwardScatter<scalar_t>{grad.const_data_ptr<scalar_t>(), r.const_data_ptr<T>(),
                                                       grad_input.mutable_data_ptr<T>(), strides4(grad), channels,
                                                       height, width, pooled_h, pooled_w, sampling_ratio,
                                                       T(spatial_scale), aligned});
        return;
      }
      Backend::for_each_index(batch_size * channels,
                              BackwardPlane<scalar_t>{grad.const_data_ptr<scalar_t>(), r.const_data_ptr<T>(),
                                                      grad_input.mutable_data_ptr<T>(), strides4(grad), rois.size(0),
                                                      channels, height, width, pooled_h, pooled_w, sampling_ratio,
                                                      T(spatial_scale), aligned});
    });
  }
  const auto fmt = is_channels_last(grad) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  return grad_input.to(grad.scalar_type()).contiguous(fmt);
}

// torchvision's MultiScaleRoIAlign after level assignment (done in Python with torchvision's
// formula): roi k is pooled from features[levels[k]] at scales[levels[k]], aligned=False, all
// levels in one launch, output rows in roi order.
template <typename Backend>
at::Tensor multi_scale_roi_align(at::TensorList features, const at::Tensor& rois, const at::Tensor& levels,
                                 c10::ArrayRef<double> scales, int64_t pooled_h, int64_t pooled_w,
                                 int64_t sampling_ratio) {
  const char* op = "multi_scale_roi_align";
  const int64_t L = int64_t(features.size());
  TORCH_CHECK(L >= 1 && L <= kMaxLevels, "fastseg.", op, ": features must hold 1 to ", kMaxLevels,
              " levels, got ", L);
  TORCH_CHECK(int64_t(scales.size()) == L, "fastseg.", op, ": scales must have one entry per level (", L, "), got ",
              scales.size());
  const at::Tensor& f0 = features[0];
  for (int64_t l = 0; l < L; ++l) {
    const at::Tensor& f = features[l];
    check_rank(f, 4, op, "features");
    check_floating(f, op, "features");
    TORCH_CHECK(f.scalar_type() == f0.scalar_type() && f.device() == f0.device() && f.size(0) == f0.size(0) &&
                    f.size(1) == f0.size(1),
                "fastseg.", op, ": features must share dtype, device, batch and channels; level ", l, " is ",
                f.scalar_type(), " ", f.sizes(), " on ", f.device(), " vs ", f0.scalar_type(), " ", f0.sizes());
    TORCH_CHECK(f.size(2) > 0 && f.size(3) > 0, "fastseg.", op, ": features must have non-zero height and width");
    TORCH_CHECK(std::isfinite(scales[l]) && scales[l] > 0, "fastseg.", op, ": scales must be > 0, got ", scales[l]);
  }
  check_args(op, rois, f0, pooled_h, pooled_w);
  check_rank(levels, 1, op, "levels");
  check_dtype(levels, at::kLong, op, "levels");
  check_same_device(f0, levels, op, "features", "levels");
  TORCH_CHECK(levels.size(0) == rois.size(0), "fastseg.", op, ": levels must have one entry per roi (", rois.size(0),
              "), got ", levels.size(0));
  c10::DeviceGuard guard(f0.device());
  const int64_t K = rois.size(0), C = f0.size(1);
  auto out = empty_4d(f0, K, C, pooled_h, pooled_w, f0.scalar_type());
  if (out.numel() == 0) return out;
  const auto acc = opmath_of(f0.scalar_type());
  const double max_scale = *std::max_element(scales.begin(), scales.end());
  const auto r = prepared_rois(op, rois, f0.size(0), acc, max_scale, pooled_h, pooled_w, sampling_ratio, &levels, L);
  const auto lvl = levels.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f0.scalar_type(), "fastseg.multi_scale_roi_align", [&] {
    using T = at::opmath_type<scalar_t>;
    bool cpu_fast = false;
    if constexpr (Backend::kIsCpu) cpu_fast = cpu_row_kernels_enabled();
    std::vector<at::Tensor> keep;
    const auto lv = make_levels<scalar_t>(features, scales, K, pooled_h, pooled_w, cpu_fast, keep);
    if constexpr (Backend::kIsCpu) {
      if (cpu_fast) {
        cpu_forward<scalar_t>(lv, lvl.const_data_ptr<int64_t>(), r, out, C, pooled_h, pooled_w, sampling_ratio, false);
        return;
      }
    }
    Backend::for_each_4d(shape4(out), MultiLevelForward<scalar_t>{lv, r.const_data_ptr<T>(), lvl.const_data_ptr<int64_t>(),
                                                                  out.mutable_data_ptr<scalar_t>(), pooled_h, pooled_w,
                                                                  sampling_ratio});
  });
  return out;
}

template <typename Backend>
void register_kernels(torch::Library& m) {
  m.impl("multi_scale_roi_align", &multi_scale_roi_align<Backend>);
  m.impl("roi_align", &roi_align<Backend>);
  m.impl("roi_align_backward", &roi_align_backward<Backend>);
}

}  // namespace roi_align
}  // namespace fastseg
