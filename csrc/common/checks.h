// Argument checks shared by every op. Each message starts "fastseg.<op>: <argument> must ...",
// so a user sees which argument of which op is wrong. Both backends call the same checks.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace fastseg {

inline void check_rank(const at::Tensor& t, int64_t rank, const char* op, const char* name) {
  TORCH_CHECK(t.dim() == rank, "fastseg.", op, ": ", name, " must be ", rank, "-D, got shape ", t.sizes());
}

inline void check_floating(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble || t.scalar_type() == at::kHalf ||
                  t.scalar_type() == at::kBFloat16,
              "fastseg.", op, ": ", name, " must be float32, float64, float16 or bfloat16, got ", t.scalar_type());
}

inline void check_dtype(const at::Tensor& t, at::ScalarType dtype, const char* op, const char* name) {
  TORCH_CHECK(t.scalar_type() == dtype, "fastseg.", op, ": ", name, " must be ", dtype, ", got ", t.scalar_type());
}

inline void check_same_shape(const at::Tensor& a, const at::Tensor& b, const char* op, const char* name_a,
                             const char* name_b) {
  TORCH_CHECK(a.sizes() == b.sizes(), "fastseg.", op, ": ", name_b, " must have the shape of ", name_a, " ",
              a.sizes(), ", got ", b.sizes());
}

inline void check_same_device(const at::Tensor& a, const at::Tensor& b, const char* op, const char* name_a,
                              const char* name_b) {
  TORCH_CHECK(a.device() == b.device(), "fastseg.", op, ": ", name_b, " must be on the device of ", name_a, " (",
              a.device(), "), got ", b.device());
}

// A list argument of exactly two ints, each >= minimum.
inline void check_pair(c10::IntArrayRef v, int64_t minimum, const char* op, const char* name) {
  TORCH_CHECK(v.size() == 2, "fastseg.", op, ": ", name, " must have 2 elements, got ", v);
  TORCH_CHECK(v[0] >= minimum && v[1] >= minimum, "fastseg.", op, ": ", name, " must be >= ", minimum, ", got ", v);
}

}  // namespace fastseg
