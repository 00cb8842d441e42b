// Transpose convolution + crop: argument checks, strategy choice and the flow of each strategy,
// written once for both backends. `Backend` (CpuBackend / CudaBackend) only maps the bodies of
// conv_transpose.h onto threads; the GEMMs are ATen's (MKL/OpenBLAS on CPU, cuBLAS on CUDA).
//
// Strategies (docs/design.md §5.2), chosen by shape in choose_strategy():
// - direct: DirectGather per output element, when Cin/groups x taps < 16 (depthwise, bilinear
//   upsampling), dilated or not.
// - phase GEMM, for dilation 1 (covers k == s and the other multiples of s): with
//   z = q*s + r, output phase r of a stride-s transpose conv is an ordinary correlation of the
//   input with the taps r, r+s, r+2s, ... So all s_h*s_w phases are ONE GEMM
//     P[(ry, rx, co), q] = Wp[(ry, rx, co), (ci, ty, tx)] * cols[(ci, ty, tx), q]
//   over T = ceil(k/s) taps per axis, restricted to the q range the crop needs, and PhaseGather
//   writes P to the output (pixel shuffle + crop + bias in one pass). Unlike GEMM + col2im, the
//   GEMM result is the size of the output (not k^2/s^2 times larger: 4x for FCN's k = 2s), and
//   no MAC is wasted when s divides k. For k == s, cols is the input itself (no copy).
// - aten: everything else (k not a multiple of s, e.g. 3x3/s2; stride 1; dilation with many
//   channels) goes to ATen's transposed convolution (oneDNN / cuDNN: nothing we would write
//   beats them there), run with the padding / output_padding that computes nothing beyond the
//   crop when its margins are balanced, then written to the destination.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/MemoryOverlap.h>
#include <c10/core/DeviceGuard.h>

#include "common/checks.h"
#include "common/tensor_view.h"
#include "ops/conv_transpose/conv_transpose.h"

namespace fastseg {
namespace conv_transpose {

enum class Strategy : int64_t { kAuto = 0, kDirect = 1, kPhaseGemm = 2, kAten = 3 };

// Testing hook (conv_transpose.cpp): kAuto unless a test forces a strategy.
Strategy forced_strategy();

// The CPU's measured choice between the phase GEMM and ATen (conv_transpose.cpp; see
// measured_strategy below): the process-wide cache, keyed by the problem, and whether measuring
// is on (FASTSEG_CONV_TRANSPOSE_MEASURE=0 turns it off: the shape rule alone decides).
std::optional<Strategy> cached_strategy(const std::vector<int64_t>& key);
void cache_strategy(const std::vector<int64_t>& key, Strategy strategy);
bool measure_strategies();
int64_t cpu_threads();  // at::get_num_threads(), from a CPU translation unit

constexpr int64_t kMaxGeometry = int64_t(1) << 31;  // keeps every product below in int64

struct Problem {
  CtAxis h, w;
  int64_t N, cin, cout, groups, cin_g, cout_g;
};

inline void check_bounded(const char* op, c10::IntArrayRef v, const char* name) {
  TORCH_CHECK(v[0] <= kMaxGeometry && v[1] <= kMaxGeometry, "fastseg.", op, ": ", name, " must be <= 2^31, got ", v);
}

inline Problem check_problem(const char* op, const at::Tensor& input, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                             c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                             c10::IntArrayRef crop, c10::IntArrayRef output_size) {
  check_rank(input, 4, op, "input");
  check_floating(input, op, "input");
  check_rank(weight, 4, op, "weight");
  check_dtype(weight, input.scalar_type(), op, "weight");
  check_same_device(input, weight, op, "input", "weight");
  TORCH_CHECK(groups >= 1 && groups <= kMaxGeometry, "fastseg.", op, ": groups must be in [1, 2^31], got ", groups);
  const int64_t cin = input.size(1);
  TORCH_CHECK(weight.size(0) == cin, "fastseg.", op, ": weight must have shape [Cin, Cout/groups, kh, kw] with Cin = ",
              cin, " (input channels), got ", weight.sizes());
  TORCH_CHECK(cin % groups == 0, "fastseg.", op, ": input channels (", cin, ") must be divisible by groups (", groups,
              ")");
  TORCH_CHECK(weight.size(2) >= 1 && weight.size(3) >= 1, "fastseg.", op,
              ": weight must have a non-empty kernel, got shape ", weight.sizes());
  const int64_t cout = weight.size(1) * groups;
  if (bias.has_value()) {
    check_rank(*bias, 1, op, "bias");
    check_dtype(*bias, input.scalar_type(), op, "bias");
    check_same_device(input, *bias, op, "input", "bias");
    TORCH_CHECK(bias->size(0) == cout, "fastseg.", op, ": bias must have Cout = ", cout, " elements, got ",
                bias->size(0));
  }
  check_pair(stride, 1, op, "stride");
  check_pair(padding, 0, op, "padding");
  check_pair(dilation, 1, op, "dilation");
  check_pair(crop, 0, op, "crop");
  check_pair(output_size, 0, op, "output_size");
  for (auto [v, name] : {std::pair{stride, "stride"}, std::pair{padding, "padding"}, std::pair{dilation, "dilation"},
                         std::pair{crop, "crop"}, std::pair{output_size, "output_size"}}) {
    check_bounded(op, v, name);
  }
  check_bounded(op, weight.sizes().slice(2), "weight kernel size");
  const int64_t H = input.size(2), W = input.size(3);
  TORCH_CHECK(H >= 1 && W >= 1, "fastseg.", op, ": input must have non-zero height and width, got shape ",
              input.sizes());
  check_bounded(op, input.sizes().slice(2), "input height and width");
  const int64_t kh = weight.size(2), kw = weight.size(3);
  const int64_t full_h = full_size(H, kh, stride[0], padding[0], dilation[0]);
  const int64_t full_w = full_size(W, kw, stride[1], padding[1], dilation[1]);
  TORCH_CHECK(full_h >= 1 && full_w >= 1, "fastseg.", op, ": padding ", padding, " is too large: the full output of input ",
              H, "x", W, " would be ", full_h, "x", full_w);
  TORCH_CHECK(crop[0] + output_size[0] <= full_h && crop[1] + output_size[1] <= full_w, "fastseg.", op, ": crop ", crop,
              " with output_size ", output_size, " must lie inside the full output of ", full_h, "x", full_w,
              " (input ", H, "x", W, ", kernel ", kh, "x", kw, ", stride ", stride, ", padding ", padding, ", dilation ",
              dilation, ")");
  Problem pr;
  pr.h = make_axis(H, kh, stride[0], padding[0], dilation[0], crop[0], output_size[0]);
  pr.w = make_axis(W, kw, stride[1], padding[1], dilation[1], crop[1], output_size[1]);
  pr.N = input.size(0);
  pr.cin = cin;
  pr.cout = cout;
  pr.groups = groups;
  pr.cin_g = cin / groups;
  pr.cout_g = weight.size(1);
  return pr;
}

// `out` of the out= form: right shape, dtype, device; no overlap with itself or the operands.
inline void check_out(const char* op, const at::Tensor& out, const Problem& pr, const at::Tensor& input,
                      const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  check_rank(out, 4, op, "out");
  check_dtype(out, input.scalar_type(), op, "out");
  check_same_device(input, out, op, "input", "out");
  const std::vector<int64_t> expected{pr.N, pr.cout, pr.h.n_out, pr.w.n_out};
  TORCH_CHECK(out.sizes() == c10::IntArrayRef(expected), "fastseg.", op, ": out must have shape ",
              c10::IntArrayRef(expected), " [N, Cout, OH, OW], got ", out.sizes());
  TORCH_CHECK(at::has_internal_overlap(out) != at::MemOverlap::Yes, "fastseg.", op,
              ": out must not have overlapping elements (e.g. an expanded tensor)");
  for (auto [t, name] : {std::pair{&input, "input"}, std::pair{&weight, "weight"}}) {
    const auto status = at::get_overlap_status(out, *t);
    TORCH_CHECK(status != at::MemOverlapStatus::Full && status != at::MemOverlapStatus::Partial, "fastseg.", op,
                ": out must not share memory with ", name);
  }
  if (bias.has_value()) {
    const auto status = at::get_overlap_status(out, *bias);
    TORCH_CHECK(status != at::MemOverlapStatus::Full && status != at::MemOverlapStatus::Partial, "fastseg.", op,
                ": out must not share memory with bias");
  }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// True while the autograd kernel (conv_transpose_autograd.cpp) runs the op for a graph that will
// be differentiated. Outputs then get plain memory: a large output asks for transparent huge pages
// (empty_4d), which saves inference ~20 ms of page faults on U-Net's 41 MB stage-3 concat, but in
// training, with the backward's allocations around it, huge-page faults stalled in compaction
// (unet_up3 forward+backward: 0.63-0.67x with them, 1.27x without).
bool& output_for_backward();

inline at::Tensor new_output(const at::Tensor& like, int64_t N, int64_t C, int64_t H, int64_t W) {
  if (!output_for_backward()) return empty_4d(like, N, C, H, W, like.scalar_type());
  const auto fmt = is_channels_last(like) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  return at::empty({N, C, H, W}, like.options().memory_format(fmt));
}

inline Strategy choose_strategy(const Problem& pr) {
  const bool stride1 = pr.h.s == 1 && pr.w.s == 1, dilation1 = pr.h.d == 1 && pr.w.d == 1;
  const int64_t taps = ceil_div(pr.h.k, pr.h.s) * ceil_div(pr.w.k, pr.w.s);
  if (pr.cin_g == 0) return Strategy::kDirect;  // no input channels: bias only (ATen's conv rejects it)
  switch (forced_strategy()) {
    case Strategy::kDirect:
      return Strategy::kDirect;
    case Strategy::kPhaseGemm:
      return dilation1 ? Strategy::kPhaseGemm : Strategy::kDirect;
    case Strategy::kAten:
      return Strategy::kAten;
    case Strategy::kAuto:
      break;
  }
  // A GEMM whose inner dimension is this small does not beat the gather (depthwise, bilinear).
  if (pr.cin_g * taps < 16) return Strategy::kDirect;
  // The phase GEMM wastes no multiply-adds when s divides k (FCN's k = 2s, U-Net's k = s), and
  // beats oneDNN's transposed convolution at every size measured, down to FCN-8s' 0.15 ms upscore2
  // (its columns, weights and copy-out are one pass each, no ATen tensor ops); the rest (e.g.
  // 3x3/s2, stride 1) goes to the vendor kernel with the tightest padding.
  if (dilation1 && !stride1 && pr.h.k % pr.h.s == 0 && pr.w.k % pr.w.s == 0) return Strategy::kPhaseGemm;
  return Strategy::kAten;
}

inline Strides4 out_strides(const at::Tensor& out) { return strides4(out); }

// Walk the output in its memory order (channels innermost for channels-last-like views).
inline Shape4 out_shape(const at::Tensor& out) {
  return {out.size(0), out.size(1), out.size(2), out.size(3), out.stride(1) < out.stride(3)};
}

inline std::optional<at::Tensor> contiguous_bias(const std::optional<at::Tensor>& bias) {
  if (!bias.has_value()) return std::nullopt;
  return bias->contiguous();
}

template <typename Backend>
void run_direct(const Problem& pr, const at::Tensor& input, const at::Tensor& weight,
                const std::optional<at::Tensor>& bias, const at::Tensor& out) {
  auto w = weight.contiguous();
  auto b = contiguous_bias(bias);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastseg.conv_transpose2d_crop", [&] {
    Backend::for_each_4d(out_shape(out), DirectGather<scalar_t>{input.const_data_ptr<scalar_t>(),
                                                               w.const_data_ptr<scalar_t>(),
                                                               b ? b->const_data_ptr<scalar_t>() : nullptr,
                                                               out.mutable_data_ptr<scalar_t>(), strides4(input),
                                                               out_strides(out), pr.h, pr.w, pr.cin_g, pr.cout_g});
  });
}

// cols[n, g, (ci, ty, tx), (qy, qx)] = input[n, g*cin_g + ci, q0y + qy - ty, q0x + qx - tx], zero outside.
template <typename Backend>
at::Tensor phase_columns(const at::Tensor& input, const Problem& pr, int64_t Th, int64_t Tw, int64_t qy0,
                         int64_t Qh, int64_t qx0, int64_t Qw) {
  auto cols = at::empty({pr.N, pr.cin, Th, Tw, Qh, Qw}, input.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastseg.conv_transpose2d_crop", [&] {
    Backend::for_each_4d(Shape4{pr.N * pr.cin, Th * Tw, Qh, Qw, false},
                         PhaseColumns<scalar_t>{input.const_data_ptr<scalar_t>(), cols.mutable_data_ptr<scalar_t>(),
                                                strides4(input), pr.cin, pr.h.n_in, pr.w.n_in, Tw, qy0, qx0});
  });
  return cols.view({pr.N, pr.groups, pr.cin_g * Th * Tw, Qh * Qw});
}

template <typename Backend>
void run_phase_gemm(const Problem& pr, const at::Tensor& input, const at::Tensor& weight,
                    const std::optional<at::Tensor>& bias, const at::Tensor& out) {
  const CtAxis& h = pr.h;
  const CtAxis& w = pr.w;
  const int64_t Th = ceil_div(h.k, h.s), Tw = ceil_div(w.k, w.s);
  const int64_t qy0 = (h.crop + h.p) / h.s, qx0 = (w.crop + w.p) / w.s;
  const int64_t Qh = (h.crop + h.p + h.n_out - 1) / h.s - qy0 + 1;
  const int64_t Qw = (w.crop + w.p + w.n_out - 1) / w.s - qx0 + 1;
  const int64_t G = pr.groups, cout_g = pr.cout_g, M = h.s * w.s * cout_g, K = pr.cin_g * Th * Tw;
  const bool channels_last_out = out_shape(out).channels_last;
  // Layout of P, chosen so that the gather reads it in runs: channels-last outputs read
  // P^T[q, (ry, rx, co)] (channels contiguous); NCHW outputs with one tap per phase (k <= s, the
  // U-Net case) read P[(co, ry, rx), q] (s_w sequential streams per output row); other NCHW
  // outputs (FCN: large s) read P^T[q, (co, ry, rx)] (runs of s_w along each output row).
  const bool transposed = channels_last_out || Th * Tw > 1;
  const bool phase_major = channels_last_out;  // M order (ry, rx, co), else (co, ry, rx)
  // Wp[g, m, (ci, ty, tx)] = weight[g*cin_g + ci, co, ty*s_h + ry, tx*s_w + rx] (zero past k). For
  // k == s in (co, ry, rx) order this is a view of the weight; otherwise PhaseWeights writes it
  // in one pass (a permute + reshape copy through ATen took 40 us for FCN-8s' upscore2 weight).
  const bool weight_view = h.k == h.s && w.k == w.s && !phase_major;
  at::Tensor wp;
  if (weight_view) {
    wp = weight.reshape({G, pr.cin_g, cout_g * h.s * w.s}).transpose(1, 2);
  } else {
    wp = at::empty({G, M, K}, weight.options());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, weight.scalar_type(), "fastseg.conv_transpose2d_crop", [&] {
      Backend::for_each_4d(Shape4{G, M, pr.cin_g, Th * Tw, false},
                           PhaseWeights<scalar_t>{weight.const_data_ptr<scalar_t>(), wp.mutable_data_ptr<scalar_t>(),
                                                  strides4(weight), pr.cin_g, cout_g, h.k, w.k, h.s, w.s, Tw,
                                                  phase_major});
    });
  }
  const bool whole_input = Th == 1 && Tw == 1 && qy0 == 0 && qx0 == 0 && Qh == h.n_in && Qw == w.n_in;
  // A channels-last input already is cols^T [n, q, ci]: used as a view.
  const bool input_is_cols_t = whole_input && transposed && G == 1 && is_channels_last(input);
  at::Tensor cols = input_is_cols_t ? input.permute({0, 2, 3, 1}).reshape({pr.N, 1, Qh * Qw, K}).transpose(2, 3)
                    : whole_input   ? input.reshape({pr.N, G, K, Qh * Qw})
                                    : phase_columns<Backend>(input, pr, Th, Tw, qy0, Qh, qx0, Qw);
  // One GEMM per (image, group), written into P's slices (no batched-broadcast copies).
  auto phases = at::empty(transposed ? std::vector<int64_t>{pr.N, G, Qh * Qw, M} : std::vector<int64_t>{pr.N, G, M, Qh * Qw},
                          input.options());
  for (int64_t n = 0; n < pr.N; ++n) {
    for (int64_t g = 0; g < G; ++g) {
      auto dst = phases.select(0, n).select(0, g);
      if (transposed) {
        at::mm_out(dst, cols.select(0, n).select(0, g).t(), wp.select(0, g).t());
      } else {
        at::mm_out(dst, wp.select(0, g), cols.select(0, n).select(0, g));
      }
    }
  }
  // Element strides of P for [n, g, ry, rx, co, qy, qx].
  const int64_t sq = transposed ? M : 1;            // stride of q
  const int64_t sm = transposed ? 1 : Qh * Qw;      // stride of m
  const int64_t s_co = phase_major ? sm : h.s * w.s * sm;
  const int64_t s_ry = phase_major ? w.s * cout_g * sm : w.s * sm;
  const int64_t s_rx = phase_major ? cout_g * sm : sm;
  const PhaseStrides ps{G * M * Qh * Qw, M * Qh * Qw, s_ry, s_rx, s_co, Qw * sq, sq};
  auto b = contiguous_bias(bias);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fastseg.conv_transpose2d_crop", [&] {
    Backend::for_each_4d(out_shape(out), PhaseGather<scalar_t>{phases.const_data_ptr<scalar_t>(),
                                                              b ? b->const_data_ptr<scalar_t>() : nullptr,
                                                              out.mutable_data_ptr<scalar_t>(), ps, out_strides(out),
                                                              h, w, qy0, qx0, G, cout_g, phase_cols(w)});
  });
}

// ATen's own transposed convolution (oneDNN / cuDNN), with the padding (and output_padding) that
// computes the least beyond the crop: nothing beyond it when the crop's margins are balanced,
// as for PyTorch's padding + output_padding layers. Returns the [N, Cout, OH, OW] crop (a view).
inline at::Tensor run_aten(const Problem& pr, const at::Tensor& input, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias) {
  int64_t pad[2], out_pad[2], start[2];
  const CtAxis* axes[2] = {&pr.h, &pr.w};
  for (int i = 0; i < 2; ++i) {
    const CtAxis& a = *axes[i];
    const int64_t full0 = full_size(a.n_in, a.k, a.s, 0, a.d);  // padding-0 frame
    const int64_t lead = a.crop + a.p, trail = full0 - lead - a.n_out;
    if (lead >= trail && lead - trail < std::max(a.s, a.d)) {
      pad[i] = lead, out_pad[i] = lead - trail;  // exact
    } else {
      pad[i] = std::min(lead, trail), out_pad[i] = 0;
    }
    start[i] = lead - pad[i];
  }
  auto y = at::convolution(input, weight, bias, {pr.h.s, pr.w.s}, {pad[0], pad[1]}, {pr.h.d, pr.w.d}, true,
                           {out_pad[0], out_pad[1]}, pr.groups);
  return y.narrow(2, start[0], pr.h.n_out).narrow(3, start[1], pr.w.n_out);
}

// Runs one strategy into `out` ([N, Cout, OH, OW], any strides), or into a new tensor in the
// memory format of `input` when `out` is undefined. Returns the tensor written.
template <typename Backend>
at::Tensor run_strategy(Strategy strategy, const Problem& pr, const at::Tensor& input, const at::Tensor& weight,
                        const std::optional<at::Tensor>& bias, at::Tensor out) {
  if (strategy == Strategy::kAten && pr.N * pr.cout * pr.h.n_out * pr.w.n_out > 0) {
    auto result = run_aten(pr, input, weight, bias);
    if (!out.defined()) {
      const auto fmt = is_channels_last(input) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
      return result.contiguous(fmt);
    }
    out.copy_(result);
    return out;
  }
  if (!out.defined()) out = new_output(input, pr.N, pr.cout, pr.h.n_out, pr.w.n_out);
  if (out.numel() == 0) return out;
  if (strategy == Strategy::kPhaseGemm) {
    run_phase_gemm<Backend>(pr, input, weight, bias, out);
  } else {
    run_direct<Backend>(pr, input, weight, bias, out);
  }
  return out;
}

// Below this many multiply-adds the shape rule decides alone (a call of ~0.1 ms or less, where
// the measurement's noise exceeds what a choice could win).
constexpr int64_t kMeasureMinMacs = int64_t(1) << 24;

// The phase GEMM against ATen's transposed convolution on this machine: which wins depends on the
// CPU (oneDNN's kernels are ~2x faster on Zen 5 than on Zen 4 for U-Net's up1; channels-last
// Mask R-CNN mask-head up-convolution: ATen 75 ms vs phase GEMM 107 ms on Zen 4, NCHW 150 vs
// 111 ms). So the first call of each problem (shapes, strides class, dtype, threads) times both,
// twice each, alternating, into scratch outputs, and the process keeps the choice: ATen only if
// its faster run beats the phase GEMM's by 5 % (a near tie keeps the phase GEMM, so noise rarely
// flips it). Later calls of that problem reuse it: one strategy, one rounding, per process.
template <typename Backend>
Strategy measured_strategy(const Problem& pr, const at::Tensor& input, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias, const at::Tensor& out) {
  const std::vector<int64_t> key{pr.N, pr.cin, pr.cout, pr.groups, pr.h.n_in, pr.w.n_in, pr.h.n_out, pr.w.n_out,
                                 pr.h.k, pr.w.k, pr.h.s, pr.w.s, pr.h.p, pr.w.p, pr.h.crop, pr.w.crop,
                                 int64_t(input.scalar_type()), is_channels_last(input),
                                 out.defined() ? int64_t(out_shape(out).channels_last) : int64_t(-1),
                                 cpu_threads(), bias.has_value()};
  if (auto hit = cached_strategy(key)) return *hit;
  double best[2] = {1e300, 1e300};
  const Strategy candidates[2] = {Strategy::kPhaseGemm, Strategy::kAten};
  for (int round = 0; round < 2; ++round) {
    for (int c = 0; c < 2; ++c) {
      at::Tensor scratch = out.defined() ? at::empty_like(out) : at::Tensor();
      const auto t0 = std::chrono::steady_clock::now();
      run_strategy<Backend>(candidates[c], pr, input, weight, bias, scratch);
      best[c] = std::min(best[c], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  const Strategy chosen = best[1] < 0.95 * best[0] ? Strategy::kAten : Strategy::kPhaseGemm;
  cache_strategy(key, chosen);
  return chosen;
}

// Computes the op into `out`, or into a new tensor when `out` is undefined (run_strategy).
template <typename Backend>
at::Tensor compute(const Problem& pr, const at::Tensor& input, const at::Tensor& weight,
                   const std::optional<at::Tensor>& bias, at::Tensor out) {
  Strategy strategy = choose_strategy(pr);
  if constexpr (Backend::kIsCpu) {
    const double macs = double(pr.N) * double(pr.cout) * double(pr.h.n_out) * double(pr.w.n_out) *
                        double(ceil_div(pr.h.k, pr.h.s) * ceil_div(pr.w.k, pr.w.s)) * double(pr.cin_g);
    if (strategy == Strategy::kPhaseGemm && forced_strategy() == Strategy::kAuto && macs >= double(kMeasureMinMacs) &&
        measure_strategies()) {
      strategy = measured_strategy<Backend>(pr, input, weight, bias, out);
    }
  }
  return run_strategy<Backend>(strategy, pr, input, weight, bias, out);
}

template <typename Backend>
at::Tensor conv_transpose2d_crop(const at::Tensor& input, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                                 c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                                 c10::IntArrayRef crop, c10::IntArrayRef output_size) {
  const Problem pr = check_problem("conv_transpose2d_crop", input, weight, bias, stride, padding, dilation, groups, crop,
                                   output_size);
  c10::DeviceGuard guard(input.device());
  return compute<Backend>(pr, input, weight, bias, at::Tensor());
}

template <typename Backend>
void conv_transpose2d_crop_out(const at::Tensor& input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                               c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                               c10::IntArrayRef crop, const at::Tensor& out) {
  const char* op = "conv_transpose2d_crop";
  check_rank(out, 4, op, "out");
  const Problem pr = check_problem(op, input, weight, bias, stride, padding, dilation, groups, crop,
                                   out.sizes().slice(2));
  check_out(op, out, pr, input, weight, bias);
  c10::DeviceGuard guard(input.device());
  compute<Backend>(pr, input, weight, bias, out);
}

// [skip cropped at skip_crop to OHxOW, up-convolution] along channels, in one buffer: the
// U-Net decoder's concat without a torch.cat copy of the up-convolution.
template <typename Backend>
at::Tensor conv_transpose2d_crop_cat(const at::Tensor& input, const at::Tensor& weight,
                                     const std::optional<at::Tensor>& bias, const at::Tensor& skip,
                                     c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                                     int64_t groups, c10::IntArrayRef crop, c10::IntArrayRef output_size,
                                     c10::IntArrayRef skip_crop) {
  const char* op = "conv_transpose2d_crop_cat";
  const Problem pr = check_problem(op, input, weight, bias, stride, padding, dilation, groups, crop, output_size);
  check_rank(skip, 4, op, "skip");
  check_dtype(skip, input.scalar_type(), op, "skip");
  check_same_device(input, skip, op, "input", "skip");
  TORCH_CHECK(skip.size(0) == pr.N, "fastseg.", op, ": skip must have the batch size of input (", pr.N, "), got ",
              skip.sizes());
  check_pair(skip_crop, 0, op, "skip_crop");
  TORCH_CHECK(skip_crop[0] + pr.h.n_out <= skip.size(2) && skip_crop[1] + pr.w.n_out <= skip.size(3), "fastseg.", op,
              ": skip_crop ", skip_crop, " with output_size ", output_size, " must lie inside skip of ",
              skip.size(2), "x", skip.size(3));
  c10::DeviceGuard guard(input.device());
  const int64_t cskip = skip.size(1);
  auto buffer = new_output(input, pr.N, cskip + pr.cout, pr.h.n_out, pr.w.n_out);
  buffer.narrow(1, 0, cskip).copy_(skip.narrow(2, skip_crop[0], pr.h.n_out).narrow(3, skip_crop[1], pr.w.n_out));
  compute<Backend>(pr, input, weight, bias, buffer.narrow(1, cskip, pr.cout));
  return buffer;
}

template <typename Backend>
void register_kernels(torch::Library& m) {
  m.impl("conv_transpose2d_crop", &conv_transpose2d_crop<Backend>);
  m.impl("conv_transpose2d_crop_out", &conv_transpose2d_crop_out<Backend>);
  m.impl("conv_transpose2d_crop_cat", &conv_transpose2d_crop_cat<Backend>);
}

}  // namespace conv_transpose
}  // namespace fastseg
