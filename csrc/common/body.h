// The contract of a kernel *body*, shared by both backends (docs/design.md §4).
//
// A body (see csrc/ops/*/<op>.h) is a struct with C10_HOST_DEVICE members
//   Axis row(int64_t y) const;   Axis col(int64_t x) const;     // per-row / per-column precompute
//   R operator()(int64_t offset, int64_t n, int64_t c, int64_t y, int64_t x, Axis ry, Axis cx) const;
// that computes and writes the output element (n, c, y, x) at `offset` of the output(s). R is void,
// or int64_t for bodies that count something (e.g. matched indices); for_each_4d returns the total.
// CpuBackend (cpu_backend.h, CPU translation units only) and CudaBackend (cuda_backend.cuh) call the
// very same body, so CPU tests check the GPU's per-element code.
//
// This header holds only the contract and its compile-time traits: no thread mapping, nothing
// CPU-only, so the CUDA translation units can include it (they must not include cpu_backend.h:
// docs/design.md §4, "CPU code stays in CPU translation units").
#pragma once

#include <type_traits>
#include <utility>

#include "common/tensor_view.h"

namespace fastseg {

// A body may also offer a faster whole-row form for NCHW outputs on the CPU:
//   static constexpr bool kRowKernel = true;
//   int64_t run_row(int64_t row_offset, int64_t n, int64_t c, int64_t y, Axis ry, const Axis* cols,
//                   void* scratch) const;
// which must write the same W elements (and return the same count) as operator() would; cols
// holds col(x) for every x, scratch W + 1 elements of up to 8 bytes, private to the calling thread. Tests
// compare both forms: fastseg.testing.strategy(cpu_row_kernels=False) makes the CPU use
// operator() everywhere, as CUDA does.
// C++17 detection idiom, not a C++20 requires-expression: torch 2.11/2.12's cpp_extension (our
// GPU machine has 2.11) compiles with -std=c++17.
template <typename Body, typename = void>
struct row_kernel_of : std::false_type {};
template <typename Body>
struct row_kernel_of<Body, std::void_t<decltype(Body::kRowKernel)>> : std::bool_constant<Body::kRowKernel> {};
template <typename Body>
constexpr bool has_row_kernel = row_kernel_of<Body>::value;

// And a whole-plane form (NCHW outputs, CPU), for bodies whose rows are too short to pay for a
// call each:
//   static constexpr bool kPlaneKernel = true;
//   bool plane_ok() const;   // whether run_plane applies to this call's geometry and strides
//   int64_t run_plane(int64_t plane_offset, int64_t n, int64_t c, int64_t H, int64_t W) const;
// which writes the H x W plane (n, c) as operator() would and returns the same count. Switched
// off with the row forms. One exception, where the flow allows it: max_unpool2d's scatter plane
// form writes the op's final result for any in-range index (operator() plus the flow's fallback)
// and counts the in-range indices (max_unpool.h).
template <typename Body, typename = void>
struct plane_kernel_of : std::false_type {};
template <typename Body>
struct plane_kernel_of<Body, std::void_t<decltype(Body::kPlaneKernel)>> : std::bool_constant<Body::kPlaneKernel> {};
template <typename Body>
constexpr bool has_plane_kernel = plane_kernel_of<Body>::value;

// A body whose row() and col() are trivial (most return {0, 0}) or cost less than a table
// read says so:
//   static constexpr bool kNoAxisTables = true;
// CudaBackend then calls row(y) / col(x) inline for each element instead of tabulating them in
// a separate kernel first (which costs an allocation and a launch per call). The values, and so
// the results, are the same either way; CpuBackend tabulates them on the host regardless. A
// body with no such member gets the tables. (The trait can also be specialised outside a body.)
template <typename Body, typename = void>
struct no_axis_tables_of : std::false_type {};
template <typename Body>
struct no_axis_tables_of<Body, std::void_t<decltype(Body::kNoAxisTables)>> : std::bool_constant<Body::kNoAxisTables> {};
template <typename Body>
constexpr bool no_axis_tables = no_axis_tables_of<Body>::value;

// Whether a body returns a count to be summed (see the contract above).
template <typename Body>
constexpr bool counts = !std::is_void_v<
    decltype(std::declval<const Body&>()(0, 0, 0, 0, 0, std::declval<Axis>(), std::declval<Axis>()))>;

// Whether the CPU backend runs the row / plane forms and the CPU-only flows (the default), or the
// per-element bodies everywhere as CUDA does (fastseg.testing.strategy(cpu_row_kernels=False)).
// Defined in cpu_backend.cpp. Only CPU code calls it: shared flows reach it under
// `if constexpr (Backend::kIsCpu)`, which the CUDA translation units never instantiate.
bool cpu_row_kernels_enabled();

}  // namespace fastseg
