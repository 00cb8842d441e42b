// Panoptic fusion: checks and flow, written once for both backends (math in panoptic.h).
//
// The instance loop is sequential by nature (each decision depends on the pixels the earlier
// instances took), so the host drives it: per instance one counting pass (one device sync on
// CUDA) and one claiming pass over the instance's pixel rectangle, each parallel over pixels.
// Both ops return (panoptic [H, W] int32, segments [S, 3] int64 = (instance index or -1 for
// stuff, category id, area)); fastseg/ops/panoptic.py turns segments into segments_info.
#pragma once

#include <algorithm>
#include <optional>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/core/DeviceGuard.h>

#include "common/checks.h"
#include "common/tensor_view.h"
#include "ops/panoptic/panoptic.h"

namespace fastseg {
namespace panoptic {

// Semantic class ids are bounded so that per-class tables stay small (COCO has 200, Cityscapes
// 34 with 255 as "ignore").
constexpr int64_t kMaxClasses = int64_t(1) << 16;

struct Segment {
  int64_t instance, category, area;
};

inline at::Tensor segments_tensor(const std::vector<Segment>& segs, const at::Device& device) {
  auto t = at::empty({int64_t(segs.size()), 3}, at::TensorOptions().dtype(at::kLong));
  int64_t* p = t.mutable_data_ptr<int64_t>();
  for (const auto& s : segs) *p++ = s.instance, *p++ = s.category, *p++ = s.area;
  return t.to(device);
}

inline void check_instances(const char* op, const at::Tensor& ref, const at::Tensor& masks, const char* masks_name,
                            const std::optional<at::Tensor>& boxes, const at::Tensor& scores,
                            const at::Tensor& labels, bool masks_may_be_bool) {
  check_rank(masks, 3, op, masks_name);
  if (!(masks_may_be_bool && masks.scalar_type() == at::kBool)) check_floating(masks, op, masks_name);
  check_rank(scores, 1, op, "scores");
  check_floating(scores, op, "scores");
  check_rank(labels, 1, op, "labels");
  check_dtype(labels, at::kLong, op, "labels");
  const int64_t K = masks.size(0);
  TORCH_CHECK(scores.size(0) == K, "fastseg.", op, ": scores must have one entry per instance mask (", K, "), got ",
              scores.size(0));
  TORCH_CHECK(labels.size(0) == K, "fastseg.", op, ": labels must have one entry per instance mask (", K, "), got ",
              labels.size(0));
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor*>{masks_name, &masks}, {"scores", &scores},
                                {"labels", &labels}}) {
    check_same_device(ref, *t, op, "the semantic input", name);
  }
  if (boxes.has_value()) {
    TORCH_CHECK(boxes->dim() == 2 && boxes->size(1) == 4, "fastseg.", op, ": boxes must have shape [K, 4], got ",
                boxes->sizes());
    check_floating(*boxes, op, "boxes");
    check_same_device(ref, *boxes, op, "the semantic input", "boxes");
    TORCH_CHECK(boxes->size(0) == K, "fastseg.", op, ": boxes must have one row per instance mask (", K, "), got ",
                boxes->size(0));
  }
  if (K > 0) TORCH_CHECK(!at::isnan(scores).any().item<bool>(), "fastseg.", op, ": scores must not contain NaN");
}

// Candidates: instance indices by decreasing score (ties: lower index first) while score >=
// score_threshold. Host-side (K is small).
inline std::vector<int64_t> candidates(const at::Tensor& scores, double score_threshold) {
  const auto s = scores.to(at::kCPU, at::kDouble).contiguous();
  const auto order = std::get<1>(at::sort(s, /*stable=*/true, /*dim=*/0, /*descending=*/true)).contiguous();
  const double* sp = s.const_data_ptr<double>();
  const int64_t* op = order.const_data_ptr<int64_t>();
  std::vector<int64_t> out;
  for (int64_t i = 0; i < order.numel() && sp[op[i]] >= score_threshold; ++i) out.push_back(op[i]);
  return out;
}

inline Shape4 region_shape(const Region& r) { return {1, 1, r.y1 - r.y0, r.x1 - r.x0, false}; }

// One instance step: count, decide, claim. Returns the accepted (area, taken) or nullopt.
template <typename Backend, typename Mask>
std::optional<std::pair<int64_t, int64_t>> claim_instance(const Mask& mask, at::Tensor& map, int64_t k,
                                                          const Region& r, double overlap_threshold, bool need_free,
                                                          int32_t id) {
  if (r.empty()) return std::nullopt;
  const int64_t W = map.size(1);
  const int64_t packed = Backend::for_each_4d(
      region_shape(r), CountOverlap<Mask>{mask, map.const_data_ptr<int32_t>(), W, k, r});
  const int64_t area = unpack_area(packed), taken = unpack_taken(packed);
  if (!accept(area, taken, overlap_threshold, need_free)) return std::nullopt;
  Backend::for_each_4d(region_shape(r), Claim<Mask>{mask, map.mutable_data_ptr<int32_t>(), W, k, r, id});
  return std::make_pair(area, taken);
}

// Box pixel rectangles (host), from boxes [K, 4]: `widened` = the pixels paste_masks can touch
// (the box widened by half a mask cell), else the pixels whose centre lies in the box.
template <typename T>
std::vector<Region> box_regions(const at::Tensor& boxes_h, int64_t mh, int64_t mw, int64_t H, int64_t W,
                                bool widened) {
  const T* b = boxes_h.const_data_ptr<T>();
  std::vector<Region> out(boxes_h.size(0));
  for (int64_t k = 0; k < boxes_h.size(0); ++k, b += 4) {
    Region& r = out[k];
    if (widened) {
      paste_masks::pixel_range(b[1], b[3], mh, H, r.y0, r.y1);
      paste_masks::pixel_range(b[0], b[2], mw, W, r.x0, r.x1);
    } else {
      box_pixel_range(b[1], b[3], H, r.y0, r.y1);
      box_pixel_range(b[0], b[2], W, r.x0, r.x1);
    }
  }
  return out;
}

// Bounding rectangles of the candidates' pasted masks (one parallel pass over all of them; the
// masks of the instances under the score threshold are never read).
template <typename Backend, typename Mask>
std::vector<Region> mask_regions(const Mask& mask, const std::vector<int64_t>& cand, int64_t K, int64_t H, int64_t W,
                                 const at::Tensor& like) {
  const int64_t n = int64_t(cand.size());
  const auto instances = at::tensor(c10::ArrayRef<int64_t>(cand), at::kLong).to(like.device());
  auto ext = at::empty({n, H, 2}, like.options().dtype(at::kLong));
  Backend::for_each_4d(Shape4{1, n, H, 1, false}, RowExtent<Mask>{mask, instances.const_data_ptr<int64_t>(),
                                                                  ext.mutable_data_ptr<int64_t>(), H, W});
  ext = ext.cpu();
  const int64_t* e = ext.const_data_ptr<int64_t>();
  std::vector<Region> out(K, Region{0, 0, 0, 0});
  for (int64_t i = 0; i < n; ++i) {
    Region r{H, 0, W, 0};
    for (int64_t y = 0; y < H; ++y, e += 2) {
      if (e[1] <= e[0]) continue;
      r.y0 = std::min(r.y0, y), r.y1 = y + 1;
      r.x0 = std::min(r.x0, e[0]), r.x1 = std::max(r.x1, e[1]);
    }
    if (!r.empty()) out[cand[i]] = r;
  }
  return out;
}

inline void check_image(const char* op, int64_t H, int64_t W, double score_threshold, double overlap_threshold) {
  TORCH_CHECK(H * W < (int64_t(1) << 31), "fastseg.", op, ": images of at most 2^31 - 1 pixels, got ", H, "x", W);
  TORCH_CHECK(!std::isnan(score_threshold), "fastseg.", op, ": score_threshold must not be NaN");
  TORCH_CHECK(!std::isnan(overlap_threshold), "fastseg.", op, ": overlap_threshold must not be NaN");
}

// ---- Panoptic FPN heuristic (detectron2's combine_semantic_and_instance_outputs) -----------

template <typename Backend>
std::tuple<at::Tensor, at::Tensor> heuristic(const at::Tensor& semantic_in, const at::Tensor& masks,
                                             const std::optional<at::Tensor>& boxes, const at::Tensor& scores,
                                             const at::Tensor& labels, double overlap_threshold,
                                             int64_t stuff_area_threshold, double score_threshold,
                                             c10::IntArrayRef thing_ids) {
  const char* op = "panoptic_fusion_heuristic";
  check_rank(semantic_in, 2, op, "semantic");
  TORCH_CHECK(at::isIntegralType(semantic_in.scalar_type(), /*includeBool=*/false), "fastseg.", op,
              ": semantic must be an integer tensor of class ids, got ", semantic_in.scalar_type());
  check_instances(op, semantic_in, masks, "masks", boxes, scores, labels, /*masks_may_be_bool=*/!boxes.has_value());
  const int64_t H = semantic_in.size(0), W = semantic_in.size(1), K = masks.size(0);
  check_image(op, H, W, score_threshold, overlap_threshold);
  if (!boxes.has_value()) {
    TORCH_CHECK(masks.size(1) == H && masks.size(2) == W, "fastseg.", op, ": pasted masks must be [K, ", H, ", ", W,
                "] like semantic, got ", masks.sizes(), " (pass boxes for per-box masks)");
  } else {
    TORCH_CHECK(K == 0 || (masks.size(1) > 0 && masks.size(2) > 0), "fastseg.", op,
                ": per-box masks must have non-empty [M, M] planes, got ", masks.sizes());
  }
  if (K > 0) TORCH_CHECK(labels.min().item<int64_t>() >= 0, "fastseg.", op, ": labels must be >= 0");
  c10::DeviceGuard guard(semantic_in.device());
  const auto semantic = semantic_in.to(at::kLong);
  int64_t num_classes = 0;
  if (semantic.numel() > 0) {
    const auto [lo, hi] = at::aminmax(semantic);
    const int64_t lo_v = lo.item<int64_t>(), hi_v = hi.item<int64_t>();
    TORCH_CHECK(lo_v >= 0 && hi_v < kMaxClasses, "fastseg.", op, ": semantic class ids must be in [0, ", kMaxClasses,
                "), got [", lo_v, ", ", hi_v, "]");
    num_classes = hi_v + 1;
  }
  auto map = zeros_huge({H, W}, semantic.options().dtype(at::kInt));
  std::vector<Segment> segs;
  const auto cand = candidates(scores, score_threshold);
  if (!cand.empty() && H * W > 0) {
    const auto labels_h = labels.cpu().contiguous();
    const int64_t* lab = labels_h.const_data_ptr<int64_t>();
    auto step = [&](const auto& mask, const std::vector<Region>& regions) {
      for (int64_t k : cand) {
        const auto got = claim_instance<Backend>(mask, map, k, regions[k], overlap_threshold, /*need_free=*/true,
                                                 int32_t(segs.size() + 1));
        if (got) segs.push_back({k, lab[k], got->first - got->second});
      }
    };
    const Strides4 ms{masks.stride(0), 0, masks.stride(1), masks.stride(2)};
    AT_DISPATCH_FLOATING_TYPES_AND3(at::kHalf, at::kBFloat16, at::kBool, masks.scalar_type(), "heuristic", [&] {
      if (!boxes.has_value()) {
        const PastedMask<scalar_t, false> mask{masks.const_data_ptr<scalar_t>(), ms};
        step(mask, mask_regions<Backend>(mask, cand, K, H, W, masks));
      } else if constexpr (!std::is_same_v<scalar_t, bool>) {
        using T = at::opmath_type<scalar_t>;
        const auto b = boxes->to(c10::CppTypeToScalarType<T>::value).contiguous();
        const auto b_h = b.cpu();
        const BoxMask<scalar_t, false> mask{masks.const_data_ptr<scalar_t>(), ms, masks.size(1), masks.size(2),
                                            b.const_data_ptr<T>()};
        step(mask, box_regions<T>(b_h, masks.size(1), masks.size(2), H, W, /*widened=*/true));
      }
    });
  }
  // Stuff: per semantic class, its free pixels, in ascending class order.
  if (H * W > 0) {
    const auto free_class = at::where(map == 0, semantic, num_classes).flatten();
    const auto hist = at::bincount(free_class, {}, num_classes + 1).cpu();
    const int64_t* h = hist.const_data_ptr<int64_t>();
    std::vector<bool> not_stuff(num_classes, false);
    for (int64_t t : thing_ids) {
      if (t >= 0 && t < num_classes) not_stuff[t] = true;
    }
    auto lut = at::zeros({num_classes + 1}, at::TensorOptions().dtype(at::kInt));
    int32_t* l = lut.mutable_data_ptr<int32_t>();
    bool any = false;
    for (int64_t c = 0; c < num_classes; ++c) {
      if (not_stuff[c] || h[c] == 0 || h[c] < stuff_area_threshold) continue;
      segs.push_back({-1, c, h[c]});
      l[c] = int32_t(segs.size());
      any = true;
    }
    if (any) {
      lut = lut.to(map.device());
      Backend::for_each_4d(Shape4{1, 1, H, W, false},
                           ClaimStuff{semantic.const_data_ptr<int64_t>(), semantic.stride(0), semantic.stride(1),
                                      lut.const_data_ptr<int32_t>(), map.mutable_data_ptr<int32_t>(), W});
    }
  }
  return {map, segments_tensor(segs, map.device())};
}

// ---- EfficientPS fusion (Mohan & Valada 2021) -----------------------------------------------

template <typename Backend>
std::tuple<at::Tensor, at::Tensor> efficientps(const at::Tensor& sem, const at::Tensor& masks,
                                               const at::Tensor& boxes, const at::Tensor& scores,
                                               const at::Tensor& labels, c10::IntArrayRef stuff_ids,
                                               double score_threshold, double overlap_threshold,
                                               int64_t min_stuff_area, bool pasted) {
  const char* op = "panoptic_fusion_efficientps";
  check_rank(sem, 3, op, "semantic_logits");
  check_floating(sem, op, "semantic_logits");
  check_instances(op, sem, masks, "mask_logits", boxes, scores, labels, /*masks_may_be_bool=*/false);
  TORCH_CHECK(masks.scalar_type() == sem.scalar_type(), "fastseg.", op,
              ": mask_logits must have the dtype of semantic_logits (", sem.scalar_type(), "), got ",
              masks.scalar_type());
  const int64_t Cs = sem.size(0), H = sem.size(1), W = sem.size(2), K = masks.size(0);
  check_image(op, H, W, score_threshold, overlap_threshold);
  if (pasted) {
    TORCH_CHECK(masks.size(1) == H && masks.size(2) == W, "fastseg.", op, ": pasted mask_logits must be [K, ", H,
                ", ", W, "] like semantic_logits, got ", masks.sizes());
  } else {
    TORCH_CHECK(K == 0 || (masks.size(1) > 0 && masks.size(2) > 0), "fastseg.", op,
                ": per-box mask_logits must have non-empty [M, M] planes, got ", masks.sizes());
  }
  if (K > 0) {
    const auto [lo, hi] = at::aminmax(labels);
    TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < Cs, "fastseg.", op,
                ": labels must be channels of semantic_logits, in [0, ", Cs, "), got [", lo.item<int64_t>(), ", ",
                hi.item<int64_t>(), "]");
  }
  std::vector<bool> seen(Cs, false);
  for (int64_t c : stuff_ids) {
    TORCH_CHECK(c >= 0 && c < Cs, "fastseg.", op, ": stuff_ids must be channels of semantic_logits, in [0, ", Cs,
                "), got ", c);
    TORCH_CHECK(!seen[c], "fastseg.", op, ": stuff_ids must not repeat a class, got ", c, " twice");
    seen[c] = true;
  }
  c10::DeviceGuard guard(sem.device());
  auto map = zeros_huge({H, W}, sem.options().dtype(at::kInt));
  std::vector<Segment> segs;
  if (H * W == 0) return {map, segments_tensor(segs, map.device())};
  const int64_t S = int64_t(stuff_ids.size());
  const auto cand = candidates(scores, score_threshold);
  const auto labels_h = labels.cpu().contiguous();
  const int64_t* lab = labels_h.const_data_ptr<int64_t>();
  const Strides4 ms{masks.stride(0), 0, masks.stride(1), masks.stride(2)};
  const Strides4 ss{0, sem.stride(0), sem.stride(1), sem.stride(2)};
  std::vector<int64_t> kept;
  std::vector<Region> kept_regions;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, sem.scalar_type(), "efficientps", [&] {
    using T = at::opmath_type<scalar_t>;
    const auto b = boxes.to(c10::CppTypeToScalarType<T>::value).contiguous();
    const auto regions = box_regions<T>(b.cpu(), 1, 1, H, W, /*widened=*/false);
    auto run = [&](const auto& mask) {
      // 1. Keep candidates whose binary mask (inside the box) overlaps the union of the kept
      //    ones by at most overlap_threshold of its area; the map holds the union (1).
      for (int64_t k : cand) {
        if (claim_instance<Backend>(mask, map, k, regions[k], overlap_threshold, /*need_free=*/false, 1)) {
          kept.push_back(k);
          kept_regions.push_back(regions[k]);
        }
      }
      // 2. Per pixel winner channel over stuff logits and fused logits, into the same map.
      const int64_t Kk = int64_t(kept.size());
      auto table = at::empty({S + 2 * Kk + int64_t(sizeof(Region) / sizeof(int64_t)) * Kk}, at::kLong);
      int64_t* t = table.mutable_data_ptr<int64_t>();
      std::copy(stuff_ids.begin(), stuff_ids.end(), t);
      for (int64_t i = 0; i < Kk; ++i) t[S + i] = kept[i], t[S + Kk + i] = lab[kept[i]];
      std::copy(kept_regions.begin(), kept_regions.end(), reinterpret_cast<Region*>(t + S + 2 * Kk));
      table = table.to(map.device());
      const int64_t* td = table.const_data_ptr<int64_t>();
      using Mask = std::decay_t<decltype(mask)>;
      Backend::for_each_4d(Shape4{1, 1, H, W, false},
                           Fuse<scalar_t, Mask>{sem.const_data_ptr<scalar_t>(), ss, td, S, mask, td + S,
                                                reinterpret_cast<const Region*>(td + S + 2 * Kk), td + S + Kk, Kk,
                                                map.mutable_data_ptr<int32_t>(), W});
    };
    if (pasted) {
      run(PastedMask<scalar_t, true>{masks.const_data_ptr<scalar_t>(), ms});
    } else {
      run(BoxMask<scalar_t, true>{masks.const_data_ptr<scalar_t>(), ms, masks.size(1), masks.size(2),
                                  b.const_data_ptr<T>()});
    }
  });
  // 3. Areas per winner channel; things (kept order) then stuff classes (stuff_ids order) get ids.
  const int64_t Kk = int64_t(kept.size());
  const auto hist = at::bincount((map + 1).flatten(), {}, S + Kk + 1).cpu();
  const int64_t* h = hist.const_data_ptr<int64_t>();
  auto lut = at::zeros({S + Kk + 1}, at::TensorOptions().dtype(at::kInt));
  int32_t* l = lut.mutable_data_ptr<int32_t>();
  for (int64_t i = 0; i < Kk; ++i) {
    if (h[S + i + 1] == 0) continue;
    segs.push_back({kept[i], lab[kept[i]], h[S + i + 1]});
    l[S + i + 1] = int32_t(segs.size());
  }
  for (int64_t j = 0; j < S; ++j) {
    if (h[j + 1] == 0 || h[j + 1] < min_stuff_area) continue;
    segs.push_back({-1, stuff_ids[j], h[j + 1]});
    l[j + 1] = int32_t(segs.size());
  }
  lut = lut.to(map.device());
  Backend::for_each_4d(Shape4{1, 1, H, W, false},
                       WinnerToSegment{lut.const_data_ptr<int32_t>(), map.mutable_data_ptr<int32_t>(), W});
  return {map, segments_tensor(segs, map.device())};
}

template <typename Backend>
void register_kernels(torch::Library& m) {
  m.impl("panoptic_fusion_heuristic", &heuristic<Backend>);
  m.impl("panoptic_fusion_efficientps", &efficientps<Backend>);
}

}  // namespace panoptic
}  // namespace fastseg
