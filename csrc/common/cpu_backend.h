// CPU thread mapping for the shared kernel bodies: at::parallel_for over output rows.
//
// The body contract (row / col / operator(), the row and plane forms, counts) is in
// common/body.h. This header is CPU-only: it is included by the CPU translation units (the .cpp
// files), which are compiled with -fopenmp where torch's parallelism is OpenMP. at::parallel_for
// is a header template that runs serially without it, and an instantiation shared with a TU
// compiled without OpenMP could be the one the linker keeps; so no .cu file may include this
// header or instantiate a CPU flow (tests/test_cpu_threads.py checks both).
#pragma once

#include <atomic>
#include <type_traits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "common/body.h"
#include "common/tensor_view.h"

namespace fastseg {

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
  // Shared flows select their CPU-only paths with `if constexpr (Backend::kIsCpu)`.
  static constexpr bool kIsCpu = true;

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
