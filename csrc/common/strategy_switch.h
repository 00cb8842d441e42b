// A testing hook's setting: which kernel strategy an op family is forced to use (0 = auto).
// Each family keeps one switch and registers `_set_<family>_...(int strategy) -> int`, which
// checks the range and returns the previous setting, so tests can force every path in turn.
#pragma once

#include <atomic>
#include <cstdint>

#include <c10/util/Exception.h>

namespace fastseg {

class StrategySwitch {
 public:
  StrategySwitch(const char* setter, int64_t max) : setter_(setter), max_(max) {}
  int64_t set(int64_t strategy) {
    TORCH_CHECK(strategy >= 0 && strategy <= max_, "fastseg.", setter_, ": strategy must be 0..", max_, ", got ",
                strategy);
    return value_.exchange(strategy);
  }
  int64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  const char* setter_;
  int64_t max_;
  std::atomic<int64_t> value_{0};
};

}  // namespace fastseg
