// A testing hook's setting: which kernel strategy an op family is forced to use (0 = auto).
// Each family keeps one switch and registers `fastseg_testing::set_<setting>(int strategy) -> int`
// (checks the range, returns the previous setting) and `get_<setting>() -> int` in the separate
// testing namespace (see cpu_backend.cpp), so tests can force every path in turn. Python reaches
// them only through fastseg.testing.strategy(...), which names the integers.
#pragma once

#include <atomic>
#include <cstdint>

#include <c10/util/Exception.h>

namespace fastseg {

class StrategySwitch {
 public:
  StrategySwitch(const char* setter, int64_t max) : setter_(setter), max_(max) {}
  int64_t set(int64_t strategy) {
    TORCH_CHECK(strategy >= 0 && strategy <= max_, "fastseg_testing.", setter_, ": strategy must be 0..", max_,
                ", got ", strategy);
    return value_.exchange(strategy);
  }
  int64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  const char* setter_;
  int64_t max_;
  std::atomic<int64_t> value_{0};
};

}  // namespace fastseg
