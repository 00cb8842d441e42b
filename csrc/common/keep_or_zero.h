// keep_or_zero: a select that compiles to bit operations, never to a branch.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include <c10/macros/Macros.h>

namespace fastseg {

// v if keep, else +0. Done on the bits, so the compiler cannot turn it back into a branch: for
// unpooling the match is a coin flip per pixel and a branch would mispredict. Exact for every
// value (NaN, -0.0, inf), unlike v * keep.
template <typename T>
C10_HOST_DEVICE inline T keep_or_zero(bool keep, T v) {
  using Bits = std::conditional_t<sizeof(T) == 8, uint64_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint16_t>>;
  static_assert(sizeof(T) == sizeof(Bits), "unsupported scalar type");
  Bits bits;
  memcpy(&bits, &v, sizeof(T));
  bits &= Bits(0) - Bits(keep);
  T out;
  memcpy(&out, &bits, sizeof(T));
  return out;
}

}  // namespace fastseg
