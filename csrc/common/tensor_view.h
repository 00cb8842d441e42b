// Plain structs that carry tensor geometry into kernels shared by both backends, and the one
// rule that decides the memory format of every output.
#pragma once

#include <cstdint>

#include <c10/macros/Macros.h>

#include <ATen/ATen.h>

namespace fastseg {

// Per-row or per-column data a kernel body precomputes once (meaning defined by each body).
struct Axis {
  int64_t a;
  int64_t b;
};

// Element strides of a 4-D tensor; kernels read inputs through them, so any layout works.
struct Strides4 {
  int64_t n, c, h, w;
  C10_HOST_DEVICE int64_t at(int64_t in, int64_t ic, int64_t ih, int64_t iw) const {
    return in * n + ic * c + ih * h + iw * w;
  }
};

// The output being written: sizes and whether it is channels-last (else contiguous NCHW).
struct Shape4 {
  int64_t N, C, H, W;
  bool channels_last;
  C10_HOST_DEVICE int64_t numel() const { return N * C * H * W; }
};

inline Strides4 strides4(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

// Channels-last in, channels-last out; everything else gets contiguous NCHW outputs. The Python
// fake kernels use the same rule (fastseg/ops/_utils.py: memory_format_of).
inline bool is_channels_last(const at::Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

inline at::Tensor empty_4d(const at::Tensor& like, int64_t N, int64_t C, int64_t H, int64_t W,
                           at::ScalarType dtype) {
  auto fmt = is_channels_last(like) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  return at::empty({N, C, H, W}, like.options().dtype(dtype).memory_format(fmt));
}

inline Shape4 shape4(const at::Tensor& out) {
  return {out.size(0), out.size(1), out.size(2), out.size(3), is_channels_last(out)};
}

}  // namespace fastseg
