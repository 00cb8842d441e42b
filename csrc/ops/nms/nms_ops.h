// NMS and batched (per-class) NMS: checks, score sort and the two strategies, written once for
// both backends.
//
// - greedy (the CPU default): torchvision's algorithm, but over score-sorted coordinate arrays
//   (compacted once enough of them are suppressed), so each kept box costs one contiguous,
//   vectorisable IoU pass instead of indirect loads and a branch per candidate. Batched NMS runs it per class
//   (classes in parallel) and merges the kept boxes by score rank. CPU-only code: nms_cpu.h.
// - bitmask (CUDA; the CPU runs it too when a test forces it): SuppressionMask computes, for every
//   box, which later boxes it suppresses (64 per word, same-class pairs only for batched NMS),
//   one thread per word; one serial pass on the host then keeps each box not yet suppressed
//   and ORs in its row, as torchvision's CUDA NMS does.
// Both keep exactly the boxes torchvision keeps, in decreasing score order, ties by lower index.
#pragma once

#include <algorithm>
#include <optional>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/core/DeviceGuard.h>

#include "common/checks.h"
#include "common/tensor_view.h"
#include "ops/nms/nms.h"

namespace fastseg {
namespace nms {

enum class Strategy : int64_t { kAuto = 0, kGreedy = 1, kBitmask = 2 };
Strategy forced_strategy();  // testing hook (nms.cpp)

inline void check_inputs(const char* op, const at::Tensor& boxes, const at::Tensor& scores,
                         const at::Tensor* idxs) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "fastseg.", op, ": boxes must have shape [K, 4], got ",
              boxes.sizes());
  check_floating(boxes, op, "boxes");
  check_rank(scores, 1, op, "scores");
  TORCH_CHECK(scores.size(0) == boxes.size(0), "fastseg.", op, ": scores must have K = ", boxes.size(0),
              " elements (one per box), got ", scores.size(0));
  check_dtype(scores, boxes.scalar_type(), op, "scores");
  check_same_device(boxes, scores, op, "boxes", "scores");
  if (idxs != nullptr) {
    check_rank(*idxs, 1, op, "idxs");
    TORCH_CHECK(idxs->size(0) == boxes.size(0), "fastseg.", op, ": idxs must have K = ", boxes.size(0),
                " elements (one per box), got ", idxs->size(0));
    TORCH_CHECK(at::isIntegralType(idxs->scalar_type(), /*includeBool=*/false), "fastseg.", op,
                ": idxs must be an integer tensor, got ", idxs->scalar_type());
    check_same_device(boxes, *idxs, op, "boxes", "idxs");
  }
}

// The greedy loop (CPU only): defined in nms_cpu.h, which only nms.cpp includes; the flow below
// reaches it under `if constexpr (Backend::kIsCpu)`, so the CUDA translation unit never
// instantiates it (docs/design.md §4). greedy_segment: one class, positions [begin, end) of the
// sorted arrays, kept positions appended; greedy_by_class: every class (classes in parallel),
// kept positions in score order.
template <typename T>
void greedy_segment(const SortedBoxes<T>& bx, int64_t begin, int64_t end, T threshold, std::vector<int64_t>& kept);
template <typename T>
std::vector<int64_t> greedy_by_class(const SortedBoxes<T>& bx, const at::Tensor& cls, int64_t K, T threshold);

// Kept score ranks by the bitmask: one serial pass over the [K, blocks] mask (on the CPU).
inline std::vector<int64_t> scan_mask(const at::Tensor& mask_cpu, int64_t n_boxes, int64_t n_blocks) {
  const uint64_t* mask = reinterpret_cast<const uint64_t*>(mask_cpu.const_data_ptr<int64_t>());
  std::vector<uint64_t> removed(n_blocks, 0);
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n_boxes; ++i) {
    if (removed[i / kBlock] >> (i % kBlock) & 1) continue;
    kept.push_back(i);
    const uint64_t* row = mask + i * n_blocks;
    for (int64_t b = i / kBlock; b < n_blocks; ++b) removed[b] |= row[b];
  }
  return kept;
}

template <typename Backend>
at::Tensor nms_impl(const char* op, const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor* idxs,
                    double threshold) {
  check_inputs(op, boxes, scores, idxs);
  c10::DeviceGuard guard(boxes.device());
  const int64_t K = boxes.size(0);
  const auto long_opts = boxes.options().dtype(at::kLong);
  if (K == 0) return at::empty({0}, long_opts);
  // Stable descending sort: equal scores keep the lower index first (torchvision's order).
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const auto acc_type = boxes.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;  // opmath
  const at::Tensor sorted = boxes.index_select(0, order).to(acc_type);
  at::Tensor x1 = sorted.select(1, 0).contiguous(), y1 = sorted.select(1, 1).contiguous();
  at::Tensor x2 = sorted.select(1, 2).contiguous(), y2 = sorted.select(1, 3).contiguous();
  const at::Tensor area = (x2 - x1) * (y2 - y1);  // separate ops: no fused multiply-add
  at::Tensor cls;
  if (idxs != nullptr) cls = idxs->index_select(0, order).to(at::kLong).contiguous();
  std::vector<int64_t> kept;
  AT_DISPATCH_FLOATING_TYPES(acc_type, "fastseg.nms", [&] {
    const SortedBoxes<scalar_t> bx{x1.const_data_ptr<scalar_t>(), y1.const_data_ptr<scalar_t>(),
                                   x2.const_data_ptr<scalar_t>(), y2.const_data_ptr<scalar_t>(),
                                   area.const_data_ptr<scalar_t>(),
                                   cls.defined() ? cls.const_data_ptr<int64_t>() : nullptr};
    const scalar_t thr = threshold_as<scalar_t>(threshold);
    if constexpr (Backend::kIsCpu) {
      if (forced_strategy() != Strategy::kBitmask) {
        if (cls.defined()) {
          kept = greedy_by_class(bx, cls, K, thr);
        } else {
          greedy_segment(bx, 0, K, thr, kept);
        }
        return;
      }
    }
    const int64_t blocks = (K + kBlock - 1) / kBlock;
    auto mask = at::empty({K, blocks}, long_opts);
    Backend::for_each_4d(Shape4{1, 1, K, blocks, false},
                         SuppressionMask<scalar_t>{bx, reinterpret_cast<uint64_t*>(mask.mutable_data_ptr<int64_t>()),
                                                   K, blocks, thr});
    kept = scan_mask(mask.to(at::kCPU), K, blocks);
  });
  auto ranks = at::from_blob(kept.data(), {int64_t(kept.size())}, at::kLong).to(boxes.device());
  return order.index_select(0, ranks);
}

template <typename Backend>
at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  return nms_impl<Backend>("nms", boxes, scores, nullptr, iou_threshold);
}

template <typename Backend>
at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                       double iou_threshold) {
  return nms_impl<Backend>("batched_nms", boxes, scores, &idxs, iou_threshold);
}

template <typename Backend>
void register_kernels(torch::Library& m) {
  m.impl("nms", &nms<Backend>);
  m.impl("batched_nms", &batched_nms<Backend>);
}

}  // namespace nms
}  // namespace fastseg
