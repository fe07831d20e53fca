// SSM_CONV kernels. sx is time-fastest and out channel-fastest, so a tile of 16 channels x up to
// 64 tokens is transposed into a small channel-major buffer (4x4 blocks of 128-bit vectors, which
// every target has); the filters then run on full-width vectors and each token's 16 outputs go
// out as one 64-byte store. Both the reads and the writes walk memory in whole cache lines.
#include <algorithm>
#include <cmath>
#include <cstdint>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/conv_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "cpu/transpose-inl.h"

#include "cpu/kernels.h"
#include "cpu/scratch.h"

HWY_BEFORE_NAMESPACE();
namespace ssmkit {
namespace cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t CB = kConvTileChannels;
constexpr int64_t kTileTokens = 64;
using DF = hn::ScalableTag<float>;

// dst[j*CB + i] = src[i*stride + j] for i < rows, j < cols; rows [rows, CB) are zero so the
// vector code can run over the padding without producing NaN.
HWY_INLINE void TransposeToChannelMajor(const float* HWY_RESTRICT src, int64_t stride, int64_t rows,
                                        int64_t cols, float* HWY_RESTRICT dst) {
    Transpose(src, stride, rows, cols, dst, CB);
    for (int64_t i = rows; i < CB; ++i)
        for (int64_t j = 0; j < cols; ++j) dst[j * CB + i] = 0.0f;
}

// KW > 0: the filter width known at compile time (the common 2..5), so the tap loop unrolls.
template <int KW>
HWY_INLINE void ConvTokens(const float* HWY_RESTRICT xT, const float* HWY_RESTRICT cT,
                           const float* HWY_RESTRICT bT, int64_t K_rt, int64_t nt, int64_t nch,
                           float* HWY_RESTRICT out, int64_t out_row, bool stream) {
    const hn::ScalableTag<float> d;
    const int64_t L = static_cast<int64_t>(hn::Lanes(d));
    const int64_t K = KW > 0 ? KW : K_rt;
    const auto one = hn::Set(d, 1.0f);
    const auto exp_max = hn::Set(d, 88.0f);  // exp overflows float above ~88.7
    HWY_ALIGN float tmp[CB];
    for (int64_t t = 0; t < nt; ++t) {
        const float* xt = xT + t * CB;
        float* o = out + t * out_row;
        for (int64_t v = 0; v < CB; v += L) {
            auto acc = hn::Mul(hn::Load(d, cT + v), hn::Load(d, xt + v));
            for (int64_t k = 1; k < K; ++k)
                acc = hn::MulAdd(hn::Load(d, cT + k * CB + v), hn::Load(d, xt + k * CB + v), acc);
            if (bT) {
                acc = hn::Add(acc, hn::Load(d, bT + v));
                acc = hn::Div(acc, hn::Add(one, hn::Exp(d, hn::Min(hn::Neg(acc), exp_max))));
            }
            if (v + L <= nch) {
                if (stream) hn::Stream(acc, d, o + v);
                else hn::StoreU(acc, d, o + v);
            } else {
                if (v >= nch) break;
                hn::Store(acc, d, tmp);
                for (int64_t i = v; i < nch; ++i) o[i] = tmp[i - v];
                break;
            }
        }
    }
}

// One token, filter width 4 (decode): sx and c rows have the same layout, so out[i] is the sum of
// one 4-float group of sx*c. Multiply whole vectors, transpose 4x4 within each 128-bit block
// and add; a lane permutation then puts the channels back in order. No tile buffers.
HWY_INLINE void ConvDecode4(const conv_geom& g, int64_t ch0, int64_t ch1) {
    const DF d;
    const int64_t L = static_cast<int64_t>(hn::Lanes(d));
    (void)L;
    int64_t i = ch0;
#if HWY_TARGET != HWY_SCALAR
    if (L >= 4 && L % 4 == 0) {
        const hn::Repartition<uint64_t, DF> d64;
        const hn::RebindToSigned<DF> di;
        // After the in-block transposes lane 4*b + j holds channel j*(L/4) + b.
        HWY_ALIGN int32_t idx[hn::MaxLanes(DF())];
        for (int64_t c = 0; c < L; ++c) idx[c] = static_cast<int32_t>((c % (L / 4)) * 4 + c / (L / 4));
        const auto perm = hn::IndicesFromVec(d, hn::Load(di, idx));
        const auto one = hn::Set(d, 1.0f);
        const auto exp_max = hn::Set(d, 88.0f);
        for (; i + L <= ch1; i += L) {
            const float* x = g.sx + i * 4;
            const float* c = g.c + i * 4;
            const auto p0 = hn::Mul(hn::LoadU(d, x), hn::LoadU(d, c));
            const auto p1 = hn::Mul(hn::LoadU(d, x + L), hn::LoadU(d, c + L));
            const auto p2 = hn::Mul(hn::LoadU(d, x + 2 * L), hn::LoadU(d, c + 2 * L));
            const auto p3 = hn::Mul(hn::LoadU(d, x + 3 * L), hn::LoadU(d, c + 3 * L));
            const auto t0 = hn::BitCast(d64, hn::InterleaveLower(d, p0, p1));
            const auto t1 = hn::BitCast(d64, hn::InterleaveLower(d, p2, p3));
            const auto t2 = hn::BitCast(d64, hn::InterleaveUpper(d, p0, p1));
            const auto t3 = hn::BitCast(d64, hn::InterleaveUpper(d, p2, p3));
            const auto s01 = hn::Add(hn::BitCast(d, hn::InterleaveLower(d64, t0, t1)),
                                     hn::BitCast(d, hn::InterleaveUpper(d64, t0, t1)));
            const auto s23 = hn::Add(hn::BitCast(d, hn::InterleaveLower(d64, t2, t3)),
                                     hn::BitCast(d, hn::InterleaveUpper(d64, t2, t3)));
            auto acc = hn::TableLookupLanes(hn::Add(s01, s23), perm);
            if (g.bias) {
                acc = hn::Add(acc, hn::LoadU(d, g.bias + i));
                acc = hn::Div(acc, hn::Add(one, hn::Exp(d, hn::Min(hn::Neg(acc), exp_max))));
            }
            hn::StoreU(acc, d, g.out + i);
        }
    }
#endif
    for (; i < ch1; ++i) {
        float acc = 0.0f;
        for (int k = 0; k < 4; ++k) acc += g.sx[i * 4 + k] * g.c[i * 4 + k];
        if (g.bias) {
            acc += g.bias[i];
            acc = acc / (1.0f + std::exp(-acc));
        }
        g.out[i] = acc;
    }
}

void ConvRange(const conv_geom& g, int64_t ch0, int64_t ch1, int64_t t0, int64_t t1) {
    if (g.d_conv == 4 && g.row == 4) return ConvDecode4(g, ch0, ch1);
    const int64_t K = g.d_conv;
    const DF d;
    const int64_t L = static_cast<int64_t>(hn::Lanes(d));
    // Stream only whole aligned vectors: rows of out must keep the vector alignment.
    const bool stream = g.stream_out && (g.d_inner % L) == 0 &&
                        (reinterpret_cast<uintptr_t>(g.out) % (L * sizeof(float))) == 0;
    const int64_t tb_max = std::min<int64_t>(kTileTokens, t1 - t0);
    float* xT = thread_scratch(static_cast<size_t>((tb_max + K - 1 + K + 1) * CB));
    float* cT = xT + (tb_max + K - 1) * CB;
    float* bT = cT + K * CB;
    for (int64_t cb = ch0; cb < ch1; cb += CB) {
        const int64_t nch = std::min(CB, ch1 - cb);
        // Filters of these channels, channel-major; reused by every token block below.
        TransposeToChannelMajor(g.c + cb * K, K, nch, K, cT);
        if (g.bias) {
            for (int64_t i = 0; i < CB; ++i) bT[i] = i < nch ? g.bias[cb + i] : 0.0f;
        }
        for (int64_t tb = t0; tb < t1; tb += kTileTokens) {
            const int64_t nt = std::min(kTileTokens, t1 - tb);
            TransposeToChannelMajor(g.sx + cb * g.row + tb, g.row, nch, nt + K - 1, xT);
            float* out = g.out + tb * g.d_inner + cb;
            const float* b = g.bias ? bT : nullptr;
            switch (K) {
                case 2: ConvTokens<2>(xT, cT, b, K, nt, nch, out, g.d_inner, stream); break;
                case 3: ConvTokens<3>(xT, cT, b, K, nt, nch, out, g.d_inner, stream); break;
                case 4: ConvTokens<4>(xT, cT, b, K, nt, nch, out, g.d_inner, stream); break;
                case 5: ConvTokens<5>(xT, cT, b, K, nt, nch, out, g.d_inner, stream); break;
                default: ConvTokens<0>(xT, cT, b, K, nt, nch, out, g.d_inner, stream); break;
            }
        }
    }
    // Non-temporal stores are weakly ordered: publish them before the pool reports completion.
    if (stream) hwy::FlushStream();
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace cpu
}  // namespace ssmkit
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssmkit {
namespace cpu {

HWY_EXPORT(ConvRange);
HWY_EXPORT(TargetName);

void conv_range(const conv_geom& g, int64_t ch0, int64_t ch1, int64_t t0, int64_t t1) {
    HWY_DYNAMIC_DISPATCH(ConvRange)(g, ch0, ch1, t0, t1);
}

const char* simd_target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace cpu
}  // namespace ssmkit
#endif
