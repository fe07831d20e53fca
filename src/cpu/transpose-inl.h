// A float transpose shared by the CPU kernels (Highway "-inl" header: foreach_target.h includes
// it once per SIMD target, hence the toggled guard instead of #pragma once).
#if defined(SSMKIT_CPU_TRANSPOSE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SSMKIT_CPU_TRANSPOSE_INL_H_
#undef SSMKIT_CPU_TRANSPOSE_INL_H_
#else
#define SSMKIT_CPU_TRANSPOSE_INL_H_
#endif

#include <cstdint>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace ssmkit {
namespace cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// dst[j * dst_rs + i] = src[i * src_rs + j] for i < rows, j < cols: 4x4 blocks of 128-bit vectors
// (every target has them), scalar edges.
HWY_INLINE void Transpose(const float* HWY_RESTRICT src, int64_t src_rs, int64_t rows, int64_t cols,
                          float* HWY_RESTRICT dst, int64_t dst_rs) {
    int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
    const hn::Full128<float> d4;
    const hn::Repartition<uint64_t, decltype(d4)> d64;
    for (; i + 4 <= rows; i += 4) {
        const float* r0 = src + i * src_rs;
        const float* r1 = r0 + src_rs;
        const float* r2 = r1 + src_rs;
        const float* r3 = r2 + src_rs;
        int64_t j = 0;
        for (; j + 4 <= cols; j += 4) {
            const auto a0 = hn::LoadU(d4, r0 + j), a1 = hn::LoadU(d4, r1 + j);
            const auto a2 = hn::LoadU(d4, r2 + j), a3 = hn::LoadU(d4, r3 + j);
            const auto t0 = hn::BitCast(d64, hn::InterleaveLower(d4, a0, a1));
            const auto t1 = hn::BitCast(d64, hn::InterleaveLower(d4, a2, a3));
            const auto t2 = hn::BitCast(d64, hn::InterleaveUpper(d4, a0, a1));
            const auto t3 = hn::BitCast(d64, hn::InterleaveUpper(d4, a2, a3));
            float* o = dst + j * dst_rs + i;
            hn::StoreU(hn::BitCast(d4, hn::InterleaveLower(d64, t0, t1)), d4, o);
            hn::StoreU(hn::BitCast(d4, hn::InterleaveUpper(d64, t0, t1)), d4, o + dst_rs);
            hn::StoreU(hn::BitCast(d4, hn::InterleaveLower(d64, t2, t3)), d4, o + 2 * dst_rs);
            hn::StoreU(hn::BitCast(d4, hn::InterleaveUpper(d64, t2, t3)), d4, o + 3 * dst_rs);
        }
        for (; j < cols; ++j)
            for (int64_t k = 0; k < 4; ++k) dst[j * dst_rs + i + k] = src[(i + k) * src_rs + j];
    }
#endif
    for (; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) dst[j * dst_rs + i] = src[i * src_rs + j];
}

}  // namespace HWY_NAMESPACE
}  // namespace cpu
}  // namespace ssmkit
HWY_AFTER_NAMESPACE();

#endif  // SSMKIT_CPU_TRANSPOSE_INL_H_
