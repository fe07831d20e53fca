// Device helpers shared by the kernel files.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ssmkit::cuda {

// The spec's softplus, with its threshold: above 20 the log1p(exp(v)) correction is below float
// rounding and exp would overflow for large v.
__device__ __forceinline__ float softplus_f(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

// Fast exp and divide: their few-ulp error is far below the 1e-7 NMSE budget, and the accurate
// versions measurably lengthened the store phase of the conv tiles. For v < -87, __expf(-v) is
// inf and v * (1/inf) gives the right limit, -0.
__device__ __forceinline__ float silu_f(float v) { return __fdividef(v, 1.0f + __expf(-v)); }

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// cp.async copies global -> shared without a register round trip, so the next tile's loads are in
// flight while the current tile is computed.
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

}  // namespace ssmkit::cuda
