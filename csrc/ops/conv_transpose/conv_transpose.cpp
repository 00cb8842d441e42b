// Transpose convolution + crop: schemas, the CPU kernels (math in conv_transpose.h, flow in
// conv_transpose_ops.h) and the strategy switch for tests.
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
}

TORCH_LIBRARY_IMPL(fastseg, CPU, m) {
  fastseg::conv_transpose::register_kernels<fastseg::CpuBackend>(m);
}
