// Unpooling family: what the flows of max_unpool_ops.h and compact_ops.h share (docs/design.md
// §2, §3, §5.1): the geometry checks (every value <= 2^31), the plane-size and output_size rules,
// Geom from the op's arguments, the choice of the overlapping or non-overlapping body, and the
// per-plane validation pass (plane_status, worst).
#pragma once

#include <limits>
#include <type_traits>
#include <utility>

#include <ATen/ATen.h>

#include "common/checks.h"
#include "common/tensor_view.h"
#include "ops/unpool/unpool_common.h"

namespace fastseg {
namespace unpool {

// Bound on each geometry value, so that the window arithmetic (y + p, i * s, ...) cannot
// overflow int64; no real pooling window comes near it.
constexpr int64_t kMaxGeometry = int64_t(1) << 31;

inline void check_geometry(const char* op, c10::IntArrayRef k, c10::IntArrayRef s, c10::IntArrayRef p) {
  check_pair(k, 1, op, "kernel_size");
  check_pair(s, 1, op, "stride");
  check_pair(p, 0, op, "padding");
  for (auto [v, name] : {std::pair{k, "kernel_size"}, std::pair{s, "stride"}, std::pair{p, "padding"}}) {
    TORCH_CHECK(v[0] <= kMaxGeometry && v[1] <= kMaxGeometry, "fastseg.", op, ": ", name, " must be <= 2^31, got ", v);
  }
}

// H * W must not wrap around (flat indices are int64).
inline void check_plane_size(const char* op, const char* name, int64_t H, int64_t W) {
  TORCH_CHECK(W == 0 || H <= std::numeric_limits<int64_t>::max() / W, "fastseg.", op, ": ", name, " ", H, "x", W,
              " is too large");
}

// PyTorch's rule for an explicit unpooling size (F.max_unpool2d): strictly within `stride` of the
// default (h - 1) * s - 2p + k. The Python wrapper checks it too, except on symbolic sizes
// (torch.export with dynamic shapes), where it cannot without specialising them: this is the check then.
inline void check_unpool_size(const char* op, int64_t h, int64_t w, c10::IntArrayRef k, c10::IntArrayRef s,
                              c10::IntArrayRef p, c10::IntArrayRef output_size) {
  const int64_t in[2] = {h, w};
  for (int d = 0; d < 2; ++d) {
    const int64_t def = (in[d] - 1) * s[d] - 2 * p[d] + k[d];
    TORCH_CHECK(def - s[d] < output_size[d] && output_size[d] < def + s[d], "fastseg.", op, ": output_size ",
                output_size, " is inconsistent with the pooling geometry: dimension ", d, " must be in (",
                def - s[d], ", ", def + s[d], ") exclusive (default ", def, ")");
  }
}

inline Geom geom(c10::IntArrayRef k, c10::IntArrayRef s, c10::IntArrayRef p, int d, int64_t n) {
  return {k[d], s[d], p[d], n};
}

// Calls f(std::bool_constant<overlap>) where overlap says whether windows can overlap.
template <typename F>
void with_overlap(const Geom& gh, const Geom& gw, const F& f) {
  if (gh.k > gh.s || gw.k > gw.s) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

// Runs a per-plane check on the backend; returns the per-plane status on the CPU (a sync on CUDA).
template <typename Backend, typename Check>
at::Tensor plane_status(const at::Tensor& t, const Check& check) {
  Shape4 s{t.size(0), t.size(1), t.size(2), t.size(3), false};
  return Backend::plane_status(s, check, t.options()).to(at::kCPU);
}

inline int32_t worst(const at::Tensor& status) {
  return status.numel() == 0 ? kInWindow : status.max().item<int32_t>();
}

}  // namespace unpool
}  // namespace fastseg
