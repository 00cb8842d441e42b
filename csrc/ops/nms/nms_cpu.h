// NMS's greedy loop, the CPU default (see nms_ops.h for the strategies). CPU-only: included by
// nms.cpp only (compiled with OpenMP); the shared flow of nms_ops.h reaches these functions under
// `if constexpr (Backend::kIsCpu)`, so no CUDA translation unit instantiates them
// (docs/design.md §4; tests/test_cpu_threads.py).
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "ops/nms/nms.h"
#include "ops/nms/nms_ops.h"  // the declarations these definitions match

namespace fastseg {
namespace nms {

// Greedy NMS over positions [begin, end) of the sorted arrays (one class); appends kept positions.
// Each kept box clears the alive flags of the boxes after it in one branch-free, vectorisable
// pass (suppressed boxes are tested again, harmlessly: cheaper than skipping them); the arrays
// are compacted once more than half of what is left is dead.
template <typename T>
void greedy_segment(const SortedBoxes<T>& bx, int64_t begin, int64_t end, T threshold, std::vector<int64_t>& kept) {
  int64_t n = end - begin;
  std::vector<T> x1(bx.x1 + begin, bx.x1 + end), y1(bx.y1 + begin, bx.y1 + end);
  std::vector<T> x2(bx.x2 + begin, bx.x2 + end), y2(bx.y2 + begin, bx.y2 + end);
  std::vector<T> area(bx.area + begin, bx.area + end);
  std::vector<int64_t> pos(n);
  std::iota(pos.begin(), pos.end(), begin);
  std::vector<uint8_t> alive(n, 1);
  int64_t dead = 0;  // dead entries after `cur` since the last compaction
  for (int64_t cur = 0; cur < n; ++cur) {
    if (!alive[cur]) {
      --dead;
      continue;
    }
    kept.push_back(pos[cur]);
    const T ax1 = x1[cur], ay1 = y1[cur], ax2 = x2[cur], ay2 = y2[cur], a_area = area[cur];
    int64_t killed = 0;
    for (int64_t k = cur + 1; k < n; ++k) {
      const uint8_t hit = iou_above(ax1, ay1, ax2, ay2, a_area, x1[k], y1[k], x2[k], y2[k], area[k], threshold);
      killed += alive[k] & hit;
      alive[k] &= uint8_t(1 - hit);
    }
    dead += killed;
    if (dead > 64 && 2 * dead > n - cur - 1) {  // compact [cur + 1, n) to its live entries
      int64_t m = 0;
      for (int64_t k = cur + 1; k < n; ++k) {
        x1[m] = x1[k], y1[m] = y1[k], x2[m] = x2[k], y2[m] = y2[k], area[m] = area[k], pos[m] = pos[k];
        alive[m] = 1;
        m += alive[k];
      }
      n = m;
      cur = -1;  // the loop's ++cur starts at the first live entry
      dead = 0;
    }
  }
}

// Greedy NMS per class: positions grouped by class (each group in score order), classes in
// parallel, then the kept boxes of all classes merged by score rank.
template <typename T>
std::vector<int64_t> greedy_by_class(const SortedBoxes<T>& bx, const at::Tensor& cls, int64_t K, T threshold) {
  const at::Tensor grouped = std::get<1>(cls.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));
  const int64_t* perm = grouped.const_data_ptr<int64_t>();
  const int64_t* c = cls.const_data_ptr<int64_t>();
  std::vector<T> x1(K), y1(K), x2(K), y2(K), area(K);
  std::vector<int64_t> starts;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t p = perm[k];
    x1[k] = bx.x1[p], y1[k] = bx.y1[p], x2[k] = bx.x2[p], y2[k] = bx.y2[p], area[k] = bx.area[p];
    if (k == 0 || c[p] != c[perm[k - 1]]) starts.push_back(k);
  }
  starts.push_back(K);
  const SortedBoxes<T> g{x1.data(), y1.data(), x2.data(), y2.data(), area.data(), nullptr};
  const int64_t n_groups = int64_t(starts.size()) - 1;
  std::vector<std::vector<int64_t>> kept_by_group(n_groups);
  at::parallel_for(0, n_groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) greedy_segment(g, starts[s], starts[s + 1], threshold, kept_by_group[s]);
  });
  std::vector<int64_t> kept;
  for (const auto& group : kept_by_group) {
    for (int64_t p : group) kept.push_back(perm[p]);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

}  // namespace nms
}  // namespace fastseg
