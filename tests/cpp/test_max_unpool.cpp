// C++ (LibTorch) test of libfastseg, built by CMakeLists.txt and run by ctest.
//
// It uses no fastseg header and no fastseg symbol: like any LibTorch user, it finds the op
// fastseg::max_unpool2d through the dispatcher (registered when libfastseg.so is loaded) and
// checks it against ATen's max_unpool2d, with indices from at::max_pool2d_with_indices.
// On CPU always; on CUDA too when a GPU is present. Exit status 0 = pass, 1 = a check failed.
//
// FASTSEG_TEST_EXPECT_CUDA_KERNEL (set by CMake when FASTSEG_CUDA=ON) makes the test also check
// that the CUDA kernel is registered, which needs no GPU.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#ifndef FASTSEG_TEST_EXPECT_CUDA_KERNEL
#define FASTSEG_TEST_EXPECT_CUDA_KERNEL 0
#endif

namespace {

// max_unpool2d(Tensor input, Tensor indices, int[2] kernel_size, int[2] stride, int[2] padding,
//              SymInt[2] output_size) -> Tensor
using MaxUnpool2dFn = at::Tensor(const at::Tensor&, const at::Tensor&, c10::IntArrayRef,
                                 c10::IntArrayRef, c10::IntArrayRef, c10::SymIntArrayRef);

int g_failures = 0;
int g_checks = 0;

void fail(const std::string& what) {
  ++g_failures;
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
}

struct Case {
  const char* name;
  int64_t n, c, h, w;  // the pooled tensor's input, i.e. the unpool output size
  int64_t k, s, p;
  bool ceil_mode;
  enum Layout { kContiguous, kChannelsLast, kSliced } layout;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"2x2/s2 even", 2, 3, 8, 8, 2, 2, 0, false, Case::kContiguous},
      {"2x2/s2 odd (output larger than the windows cover)", 1, 4, 7, 9, 2, 2, 0, false,
       Case::kContiguous},
      {"3x3/s2/p1 overlapping windows", 2, 5, 9, 11, 3, 2, 1, false, Case::kContiguous},
      {"3x3/s2 ceil_mode", 1, 2, 10, 7, 3, 2, 0, true, Case::kContiguous},
      {"1x1 input", 1, 3, 2, 2, 2, 2, 0, false, Case::kContiguous},
      {"channels_last", 2, 16, 12, 10, 2, 2, 0, false, Case::kChannelsLast},
      {"non-contiguous (channel slice)", 2, 6, 8, 6, 2, 2, 0, false, Case::kSliced},
      {"empty batch", 0, 3, 8, 8, 2, 2, 0, false, Case::kContiguous},
      {"SegNet-like", 1, 64, 45, 60, 2, 2, 0, false, Case::kContiguous},
  };
  return all;
}

std::string describe(const Case& c, const at::Device& device, at::ScalarType dtype) {
  return std::string(c.name) + " [" + device.str() + ", " + c10::toString(dtype) + "]";
}

// Pools a random tensor, unpools it with fastseg and with ATen, and compares bit for bit.
void run_case(const c10::TypedOperatorHandle<MaxUnpool2dFn>& op, const Case& c,
              const at::Device& device, at::ScalarType dtype) {
  const auto what = describe(c, device, dtype);
  ++g_checks;
  try {
    const int64_t channels = c.layout == Case::kSliced ? 2 * c.c : c.c;
    auto x = at::randn({c.n, channels, c.h, c.w}, at::kDouble).to(device, dtype);
    if (c.layout == Case::kChannelsLast) {
      x = x.contiguous(at::MemoryFormat::ChannelsLast);
    }
    auto [values, indices] = at::max_pool2d_with_indices(x, {c.k, c.k}, {c.s, c.s},
                                                         {c.p, c.p}, {1, 1}, c.ceil_mode);
    if (c.layout == Case::kSliced) {
      values = values.slice(/*dim=*/1, 0, channels, /*step=*/2);
      indices = indices.slice(/*dim=*/1, 0, channels, /*step=*/2);
    }
    const std::vector<int64_t> size = {c.h, c.w};
    const auto out = op.call(values, indices, {c.k, c.k}, {c.s, c.s}, {c.p, c.p},
                             c10::fromIntArrayRefSlow(size));
    const auto ref = at::max_unpool2d(values, indices, size);
    if (out.sizes() != ref.sizes()) {
      fail(what + ": size " + c10::str(out.sizes()) + ", expected " + c10::str(ref.sizes()));
    } else if (out.scalar_type() != ref.scalar_type() || out.device() != ref.device()) {
      fail(what + ": got " + c10::toString(out.scalar_type()) + " on " + out.device().str());
    } else if (!at::equal(out, ref)) {
      const auto diff = (out.to(at::kDouble) - ref.to(at::kDouble)).abs();
      fail(what + ": differs from at::max_unpool2d at " +
           std::to_string(diff.ne(0).sum().item<int64_t>()) + " of " +
           std::to_string(out.numel()) + " elements");
    }
  } catch (const std::exception& e) {
    fail(what + ": threw " + e.what());
  }
}

// Out-of-range indices must raise (docs/design.md §5.1), never write out of bounds. CPU only: on CUDA
// a device-side assert would poison the context for the rest of the program.
void check_bad_indices(const c10::TypedOperatorHandle<MaxUnpool2dFn>& op) {
  const std::vector<int64_t> size = {8, 8};
  for (const int64_t bad : {int64_t{64}, int64_t{-1}}) {
    ++g_checks;
    auto x = at::randn({1, 2, 8, 8});
    auto [values, indices] = at::max_pool2d_with_indices(x, {2, 2}, {2, 2});
    indices = indices.clone();
    indices.view(-1)[5] = bad;
    try {
      op.call(values, indices, {2, 2}, {2, 2}, {0, 0}, c10::fromIntArrayRefSlow(size));
      fail("index " + std::to_string(bad) + " outside an 8x8 output did not raise");
    } catch (const c10::Error&) {
      // expected
    }
  }
}

}  // namespace

int main() {
  at::manual_seed(0);
  const auto handle = c10::Dispatcher::singleton().findSchemaOrThrow("fastseg::max_unpool2d", "");
  const auto op = handle.typed<MaxUnpool2dFn>();
  std::printf("schema: %s\n", c10::str(handle.schema()).c_str());

  if (!handle.hasKernelForDispatchKey(c10::DispatchKey::CPU)) {
    fail("fastseg::max_unpool2d has no CPU kernel");
  }
  const bool has_cuda_kernel = handle.hasKernelForDispatchKey(c10::DispatchKey::CUDA);
  std::printf("CUDA kernel registered: %s\n", has_cuda_kernel ? "yes" : "no");
  if (FASTSEG_TEST_EXPECT_CUDA_KERNEL && !has_cuda_kernel) {
    fail("libfastseg was built with CUDA but fastseg::max_unpool2d has no CUDA kernel");
  }

  for (const auto dtype : {at::kFloat, at::kDouble}) {
    for (const auto& c : cases()) run_case(op, c, at::Device(at::kCPU), dtype);
  }
  check_bad_indices(op);

  if (has_cuda_kernel && at::hasCUDA()) {
    for (const auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
      for (const auto& c : cases()) run_case(op, c, at::Device(at::kCUDA, 0), dtype);
    }
  } else {
    std::printf("CUDA cases skipped (%s)\n", has_cuda_kernel ? "no GPU" : "no CUDA kernel");
  }

  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
