// Plain structs that carry tensor geometry into kernels shared by both backends, and the one
// rule that decides the memory format of every output.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

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

// Whether advise_huge_pages asks for huge pages for an output of `nbytes`: only when an output of
// the same size was allocated less than a second ago (a layer called in a loop, whose freed huge
// pages come straight back), not for a one-off allocation. On our VMs a huge page the process has
// not just freed is slow to touch: the guest reports free 8 MB blocks to the host (free page
// reporting, "Free page reporting enabled" in dmesg), and a huge page carved from one is faulted
// in again by the host. Inside Mask R-CNN (one 3 s forward per image) the mask head's
// 80 MB up-convolution output took 340-570 ms advised against 110-130 ms unadvised, while a
// layer benchmark's repeated calls gain ~3x (segnet_dec1: 16.6 vs 42.6 ms).
// FASTSEG_HUGE_PAGES=1 advises every time, =0 never.
inline bool huge_pages_for(uint64_t nbytes) {
  static const int mode = [] {
    const char* env = std::getenv("FASTSEG_HUGE_PAGES");
    if (env != nullptr && std::strcmp(env, "1") == 0) return 1;
    if (env != nullptr && std::strcmp(env, "0") == 0) return 0;
    return -1;
  }();
  if (mode >= 0) return mode == 1;
  static std::mutex mutex;
  static std::array<std::pair<uint64_t, int64_t>, 16> recent{};  // (bytes, steady-clock ns), round robin
  static size_t next = 0;
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  std::lock_guard<std::mutex> lock(mutex);
  for (auto& entry : recent) {
    if (entry.first == nbytes) {
      const bool hot = now - entry.second < int64_t(1000000000);
      entry.second = now;
      return hot;
    }
  }
  recent[next++ % recent.size()] = {nbytes, now};
  return false;
}

// Large CPU outputs are fresh, untouched memory: with 4 KiB pages, first-touch page faults cost
// more than writing the data (measured on our 2-core machines: a bare zero-fill of a 177 MB
// output takes ~3x longer than the writes themselves). Asking for transparent huge pages before
// the first touch makes those faults ~500x fewer, for outputs allocated again and again
// (huge_pages_for). Advisory only: without THP nothing changes.
inline void advise_huge_pages(const at::Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kMin = uintptr_t(8) << 20, kPage = 4096;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.const_data_ptr());
  const uintptr_t end = begin + uintptr_t(t.nbytes());
  if (!t.is_cpu() || t.nbytes() < kMin || !huge_pages_for(uint64_t(t.nbytes()))) return;
  const uintptr_t first = (begin + kPage - 1) & ~(kPage - 1);
  if (end > first) madvise(reinterpret_cast<void*>(first), end - first, MADV_HUGEPAGE);  // errors ignored
#else
  (void)t;
#endif
}

// at::zeros for large outputs: huge pages are asked for before the zero-fill touches the pages
// (at::zeros would touch them first; on our machines the faults of a fresh 200 MB zeros cost
// ~5x the fill itself), under the same rule (huge_pages_for).
inline at::Tensor zeros_huge(at::IntArrayRef sizes, const at::TensorOptions& options) {
  auto out = at::empty(sizes, options);
  advise_huge_pages(out);
  return out.zero_();
}

// at::zeros for large, sparsely written CPU outputs (paste_masks writes only its boxes' pixels):
// fresh anonymous pages, which the kernel maps to its shared zero page until first written, as
// calloc and numpy.zeros do for large arrays. Pages no kernel writes are never faulted in or
// zeroed; reading them later costs a cheap read fault each. No huge pages (a write into a 2 MiB
// huge page would zero all of it). Anything else, or a failed mmap, gets at::zeros.
inline at::Tensor zeros_sparse(at::IntArrayRef sizes, const at::TensorOptions& options) {
#if defined(__linux__)
  constexpr int64_t kMin = int64_t(8) << 20;
  int64_t numel = 1;
  for (int64_t v : sizes) numel *= v;
  const int64_t nbytes = numel * int64_t(c10::elementSize(c10::typeMetaToScalarType(options.dtype())));
  if (options.device().is_cpu() && options.layout() == at::kStrided && nbytes >= kMin) {
    void* p = mmap(nullptr, size_t(nbytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
#if defined(MADV_NOHUGEPAGE)
      madvise(p, size_t(nbytes), MADV_NOHUGEPAGE);  // advisory; errors ignored
#endif
      return at::from_blob(
          p, sizes, [nbytes](void* q) { munmap(q, size_t(nbytes)); }, options.memory_format(std::nullopt));
    }
  }
#endif
  return at::zeros(sizes, options);
}

inline at::Tensor empty_4d(const at::Tensor& like, int64_t N, int64_t C, int64_t H, int64_t W,
                           at::ScalarType dtype) {
  auto fmt = is_channels_last(like) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  auto out = at::empty({N, C, H, W}, like.options().dtype(dtype).memory_format(fmt));
  advise_huge_pages(out);
  return out;
}

inline Shape4 shape4(const at::Tensor& out) {
  return {out.size(0), out.size(1), out.size(2), out.size(3), is_channels_last(out)};
}

}  // namespace fastseg
