// Transpose convolution + crop: schemas, the CPU kernels (math in conv_transpose.h, flow in
// conv_transpose_ops.h) and the strategy switch for tests.
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/library.h>

#include "common/cpu_backend.h"
#include "common/strategy_switch.h"
#include "ops/conv_transpose/conv_transpose_ops.h"

namespace fastseg {
namespace conv_transpose {
namespace {
// Testing hook (fastseg.testing.strategy(conv_transpose=...)): 0 "auto", 1 "direct", 2 "gemm"
// (phase GEMM; dilation 1, else direct), 3 "aten".
StrategySwitch forced("set_conv_transpose", 3);
int64_t set_strategy(int64_t strategy) { return forced.set(strategy); }
int64_t get_strategy() { return forced.get(); }
}  // namespace

Strategy forced_strategy() { return static_cast<Strategy>(forced.get()); }

namespace {
std::mutex cache_mutex;
std::map<std::vector<int64_t>, Strategy>& strategy_cache() {
  static std::map<std::vector<int64_t>, Strategy> cache;
  return cache;
}
}  // namespace

std::optional<Strategy> cached_strategy(const std::vector<int64_t>& key) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto it = strategy_cache().find(key);
  if (it == strategy_cache().end()) return std::nullopt;
  return it->second;
}

void cache_strategy(const std::vector<int64_t>& key, Strategy strategy) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  strategy_cache().emplace(key, strategy);  // a concurrent first call's choice stays if it came first
}

int64_t cpu_threads() { return at::get_num_threads(); }

bool measure_strategies() {
  static const bool on = [] {
    const char* v = std::getenv("FASTSEG_CONV_TRANSPOSE_MEASURE");
    return v == nullptr || std::string(v) != "0";
  }();
  return on;
}

namespace {
// Testing hook: the measured choices so far, as (key..., strategy) rows; clears them if asked.
std::vector<std::vector<int64_t>> measured_choices(bool clear) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  std::vector<std::vector<int64_t>> rows;
  for (const auto& [key, strategy] : strategy_cache()) {
    rows.push_back(key);
    rows.back().push_back(static_cast<int64_t>(strategy));
  }
  if (clear) strategy_cache().clear();
  return rows;
}
at::Tensor measured_choices_op(bool clear) {
  auto rows = measured_choices(clear);
  const int64_t width = rows.empty() ? 0 : int64_t(rows[0].size());
  auto t = at::empty({int64_t(rows.size()), width}, at::kLong);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t j = 0; j < width; ++j) t[i][j] = rows[i][j];
  }
  return t;
}
}  // namespace

}  // namespace conv_transpose
}  // namespace fastseg

TORCH_LIBRARY_FRAGMENT(fastseg, m) {
  m.def("conv_transpose2d_crop(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, "
        "int[2] dilation, int groups, SymInt[2] crop, SymInt[2] output_size) -> Tensor");
  m.def("conv_transpose2d_crop_out(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, "
        "int[2] dilation, int groups, SymInt[2] crop, Tensor(a!) out) -> ()");
  m.def("conv_transpose2d_crop_cat(Tensor input, Tensor weight, Tensor? bias, Tensor skip, int[2] stride, "
        "int[2] padding, int[2] dilation, int groups, SymInt[2] crop, SymInt[2] output_size, SymInt[2] skip_crop) "
        "-> Tensor");
}

// Testing switch (fastseg.testing.strategy(conv_transpose=...)), outside the public op namespace.
TORCH_LIBRARY_FRAGMENT(fastseg_testing, m) {
  m.def("set_conv_transpose(int strategy) -> int", &fastseg::conv_transpose::set_strategy);
  m.def("get_conv_transpose() -> int", &fastseg::conv_transpose::get_strategy);
  m.def("conv_transpose_measured(bool clear) -> Tensor", &fastseg::conv_transpose::measured_choices_op);
}

TORCH_LIBRARY_IMPL(fastseg, CPU, m) {
  fastseg::conv_transpose::register_kernels<fastseg::CpuBackend>(m);
}
