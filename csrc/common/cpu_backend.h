// CPU thread mapping for the shared kernel bodies: at::parallel_for over output rows.
//
// A *body* (see csrc/ops/*/<op>.h) is a struct with C10_HOST_DEVICE members
//   Axis row(int64_t y) const;   Axis col(int64_t x) const;     // per-row / per-column precompute
//   R operator()(int64_t offset, int64_t n, int64_t c, int64_t y, int64_t x, Axis ry, Axis cx) const;
// that computes and writes the output element (n, c, y, x) at `offset` of the output(s). R is void,
// or int64_t for bodies that count something (e.g. matched indices); for_each_4d returns the total.
// The CUDA backend (cuda_backend.cuh) calls the very same body, so CPU tests check the GPU's
// per-element code.
#pragma once

#include <atomic>
#include <type_traits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "common/tensor_view.h"

namespace fastseg {

// A body may also offer a faster whole-row form for NCHW outputs on the CPU:
//   static constexpr bool kRowKernel = true;
//   int64_t run_row(int64_t row_offset, int64_t n, int64_t c, int64_t y, Axis ry, const Axis* cols,
//                   void* scratch) const;
// which must write the same W elements (and return the same count) as operator() would; cols
// holds col(x) for every x, scratch W + 1 elements of up to 8 bytes, private to the calling thread. Tests
// compare both forms: fastseg.testing.strategy(cpu_row_kernels=False) makes the CPU use
// operator() everywhere, as CUDA does.
// C++17 detection idiom, not a C++20 requires-expression: torch 2.11/2.12's cpp_extension (our
// GPU machine has 2.11) compiles with -std=c++17.
template <typename Body, typename = void>
struct row_kernel_of : std::false_type {};
template <typename Body>
struct row_kernel_of<Body, std::void_t<decltype(Body::kRowKernel)>> : std::bool_constant<Body::kRowKernel> {};
template <typename Body>
constexpr bool has_row_kernel = row_kernel_of<Body>::value;

// And a whole-plane form (NCHW outputs, CPU), for bodies whose rows are too short to pay for a
// call each:
//   static constexpr bool kPlaneKernel = true;
//   bool plane_ok() const;   // whether run_plane applies to this call's geometry and strides
//   int64_t run_plane(int64_t plane_offset, int64_t n, int64_t c, int64_t H, int64_t W) const;
// which writes the H x W plane (n, c) as operator() would and returns the same count. Switched
// off with the row forms.
template <typename Body, typename = void>
struct plane_kernel_of : std::false_type {};
template <typename Body>
struct plane_kernel_of<Body, std::void_t<decltype(Body::kPlaneKernel)>> : std::bool_constant<Body::kPlaneKernel> {};
template <typename Body>
constexpr bool has_plane_kernel = plane_kernel_of<Body>::value;

bool cpu_row_kernels_enabled();

// Whether a body returns a count to be summed (see the contract above).
template <typename Body>
constexpr bool counts = !std::is_void_v<
    decltype(std::declval<const Body&>()(0, 0, 0, 0, 0, std::declval<Axis>(), std::declval<Axis>()))>;

// The digits (hi, mid, lo) of a flat index in radices (nmid, nlo), stepped by one without
// dividing: four int64 divisions per row were a third of the time of DeconvNet's 14-wide rows.
struct Position3 {
  int64_t hi, mid, lo, nmid, nlo;
  Position3(int64_t flat, int64_t nmid_, int64_t nlo_)
      : hi(flat / nlo_ / nmid_), mid(flat / nlo_ % nmid_), lo(flat % nlo_), nmid(nmid_), nlo(nlo_) {}
  void step() {
    if (++lo < nlo) return;
    lo = 0;
    if (++mid < nmid) return;
    mid = 0;
    ++hi;
  }
};

struct CpuBackend {
  // Runs body for every element of an output of shape s, in the output's memory order.
  template <typename Body>
  static int64_t for_each_4d(const Shape4& s, const Body& shared_body) {
    if (s.numel() == 0) return 0;
    std::atomic<int64_t> total{0};
    const Body body = shared_body;
    std::vector<Axis> cols(s.W), rows(s.H);
    for (int64_t x = 0; x < s.W; ++x) cols[x] = body.col(x);
    for (int64_t y = 0; y < s.H; ++y) rows[y] = body.row(y);
    if (!s.channels_last) {
      const bool use_rows = cpu_row_kernels_enabled();
      if constexpr (has_plane_kernel<Body>) {
        if (use_rows && body.plane_ok()) {
          const int64_t plane = s.H * s.W;
          at::parallel_for(0, s.N * s.C, std::max<int64_t>(1, 16384 / std::max<int64_t>(plane, 1)),
                           [&](int64_t begin, int64_t end) {
                             const Body b = body;
                             int64_t sum = 0;
                             for (int64_t nc = begin; nc < end; ++nc) {
                               sum += b.run_plane(nc * plane, nc / s.C, nc % s.C, s.H, s.W);
                             }
                             total += sum;
                           });
          return total.load();
        }
      }
      // One task item = one output row of W elements (contiguous writes).
      const int64_t grain = std::max<int64_t>(1, 16384 / s.W);
      at::parallel_for(0, s.N * s.C * s.H, grain, [&](int64_t begin, int64_t end) {
        // A local copy: the compiler then knows the output stores cannot change the body's
        // fields and keeps them in registers.
        const Body b = body;
        std::vector<double> scratch(has_row_kernel<Body> && use_rows ? s.W + 1 : 0);
        int64_t sum = 0;  // one atomic add per task: per row, two threads would fight over its cache line
        Position3 pos(begin, s.C, s.H);  // (n, c, y) of row r
        for (int64_t r = begin; r < end; ++r, pos.step()) {
          const int64_t n = pos.hi, c = pos.mid, y = pos.lo;
          const Axis ry = rows[y];
          const int64_t base = r * s.W;
          if constexpr (has_row_kernel<Body>) {
            if (use_rows) {
              sum += b.run_row(base, n, c, y, ry, cols.data(), scratch.data());
              continue;
            }
          }
          if constexpr (counts<Body>) {
            for (int64_t x = 0; x < s.W; ++x) sum += b(base + x, n, c, y, x, ry, cols[x]);
          } else {
            for (int64_t x = 0; x < s.W; ++x) b(base + x, n, c, y, x, ry, cols[x]);
          }
        }
        total += sum;
      });
    } else {
      // One task item = one output pixel's C channels (contiguous writes).
      const int64_t grain = std::max<int64_t>(1, 16384 / s.C);
      at::parallel_for(0, s.N * s.H * s.W, grain, [&](int64_t begin, int64_t end) {
        const Body b = body;
        int64_t sum = 0;
        Position3 pos(begin, s.H, s.W);  // (n, y, x) of pixel p
        for (int64_t p = begin; p < end; ++p, pos.step()) {
          const int64_t n = pos.hi, y = pos.mid, x = pos.lo;
          const Axis ry = rows[y], cx = cols[x];
          const int64_t base = p * s.C;
          if constexpr (counts<Body>) {
            for (int64_t c = 0; c < s.C; ++c) sum += b(base + c, n, c, y, x, ry, cx);
          } else {
            for (int64_t c = 0; c < s.C; ++c) b(base + c, n, c, y, x, ry, cx);
          }
        }
        total += sum;
      });
    }
    return total.load();
  }

  // Runs body(i) for i in [0, n), in parallel (one task item = one i: bodies that do a lot each).
  template <typename Body>
  static void for_each_index(int64_t n, const Body& body) {
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      const Body b = body;
      for (int64_t i = begin; i < end; ++i) b(i);
    });
  }

  // status[n*C + c] = max over the plane's (i, j) of check(n, c, i, j), for an input of sizes s
  // (the layout flag of s is ignored: check reads through its own strides). Returns a CPU tensor.
  template <typename Check>
  static at::Tensor plane_status(const Shape4& s, const Check& check, const at::TensorOptions&) {
    auto status = at::zeros({s.N * s.C}, at::TensorOptions().dtype(at::kInt));
    int32_t* st = status.mutable_data_ptr<int32_t>();
    at::parallel_for(0, s.N * s.C, 1, [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t n = nc / s.C, c = nc % s.C;
        int32_t worst = 0;
        for (int64_t i = 0; i < s.H; ++i)
          for (int64_t j = 0; j < s.W; ++j) {
            const int32_t v = check(n, c, i, j);
            worst = v > worst ? v : worst;
          }
        st[nc] = worst;
      }
    });
    return status;
  }
};

}  // namespace fastseg
