// Unpooling family: what the bodies of the two max unpoolings (max_unpool.h, compact.h) share
// (docs/design.md §4, §5.1): the pooling geometry of one axis and the windows that cover a
// position, the status codes of an index, and the gather that picks the winning window, in its
// per-element form (gather_winner), its CPU row form (unpool_row) and the rows a CPU plane form
// leaves to the per-element body (plane_rows_after).
//
// Every struct in max_unpool.h, compact.h and scale.h is a *body* (contract in
// common/body.h): it computes one output element; CpuBackend and CudaBackend only decide
// which thread runs which element. Index math is int64. Values are only moved, never combined,
// except in the backward sums (done in opmath).
#pragma once

#include <algorithm>
#include <cstdint>

#include <c10/macros/Macros.h>

#include "common/keep_or_zero.h"
#include "common/tensor_view.h"

namespace fastseg {
namespace unpool {

// Pooling geometry along one axis: window i covers [i*s - p, i*s - p + k); n windows.
struct Geom {
  int64_t k, s, p, n;
};

// The windows i in [0, g.n) that cover position y, as an inclusive range {a, b} (empty if a > b).
C10_HOST_DEVICE inline Axis covering_windows(int64_t y, const Geom& g) {
  const int64_t t = y + g.p;  // >= 0
  int64_t hi = t / g.s;
  const int64_t lo_t = t - g.k + 1;
  const int64_t lo = lo_t <= 0 ? 0 : (lo_t + g.s - 1) / g.s;
  if (hi > g.n - 1) hi = g.n - 1;
  return {lo, hi};
}

// Window start (may be negative) in a, unused b.
C10_HOST_DEVICE inline Axis window_start(int64_t i, const Geom& g) { return {i * g.s - g.p, 0}; }

// Status codes of an index, maximised per plane.
constexpr int32_t kInWindow = 0;      // where the gather will find it
constexpr int32_t kOutOfWindow = 1;   // valid position, but no window of this geometry at (i, j) covers it
constexpr int32_t kOutOfPlane = 2;    // not a position of the output plane: an error

// The gather shared by both unpooling forwards: among the windows (i, j) in ry x cx that cover the
// pixel, those whose index points at it are matches; the one at the largest input position wins
// (PyTorch's sequential CPU result for duplicates). Writes the winner's value (or 0) to *out and
// returns the number of matches.
template <bool kOverlap, typename scalar_t, typename Match, typename Value>
C10_HOST_DEVICE inline int64_t gather_winner(scalar_t* out, Axis ry, Axis cx, const Match& match, const Value& value) {
  if (!kOverlap) {
    if (ry.a > ry.b || cx.a > cx.b) {  // no window covers the pixel (predictable per row/column)
      *out = scalar_t(0);
      return 0;
    }
    const bool m = match(ry.a, cx.a);
    *out = keep_or_zero(m, value(ry.a, cx.a));
    return m;
  }
  int64_t matches = 0;
  scalar_t v = scalar_t(0);
  // Descending (i, j) = descending flat input position: the first match is the winner.
  for (int64_t i = ry.b; i >= ry.a; --i) {
    for (int64_t j = cx.b; j >= cx.a; --j) {
      if (match(i, j)) {
        if (matches == 0) v = value(i, j);
        ++matches;
      }
    }
  }
  *out = v;
  return matches;
}

// CPU row form of the non-overlapping unpooling gathers (MaxUnpoolGather, CompactUnpoolGather):
// builds one output row of width W from its window row. points_at(j) is the column that window
// j's index names if it names this row (anything else is a miss); it is a hit when that column
// lies inside window j and the row. Visits each index once per output row instead of once per
// output pixel. The row is built in `scratch` (W + 1 elements: the last takes the stores of
// misses, so the store is unconditional, as a branch would mispredict half the time), then copied
// out. Returns the number of hits, as operator() would count them. values == nullptr: no window
// row covers this row, which is all zeros.
template <typename scalar_t, typename PointsAt>
inline int64_t unpool_row(scalar_t* out_row, void* scratch, int64_t W, const scalar_t* values, int64_t value_stride,
                          const Geom& gw, const PointsAt& points_at) {
  scalar_t* buf = static_cast<scalar_t*>(scratch);
  std::fill(buf, buf + W, scalar_t(0));
  int64_t hits = 0;
  for (int64_t j = 0; values != nullptr && j < gw.n; ++j) {
    const int64_t x0 = j * gw.s - gw.p;
    const int64_t x = points_at(j);
    const bool hit = (uint64_t(x - x0) < uint64_t(gw.k)) & (uint64_t(x) < uint64_t(W));
    hits += hit;
    buf[W + ((x - W) & -int64_t(hit))] = values[j * value_stride];  // x if hit, else W: no branch
  }
  std::copy(buf, buf + W, out_row);
  return hits;
}

// Rows [first, H) of an H x W plane, which a k2 plane form (unpool_plane_k2) leaves over: the one
// output row of a last, partial window row (ceil-mode pooling, SegNet's dec4/dec5), by the body's
// k2 row form (which needs no scratch there), and rows no window covers, zeros. Per element,
// that row cost a quarter of dec5's time.
template <typename Body>
inline int64_t plane_rows_after(const Body& b, int64_t off0, int64_t n, int64_t c, int64_t first, int64_t H,
                                int64_t W) {
  int64_t hits = 0;
  for (int64_t y = first; y < H; ++y) {
    const Axis ry = b.row(y);
    if (ry.a > ry.b) {
      std::fill(b.out + off0 + y * W, b.out + off0 + (y + 1) * W, 0);
    } else {
      hits += b.run_row(off0 + y * W, n, c, y, ry, nullptr, nullptr);
    }
  }
  return hits;
}

}  // namespace unpool
}  // namespace fastseg
