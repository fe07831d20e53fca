// SSM_SCAN kernels.
//
// direct: h = h*a + B*(x*dt), y = h.C, vectorized along the state row (n fastest in memory), so
// a decode step streams each row of the cache once: load, update, store into the output, reduce.
// Three vector ops per state element per token.
//
// chunked (Mamba-2 prefill), the SSD form: for a block of tokens with c_i the running log-decay
// of the block (sum of delta*A over tokens 0..i) and S the state before the block,
//     y_i = exp(c_i) C_i.S + sum_{j<=i} (C_i.B_j) exp(c_i - c_j) x_j delta_j
//     S'  = exp(c_last) S + sum_j B_j exp(c_last - c_j) x_j delta_j
// Three small GEMMs per head and block (C.S, M.X with M = G o decay ratios o delta, B^T.Xw),
// with G = C B^T computed once per block for all heads of a group. That is ~2 FMAs per state
// element per token (+ TB/2 per row for M.X) at GEMM efficiency: a 6x16 (AVX2; 5x16 tiles for
// the leftover rows) or 12x32 (AVX-512) register tile, 2 row loads and 6/12 broadcasts per
// 12/24 FMAs. M.X reads the x rows in place and the Y tiles store into the y rows; the decay
// ratios are running products of the per-token decays (no exp per pair). Decay ratios never
// exceed 1 for A <= 0, so nothing overflows; a growing state (A > 0) splits the block before
// the ratio could pass e^40.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/scan_kernels.cpp"
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


using DF = hn::ScalableTag<float>;

int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// delta[t] = softplus(dt[h, t, q]) for t < T, zero up to Tp.
HWY_INLINE void SoftplusDt(const scan_geom& g, int64_t q, int64_t h, int64_t Tp, float* HWY_RESTRICT delta) {
    const DF d;
    const int64_t L = static_cast<int64_t>(hn::Lanes(d));
    const float* dt = g.dt + h + g.H * g.T * q;
    for (int64_t t = 0; t < g.T; ++t) delta[t] = dt[t * g.H];
    for (int64_t t = g.T; t < Tp; ++t) delta[t] = 0.0f;
    const auto twenty = hn::Set(d, 20.0f);
    for (int64_t t = 0; t < Tp; t += L) {
        const auto v = hn::Load(d, delta + t);
        const auto sp = hn::Log1p(d, hn::Exp(d, hn::Min(v, twenty)));
        hn::Store(hn::IfThenElse(hn::Gt(v, twenty), v, sp), d, delta + t);
    }
}

// exp(x) for x <= 88, about 1 ulp (Cephes expf: round to n = x/ln2, two-step reduction, degree-5
// polynomial), ~16 vector ops against Highway Exp's ~35. Inputs below -87 give exp(-87) (1.6e-38)
// instead of a smaller or zero value: an absolute difference under 2e-38.
HWY_INLINE hn::Vec<DF> FastExp(DF d, hn::Vec<DF> x) {
    const hn::RebindToSigned<DF> di;
    x = hn::Min(hn::Max(x, hn::Set(d, -87.0f)), hn::Set(d, 88.0f));
    // 1.5 * 2^23 + 127: t's low mantissa bits hold n + 127 (the biased exponent of 2^n).
    const auto magic = hn::Set(d, 12582912.0f + 127.0f);
    const auto t = hn::MulAdd(x, hn::Set(d, 1.44269504088896341f), magic);
    const auto n = hn::Sub(t, magic);
    auto r = hn::NegMulAdd(n, hn::Set(d, 0.693359375f), x);
    r = hn::NegMulAdd(n, hn::Set(d, -2.12194440e-4f), r);
    auto p = hn::Set(d, 1.9875691500e-4f);
    p = hn::MulAdd(p, r, hn::Set(d, 1.3981999507e-3f));
    p = hn::MulAdd(p, r, hn::Set(d, 8.3334519073e-3f));
    p = hn::MulAdd(p, r, hn::Set(d, 4.1665795894e-2f));
    p = hn::MulAdd(p, r, hn::Set(d, 1.6666665459e-1f));
    p = hn::MulAdd(p, r, hn::Set(d, 5.0000001201e-1f));
    p = hn::Add(hn::MulAdd(p, hn::Mul(r, r), r), hn::Set(d, 1.0f));
    const auto scale = hn::BitCast(d, hn::ShiftLeft<23>(hn::BitCast(di, t)));
    return hn::Mul(p, scale);
}

// ---------------------------------------------------------------------------------------------
// direct

void ScanDirectRows(const scan_geom& g, int64_t q, int64_t h0, int64_t h1, int64_t p0, int64_t p1) {
    const DF d;
    const int64_t L = static_cast<int64_t>(hn::Lanes(d));
    const int64_t N = g.N, P = g.P, H = g.H, T = g.T, K = g.K;
    const int64_t Tp = RoundUp(T, L);
    const int64_t nhp = T == 1 ? RoundUp(h1 - h0, L) : 0;
    float* delta = thread_scratch(static_cast<size_t>(2 * Tp + nhp));
    float* decay = delta + Tp;
    const int32_t slot = g.ids[q];
    const auto exp_max = hn::Set(d, 88.0f);
    // One token (Mamba-1 decode runs here per channel): softplus of the task's dt values at once,
    // vectorized across heads/channels.
    float* delta1 = decay + Tp;
    if (T == 1) {
        const float* dt = g.dt + g.H * q;
        for (int64_t h = h0; h < h1; ++h) delta1[h - h0] = dt[h];
        for (int64_t i = h1 - h0; i < nhp; ++i) delta1[i] = 0.0f;
        const auto twenty = hn::Set(d, 20.0f);
        for (int64_t i = 0; i < nhp; i += L) {
            const auto v = hn::Load(d, delta1 + i);
            const auto sp = hn::Log1p(d, hn::Exp(d, hn::Min(v, twenty)));
            hn::Store(hn::IfThenElse(hn::Gt(v, twenty), v, sp), d, delta1 + i);
        }
    }

    for (int64_t h = h0; h < h1; ++h) {
        if (T == 1) {
            delta[0] = delta1[h - h0];
            for (int64_t t = 1; t < Tp; ++t) delta[t] = 0.0f;
        } else {
            SoftplusDt(g, q, h, Tp, delta);
        }
        if (!g.mamba1) {
            const auto A = hn::Set(d, g.A[h]);
            for (int64_t t = 0; t < Tp; t += L)
                hn::Store(hn::Exp(d, hn::Min(hn::Mul(hn::Load(d, delta + t), A), exp_max)), d, decay + t);
        }
        const float* Arow = g.A + N * h;  // Mamba-1: A[:, h]
        const int64_t grp = h / g.heads_per_group;
        const float* s_head = g.s + N * P * (h + H * slot);
        float* st_head = g.states + N * P * (h + H * q);
        const char* xh = g.x + q * g.x_nb3 + h * P * 4;
        const char* Bq = g.B + q * g.B_nb3 + grp * N * 4;
        const char* Cq = g.C + q * g.C_nb3 + grp * N * 4;
        float* yq = g.y + P * (h + H * T * q);

        for (int64_t p = p0; p < p1; ++p) {
            const float* src = s_head + N * p;
            float* row0 = st_head + N * p;  // kept block 0 doubles as the working state
            const bool stream = g.stream_states && T == 1 && !g.mamba1 &&
                                reinterpret_cast<uintptr_t>(row0) % (L * sizeof(float)) == 0;
            for (int64_t k = T; k < K; ++k)
                std::memcpy(st_head + k * g.state_elements + N * p, src, N * sizeof(float));
            for (int64_t t = 0; t < T; ++t) {
                const float* Bt = reinterpret_cast<const float*>(Bq + t * g.B_nb2);
                const float* Ct = reinterpret_cast<const float*>(Cq + t * g.C_nb2);
                const float xv = reinterpret_cast<const float*>(xh + t * g.x_nb2)[p];
                const float u = xv * delta[t];
                const auto uv = hn::Set(d, u);
                const auto dv = hn::Set(d, delta[t]);
                const auto av2 = hn::Set(d, decay[t]);
                auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
                int64_t n = 0;
                if (g.mamba1) {
                    for (; n + L <= N; n += L) {
                        const auto av = FastExp(d, hn::Mul(dv, hn::LoadU(d, Arow + n)));
                        const auto hv = hn::MulAdd(hn::LoadU(d, src + n), av, hn::Mul(hn::LoadU(d, Bt + n), uv));
                        hn::StoreU(hv, d, row0 + n);
                        acc0 = hn::MulAdd(hv, hn::LoadU(d, Ct + n), acc0);
                    }
                } else {
                    // Two accumulators: the FMA latency, not the throughput, would bound one chain.
                    if (stream) {
                        for (; n + 2 * L <= N; n += 2 * L) {
                            const auto h0v = hn::MulAdd(hn::LoadU(d, src + n), av2, hn::Mul(hn::LoadU(d, Bt + n), uv));
                            const auto h1v = hn::MulAdd(hn::LoadU(d, src + n + L), av2,
                                                        hn::Mul(hn::LoadU(d, Bt + n + L), uv));
                            hn::Stream(h0v, d, row0 + n);
                            hn::Stream(h1v, d, row0 + n + L);
                            acc0 = hn::MulAdd(h0v, hn::LoadU(d, Ct + n), acc0);
                            acc1 = hn::MulAdd(h1v, hn::LoadU(d, Ct + n + L), acc1);
                        }
                    }
                    for (; n + 2 * L <= N; n += 2 * L) {
                        const auto h0v = hn::MulAdd(hn::LoadU(d, src + n), av2, hn::Mul(hn::LoadU(d, Bt + n), uv));
                        const auto h1v = hn::MulAdd(hn::LoadU(d, src + n + L), av2,
                                                    hn::Mul(hn::LoadU(d, Bt + n + L), uv));
                        hn::StoreU(h0v, d, row0 + n);
                        hn::StoreU(h1v, d, row0 + n + L);
                        acc0 = hn::MulAdd(h0v, hn::LoadU(d, Ct + n), acc0);
                        acc1 = hn::MulAdd(h1v, hn::LoadU(d, Ct + n + L), acc1);
                    }
                    for (; n + L <= N; n += L) {
                        const auto hv = hn::MulAdd(hn::LoadU(d, src + n), av2, hn::Mul(hn::LoadU(d, Bt + n), uv));
                        hn::StoreU(hv, d, row0 + n);
                        acc0 = hn::MulAdd(hv, hn::LoadU(d, Ct + n), acc0);
                    }
                }
                float y = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
                for (; n < N; ++n) {
                    const float a = g.mamba1 ? std::exp(std::min(delta[t] * Arow[n], 88.0f)) : decay[t];
                    const float hn_ = src[n] * a + Bt[n] * u;
                    row0[n] = hn_;
                    y += hn_ * Ct[n];
                }
                yq[p + P * H * t] = y;
                const int64_t k = T - 1 - t;
                if (k > 0 && k < K) std::memcpy(st_head + k * g.state_elements + N * p, row0, N * sizeof(float));
                src = row0;
            }
        }
    }
    // Non-temporal stores are weakly ordered: publish them before the pool reports completion.
    if (g.stream_states) hwy::FlushStream();
}

// Mamba-1 prefill (head_dim 1: one channel per "head", per-state decays exp(delta * A[n, h])):
// vectorized along channels, L channels per vector, so a token costs no horizontal sums. A chunk
// of up to kM1Vecs vectors of channels of one group runs token by token; its states and A
// ([vec][n][lane], 2*N*L*kM1Vecs floats: 8 KB for N = 16 on AVX2) stay in L1, and per token it
// reads one contiguous stretch of x and dt and writes one of y. The exp per (channel, state,
// token) dominates: FastExp below, ~17 FMA-port ops per vector update in all.
constexpr int64_t kM1Vecs = 8;
constexpr int64_t kM1MinTokens = 2;  // decode (T = 1) keeps the per-channel path

void ScanMamba1Chunk(const scan_geom& g, int64_t q, int64_t hs, int64_t nv) {
    const DF d;
    const int64_t L = static_cast<int64_t>(hn::Lanes(d));
    const int64_t N = g.N, H = g.H, T = g.T, K = g.K;
    const int64_t nch = nv * L;
    float* st = thread_scratch(static_cast<size_t>(2 * nv * N * L));
    float* At = st + nv * N * L;
    const int32_t slot = g.ids[q];
    const float* src = g.s + N * (hs + H * slot);  // P = 1: the chunk's states are contiguous
    float* dst0 = g.states + N * (hs + H * q);
    for (int64_t k = T; k < K; ++k) std::memcpy(dst0 + k * g.state_elements, src, N * nch * sizeof(float));
    for (int64_t v = 0; v < nv; ++v)
        for (int64_t n = 0; n < N; ++n)
            for (int64_t l = 0; l < L; ++l) {
                const int64_t h = hs + v * L + l;
                st[(v * N + n) * L + l] = src[N * (h - hs) + n];
                At[(v * N + n) * L + l] = g.A[N * h + n];
            }
    auto keep = [&](int64_t k) {
        float* dst = dst0 + k * g.state_elements;
        for (int64_t v = 0; v < nv; ++v)
            for (int64_t l = 0; l < L; ++l)
                for (int64_t n = 0; n < N; ++n) dst[N * (v * L + l) + n] = st[(v * N + n) * L + l];
    };
    const int64_t grp = hs / g.heads_per_group;
    const char* Bq = g.B + q * g.B_nb3 + grp * N * 4;
    const char* Cq = g.C + q * g.C_nb3 + grp * N * 4;
    const char* xq = g.x + q * g.x_nb3 + hs * 4;
    const float* dtq = g.dt + hs + H * T * q;
    float* yq = g.y + hs + H * T * q;
    const auto twenty = hn::Set(d, 20.0f);
    for (int64_t t = 0; t < T; ++t) {
        const float* Bt = reinterpret_cast<const float*>(Bq + t * g.B_nb2);
        const float* Ct = reinterpret_cast<const float*>(Cq + t * g.C_nb2);
        const float* xr = reinterpret_cast<const float*>(xq + t * g.x_nb2);
        const float* dr = dtq + H * t;
        float* yr = yq + H * t;
        for (int64_t v = 0; v < nv; ++v) {
            const auto dv = hn::LoadU(d, dr + v * L);
            const auto delta = hn::IfThenElse(hn::Gt(dv, twenty), dv,
                                              hn::Log1p(d, hn::Exp(d, hn::Min(dv, twenty))));
            const auto u = hn::Mul(hn::LoadU(d, xr + v * L), delta);
            float* sv = st + v * N * L;
            const float* av = At + v * N * L;
            auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
            int64_t n = 0;
            for (; n + 2 <= N; n += 2) {
                const auto a0 = FastExp(d, hn::Mul(delta, hn::Load(d, av + n * L)));
                const auto a1 = FastExp(d, hn::Mul(delta, hn::Load(d, av + (n + 1) * L)));
                const auto h0 = hn::MulAdd(hn::Load(d, sv + n * L), a0, hn::Mul(hn::Set(d, Bt[n]), u));
                const auto h1 = hn::MulAdd(hn::Load(d, sv + (n + 1) * L), a1, hn::Mul(hn::Set(d, Bt[n + 1]), u));
                hn::Store(h0, d, sv + n * L);
                hn::Store(h1, d, sv + (n + 1) * L);
                acc0 = hn::MulAdd(h0, hn::Set(d, Ct[n]), acc0);
                acc1 = hn::MulAdd(h1, hn::Set(d, Ct[n + 1]), acc1);
            }
            for (; n < N; ++n) {
                const auto a0 = FastExp(d, hn::Mul(delta, hn::Load(d, av + n * L)));
                const auto h0 = hn::MulAdd(hn::Load(d, sv + n * L), a0, hn::Mul(hn::Set(d, Bt[n]), u));
                hn::Store(h0, d, sv + n * L);
                acc0 = hn::MulAdd(h0, hn::Set(d, Ct[n]), acc0);
            }
            hn::StoreU(hn::Add(acc0, acc1), d, yr + v * L);
        }
        const int64_t k = T - 1 - t;
        if (k > 0 && k < K) keep(k);
    }
    keep(0);
}

// Mamba-2 decode (T = 1): h = h*a + B*(x*delta), y = h.C, one state row at a time (the rows of a
// head are one contiguous stretch, which the hardware prefetcher streams best: interleaving four
// rows to share the B and C loads ran as fast with hot caches and 1.5x slower from DRAM).
// Scalars per head (softplus, decay) are computed once, without the vector set-up of the
// general path. DecodeRow: one row, two accumulators (the FMA latency would bound one chain).
template <bool kStream>
HWY_INLINE float DecodeRow(const float* HWY_RESTRICT src, float* HWY_RESTRICT dst, int64_t N, int64_t Nv,
                           const float* HWY_RESTRICT Bt, const float* HWY_RESTRICT Ct, float a, float u) {
    const DF d;
    constexpr int64_t L = static_cast<int64_t>(hn::MaxLanes(DF()));
    const auto av = hn::Set(d, a);
    const auto uv = hn::Set(d, u);
    auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
    int64_t n = 0;
    for (; n + 2 * L <= Nv; n += 2 * L) {
        const auto h0 = hn::MulAdd(hn::LoadU(d, src + n), av, hn::Mul(hn::LoadU(d, Bt + n), uv));
        const auto h1 = hn::MulAdd(hn::LoadU(d, src + n + L), av, hn::Mul(hn::LoadU(d, Bt + n + L), uv));
        if (kStream) {
            hn::Stream(h0, d, dst + n);
            hn::Stream(h1, d, dst + n + L);
        } else {
            hn::StoreU(h0, d, dst + n);
            hn::StoreU(h1, d, dst + n + L);
        }
        acc0 = hn::MulAdd(h0, hn::LoadU(d, Ct + n), acc0);
        acc1 = hn::MulAdd(h1, hn::LoadU(d, Ct + n + L), acc1);
    }
    for (; n < Nv; n += L) {
        const auto h0 = hn::MulAdd(hn::LoadU(d, src + n), av, hn::Mul(hn::LoadU(d, Bt + n), uv));
        if (kStream) hn::Stream(h0, d, dst + n);
        else hn::StoreU(h0, d, dst + n);
        acc0 = hn::MulAdd(h0, hn::LoadU(d, Ct + n), acc0);
    }
    float y = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
    for (; n < N; ++n) {
        const float hv = src[n] * a + Bt[n] * u;
        dst[n] = hv;
        y += hv * Ct[n];
    }
    return y;
}

void ScanDecodeRows(const scan_geom& g, int64_t q, int64_t h0, int64_t h1, int64_t p0, int64_t p1) {
    const DF d;
    const int64_t L = static_cast<int64_t>(hn::Lanes(d));
    const int64_t N = g.N, P = g.P, H = g.H, K = g.K;
    const int64_t Nv = N / L * L;
    const int32_t slot = g.ids[q];
    const float* Bt = reinterpret_cast<const float*>(g.B + q * g.B_nb3);
    const float* Ct = reinterpret_cast<const float*>(g.C + q * g.C_nb3);
    const float* xq = reinterpret_cast<const float*>(g.x + q * g.x_nb3);
    const float* dtq = g.dt + H * q;
    float* yq = g.y + P * H * q;
    for (int64_t h = h0; h < h1; ++h) {
        const int64_t grp = h / g.heads_per_group;
        const float* Bg = Bt + grp * N;
        const float* Cg = Ct + grp * N;
        const float dtv = dtq[h];
        const float delta = dtv > 20.0f ? dtv : std::log1p(std::exp(dtv));
        const float a = std::exp(std::min(delta * g.A[h], 88.0f));
        const float* s_head = g.s + N * P * (h + H * slot);
        float* st_head = g.states + N * P * (h + H * q);
        const float* xr = xq + h * P;
        float* yr = yq + h * P;
        for (int64_t k = 1; k < K; ++k)
            std::memcpy(st_head + k * g.state_elements + N * p0, s_head + N * p0, N * (p1 - p0) * sizeof(float));
        const bool stream = g.stream_states && N % L == 0 &&
                            reinterpret_cast<uintptr_t>(st_head + N * p0) % (L * sizeof(float)) == 0;
        for (int64_t p = p0; p < p1; ++p) {
            const float u = xr[p] * delta;
            yr[p] = stream ? DecodeRow<true>(s_head + N * p, st_head + N * p, N, Nv, Bg, Cg, a, u)
                           : DecodeRow<false>(s_head + N * p, st_head + N * p, N, Nv, Bg, Cg, a, u);
        }
    }
    if (g.stream_states) hwy::FlushStream();
}

void ScanDirect(const scan_geom& g, int64_t q, int64_t h0, int64_t h1, int64_t p0, int64_t p1) {
    const int64_t L = static_cast<int64_t>(hn::Lanes(DF()));
    if (!g.mamba1 && g.T == 1) {
        ScanDecodeRows(g, q, h0, h1, p0, p1);
        return;
    }
    if (!g.mamba1 || g.P != 1 || g.T < kM1MinTokens || p0 != 0 || p1 != 1) {
        ScanDirectRows(g, q, h0, h1, p0, p1);
        return;
    }
    // Chunks of whole vectors inside one group; leftover channels take the per-channel path.
    for (int64_t hs = h0; hs < h1;) {
        const int64_t gend = (hs / g.heads_per_group + 1) * g.heads_per_group;
        const int64_t he = std::min({h1, gend, hs + kM1Vecs * L});
        const int64_t nv = (he - hs) / L;
        if (nv > 0) ScanMamba1Chunk(g, q, hs, nv);
        if (hs + nv * L < he) ScanDirectRows(g, q, hs + nv * L, he, 0, 1);
        hs = he;
    }
}

// ---------------------------------------------------------------------------------------------
// chunked (SSD form)

// out[r][0:CW] (+)= sum_k A(r, k) * Bm[k][0:CW] for MR rows, CW = 2 vectors: the register
// tile of a small GEMM (MR*2 accumulators, 2 row loads and MR broadcasts per k).
// A(r, k) = *(A + r*a_rs + k*a_ks) in bytes, so rows of B or C can be read in place.
template <int MR>
HWY_INLINE void MicroAcc(hn::Vec<DF> (&acc)[MR][2], int64_t kk, const char* HWY_RESTRICT A, int64_t a_rs,
                         int64_t a_ks, const float* HWY_RESTRICT Bm, int64_t b_rs) {
    const DF d;
    constexpr int64_t L = static_cast<int64_t>(hn::MaxLanes(DF()));
    const char* pr[MR];
    for (int r = 0; r < MR; ++r) pr[r] = A + r * a_rs;
    int64_t off = 0;
    for (int64_t k = 0; k < kk; ++k, off += a_ks, Bm += b_rs) {
        const auto b0 = hn::LoadU(d, Bm);
        const auto b1 = hn::LoadU(d, Bm + L);
        for (int r = 0; r < MR; ++r) {
            const auto a = hn::Set(d, *reinterpret_cast<const float*>(pr[r] + off));
            acc[r][0] = hn::MulAdd(a, b0, acc[r][0]);
            acc[r][1] = hn::MulAdd(a, b1, acc[r][1]);
        }
    }
}

// Cache lines to prefetch, issued a few at a time from the GEMM tiles: a burst of a hundred
// prefetches would overrun the core's outstanding-miss slots and most of it would be lost.
struct PrefetchQueue {
    const char** line;
    int64_t next, n_read, n;  // [0, n_read) for reading, [n_read, n) for writing
    HWY_INLINE void Issue(int k) {
        for (; k > 0 && next < n; --k, ++next) {
            if (next < n_read) __builtin_prefetch(line[next], 0, 2);
            else __builtin_prefetch(line[next], 1, 2);
        }
    }
};

// The per-head, per-block quantities for the SSD step.
struct SsdBlock {
    int64_t nb;            // tokens in the block
    int64_t ps;            // padded rows (columns of every matrix below)
    const float* ecum;     // [nb] exp(c_i), c_i = sum of log-decays of tokens 0..i of the block
    const float* Mt;       // [nb][TBs] G[i][j] * delta_j * exp(c_i - c_j), zero for j > i
    int64_t m_rs;          // floats per row of Mt
    const float* X;        // [nb][x_rs] x (delta is folded into Mt), in place or a padded copy
    int64_t x_rs;          // floats per row of X
    const float* Xw;       // [nb][ps] x * delta * exp(c_last - c_j)
    const char* C;         // C row of the block's first token (+group)
    size_t C_nb2;
    const char* B;
    size_t B_nb2;
    float elast;           // exp(c_last)
    float* S;              // [N][ps] state, updated in place
    float* Y;              // [nb][y_rs] output: the y rows themselves, or a scratch block
    int64_t y_rs;          // floats per row of Y
    PrefetchQueue* pf;     // lines of the next head-block
};

// Y[i] = exp(c_i) * C_i . S  +  sum_{j<=i} M[i][j] X[j]   for rows i0 .. i0+MR
template <int MR>
HWY_INLINE void SsdYTile(const SsdBlock& b, int64_t N, int64_t i0, int64_t col) {
    if (b.pf) b.pf->Issue(1);
    const DF d;
    constexpr int64_t L = static_cast<int64_t>(hn::MaxLanes(DF()));
    hn::Vec<DF> acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = hn::Zero(d);
    MicroAcc<MR>(acc, N, b.C + i0 * b.C_nb2, static_cast<int64_t>(b.C_nb2), 4, b.S + col, b.ps);
    for (int r = 0; r < MR; ++r) {
        const auto e = hn::Set(d, b.ecum[i0 + r]);
        acc[r][0] = hn::Mul(acc[r][0], e);
        acc[r][1] = hn::Mul(acc[r][1], e);
    }
    // Causal: row i0+r needs j <= i0+r; M is zero above the diagonal, so run to i0+MR.
    MicroAcc<MR>(acc, i0 + MR, reinterpret_cast<const char*>(b.Mt + i0 * b.m_rs), b.m_rs * 4, 4, b.X + col, b.x_rs);
    for (int r = 0; r < MR; ++r) {
        hn::StoreU(acc[r][0], d, b.Y + (i0 + r) * b.y_rs + col);
        hn::StoreU(acc[r][1], d, b.Y + (i0 + r) * b.y_rs + col + L);
    }
}

// S[n] = exp(c_last) S[n] + sum_j B_j[n] Xw[j]   for states n0 .. n0+MR
template <int MR>
HWY_INLINE void SsdSTile(const SsdBlock& b, int64_t n0, int64_t col) {
    if (b.pf) b.pf->Issue(2);
    const DF d;
    constexpr int64_t L = static_cast<int64_t>(hn::MaxLanes(DF()));
    const auto e = hn::Set(d, b.elast);
    hn::Vec<DF> acc[MR][2];
    for (int r = 0; r < MR; ++r) {
        acc[r][0] = hn::Mul(hn::Load(d, b.S + (n0 + r) * b.ps + col), e);
        acc[r][1] = hn::Mul(hn::Load(d, b.S + (n0 + r) * b.ps + col + L), e);
    }
    MicroAcc<MR>(acc, b.nb, b.B + n0 * 4, 4, static_cast<int64_t>(b.B_nb2), b.Xw + col, b.ps);
    for (int r = 0; r < MR; ++r) {
        hn::Store(acc[r][0], d, b.S + (n0 + r) * b.ps + col);
        hn::Store(acc[r][1], d, b.S + (n0 + r) * b.ps + col + L);
    }
}

constexpr int kMR = HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3 ? 6 : 12;  // rows per tile: fit the registers

template <template <int> class F, typename... Args>
HWY_INLINE void ByRows(int64_t rows, Args&&... args) {
    // Full tiles of kMR rows, then 4-row tiles and a remainder. Small tiles have too few
    // accumulator chains to hide the FMA latency (a 2-row tile runs at about half speed).
    int64_t r = 0;
    if (kMR == 6) {
        // 6a + 5b rows (5-row tiles keep 10 accumulator chains, enough to hide the FMA latency):
        // 32 = 2*6 + 4*5, 128 = 18*6 + 4*5.
        const int64_t fives = (6 - rows % 6) % 6;
        if (rows >= 5 * fives) {
            for (; r + 5 * fives < rows; r += 6) F<6>::run(r, args...);
            for (; r < rows; r += 5) F<5>::run(r, args...);
            return;
        }
    }
    int64_t full = rows / kMR, rem = rows % kMR;
    for (int64_t i = 0; i < full; ++i, r += kMR) F<kMR>::run(r, args...);
    for (; rem >= 4; rem -= 4, r += 4) F<4>::run(r, args...);
    switch (rem) {
        case 0: break;
        case 1: F<1>::run(r, args...); break;
        case 2: F<2>::run(r, args...); break;
        default: F<3>::run(r, args...); break;
    }
}
template <int MR> struct YRows {
    static void run(int64_t r, const SsdBlock& b, int64_t N, int64_t col) { SsdYTile<MR>(b, N, r, col); }
};
template <int MR> struct SRows {
    static void run(int64_t r, const SsdBlock& b, int64_t col) { SsdSTile<MR>(b, r, col); }
};
template <int MR> struct GRows {
    static void run(int64_t r, const char* C, size_t C_nb2, int64_t N, const float* Bt, int64_t ld, float* G,
                    int64_t col) {
        const DF d;
        constexpr int64_t L = static_cast<int64_t>(hn::MaxLanes(DF()));
        hn::Vec<DF> acc[MR][2];
        for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = hn::Zero(d);
        MicroAcc<MR>(acc, N, C + r * C_nb2, static_cast<int64_t>(C_nb2), 4, Bt + col, ld);
        for (int i = 0; i < MR; ++i) {
            hn::StoreU(acc[i][0], d, G + (r + i) * ld + col);
            hn::StoreU(acc[i][1], d, G + (r + i) * ld + col + L);
        }
    }
};


int64_t ColTile() { return 2 * static_cast<int64_t>(hn::Lanes(DF())); }

// G[i][j] = C_{t0+i} . B_{t0+j} for the block's tokens: shared by every head of the group.
void SsdGram(const scan_geom& g, int64_t q, int64_t grp, int64_t t0, int64_t nb, float* G) {
    const int64_t CW = ColTile(), N = g.N;
    const int64_t ld = RoundUp(kSsdBlock, CW);
    float* Bt = thread_scratch(static_cast<size_t>(N * ld));
    const char* B = g.B + q * g.B_nb3 + grp * N * 4 + t0 * g.B_nb2;
    const char* C = g.C + q * g.C_nb3 + grp * N * 4 + t0 * g.C_nb2;
    const int64_t nbp = RoundUp(nb, CW);
    for (int64_t j = 0; j < nbp; ++j) {
        const float* row = reinterpret_cast<const float*>(B + j * g.B_nb2);
        for (int64_t n = 0; n < N; ++n) Bt[n * ld + j] = j < nb ? row[n] : 0.0f;
    }
    for (int64_t col = 0; col < nbp; col += CW) ByRows<GRows>(nb, C, g.C_nb2, N, Bt, ld, G, col);
}

void ScanChunked(const scan_geom& g, int64_t q, int64_t h0, int64_t h1, int64_t p0, int64_t p1,
                 const float* gram) {
    const DF d;
    const int64_t L = static_cast<int64_t>(hn::Lanes(d));
    const int64_t CW = ColTile();
    const int64_t N = g.N, P = g.P, H = g.H, T = g.T, K = g.K;
    const int64_t Tp = RoundUp(T, L);
    const int64_t TB = kSsdBlock, ld = RoundUp(TB, CW);
    const int64_t rows = p1 - p0, ps = RoundUp(rows, CW);
    const int64_t nh = h1 - h0;
    // The last K-1 tokens go one at a time so the states after each can be kept.
    const int64_t tail = std::min<int64_t>(K - 1, T), Tm = T - tail;
    const int64_t nblk = (Tm + TB - 1) / TB;
    float* delta_all = thread_scratch(static_cast<size_t>(nh * (2 * Tp + N * ps) + 5 * ld + 3 * TB * ps + TB * ld));
    float* la_all = delta_all + nh * Tp;
    float* S_all = la_all + nh * Tp;
    float* ecum = S_all + nh * N * ps;
    float* wexp = ecum + ld;
    float* cum = wexp + ld;
    float* X = cum + ld;
    float* Xw = X + TB * ps;
    float* Y = Xw + TB * ps;
    float* Mt = Y + TB * ps;
    float* aexp = Mt + TB * ld;  // per-token decays of a sub-block
    float* Erow = aexp + ld;     // one row of the decay-ratio matrix
    std::vector<const char*> pf_lines(static_cast<size_t>(2 * TB * (RoundUp(rows * 4, 64) / 64 + 1)));
    PrefetchQueue pfq{pf_lines.data(), 0, 0, 0};
    const int32_t slot = g.ids[q];
    const char* xq = g.x + q * g.x_nb3;
    float* yq0 = g.y + P * H * T * q;

    for (int64_t h = h0; h < h1; ++h) {
        float* delta = delta_all + (h - h0) * Tp;
        float* la = la_all + (h - h0) * Tp;
        float* S = S_all + (h - h0) * N * ps;
        SoftplusDt(g, q, h, Tp, delta);
        const float Ah = g.A[h];
        for (int64_t t = 0; t < Tp; ++t) la[t] = delta[t] * Ah;
        const float* s_head = g.s + N * P * (h + H * slot);
        float* st_head = g.states + N * P * (h + H * q);
        // State of the task's rows, [n][row], padding zero.
        for (int64_t n = 0; n < N; ++n)
            for (int64_t j = rows; j < ps; ++j) S[n * ps + j] = 0.0f;
        Transpose(s_head + N * p0, N, rows, N, S, ps);
        for (int64_t k = T; k < K; ++k)
            std::memcpy(st_head + k * g.state_elements + N * p0, s_head + N * p0, N * rows * sizeof(float));
    }

    // Token blocks outside, heads inside: the block's G is reused by every head, and the x and
    // y rows of the task's heads for a token are one contiguous stretch.
    for (int64_t blk = 0; blk < nblk; ++blk) {
        const int64_t t0 = blk * TB, nb = std::min(TB, Tm - t0);
        for (int64_t h = h0; h < h1; ++h) {
            const float* delta = delta_all + (h - h0) * Tp;
            const float* la = la_all + (h - h0) * Tp;
            float* S = S_all + (h - h0) * N * ps;
            const int64_t grp = h / g.heads_per_group;
            const char* xh = xq + (h * P + p0) * 4;
            float* yq = yq0 + P * h + p0;
            const char* Bq = g.B + q * g.B_nb3 + grp * N * 4;
            const char* Cq = g.C + q * g.C_nb3 + grp * N * 4;
            const float* G = gram + ((q * (H / g.heads_per_group) + grp) * nblk + blk) * TB * ld;
            // Rows a token apart (P*H floats) defeat the hardware prefetcher: queue the lines of
            // the x rows (and y rows unless y is streamed) that the next head-block uses; the
            // tiles of this head-block issue them a few at a time, so they arrive about one
            // head-block (tens of microseconds) ahead of use.
            pfq.next = pfq.n = pfq.n_read = 0;
            {
                const bool last_head = h + 1 == h1;
                const int64_t tn = last_head ? t0 + TB : t0, nn = std::min(TB, Tm - tn);
                const char* xn = last_head ? xq + (h0 * P + p0) * 4 : xh + P * 4;
                const char* yn = reinterpret_cast<const char*>(last_head ? yq0 + P * h0 + p0 : yq + P);
                auto add_lines = [&](const char* p) {
                    const uintptr_t a0 = reinterpret_cast<uintptr_t>(p), a1 = a0 + rows * 4;
                    for (uintptr_t l = a0 & ~uintptr_t(63); l < a1; l += 64) pf_lines[pfq.n++] = p + (l - a0);
                };
                for (int64_t i = 0; i < nn; ++i) add_lines(xn + (tn + i) * g.x_nb2);
                pfq.n_read = pfq.n;
                for (int64_t i = 0; i < nn; ++i) add_lines(yn + (tn + i) * P * H * 4);
            }
            // Split where the running log-decay would pass +40 (only a growing state, A > 0, can):
            // exp(c_i - c_j) must stay finite. Decaying states never split.
            for (int64_t a = 0; a < nb;) {
                double c = 0.0;
                int64_t e = a;
                for (; e < nb; ++e) {
                    const double c2 = c + la[t0 + e];
                    if (e > a && c2 > 40.0) break;
                    c = c2;
                    cum[e - a] = static_cast<float>(c);
                }
                const int64_t n_sub = e - a, ts = t0 + a;
                const float clast = cum[n_sub - 1];
                for (int64_t i = n_sub; i < RoundUp(n_sub, L); ++i) cum[i] = clast;
                const auto vlast = hn::Set(d, clast);
                for (int64_t i = 0; i < n_sub; i += L) {
                    const auto c = hn::Load(d, cum + i);
                    hn::Store(hn::Exp(d, c), d, ecum + i);
                    hn::Store(hn::Exp(d, hn::Sub(vlast, c)), d, wexp + i);
                }
                // Xw = x * delta * exp(c_last - c_j), the operand of the state update. The M.X
                // product reads the x rows in place (delta is folded into M) when the task's
                // rows fill whole column tiles; otherwise X is a zero-padded copy of x.
                const bool direct_x = rows == ps && g.x_nb2 % sizeof(float) == 0;
                for (int64_t i = 0; i < n_sub; ++i) {
                    const float* xr = reinterpret_cast<const float*>(xh + (ts + i) * g.x_nb2);
                    float* Wi = Xw + i * ps;
                    if (direct_x) {
                        const auto w = hn::Set(d, delta[ts + i] * wexp[i]);
                        for (int64_t j = 0; j < ps; j += L) hn::Store(hn::Mul(hn::LoadU(d, xr + j), w), d, Wi + j);
                    } else {
                        const float w = delta[ts + i] * wexp[i];
                        float* Xi = X + i * ps;
                        for (int64_t j = 0; j < rows; ++j) {
                            Xi[j] = xr[j];
                            Wi[j] = xr[j] * w;
                        }
                        for (int64_t j = rows; j < ps; ++j) Xi[j] = Wi[j] = 0.0f;
                    }
                }
                // M[i][j] = G[i][j] * delta_j * exp(c_i - c_j), lower triangle; zero above it up
                // to the padded width the row tiles read. exp(c_i - c_j) is the product of the
                // decays of tokens j+1..i, kept as a running row E (E_i = E_{i-1} * a_i, E_i[i] = 1):
                // one multiply per element instead of an exp; ratios under 1e-30 become zero
                // (no denormals in the GEMMs).
                const int64_t mw = std::min(ld, RoundUp(n_sub, L));
                for (int64_t i = 0; i < n_sub; i += L)
                    hn::Store(hn::Exp(d, hn::Min(hn::LoadU(d, la + ts + i), hn::Set(d, 88.0f))), d, aexp + i);
                for (int64_t j = 0; j < mw; j += L) hn::Store(hn::Zero(d), d, Erow + j);
                const auto tiny = hn::Set(d, 1e-30f);
                for (int64_t i = 0; i < n_sub; ++i) {
                    const float* Gi = G + (a + i) * ld + a;
                    float* Mi = Mt + i * ld;
                    const auto ai = hn::Set(d, aexp[i]);
                    for (int64_t j = 0; j <= i; j += L) {
                        const auto e = hn::Mul(hn::Load(d, Erow + j), ai);
                        hn::Store(hn::IfThenZeroElse(hn::Lt(e, tiny), e), d, Erow + j);
                    }
                    Erow[i] = 1.0f;
                    for (int64_t j = 0; j <= i; j += L)
                        hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, Gi + j), hn::Load(d, Erow + j)), hn::LoadU(d, delta + ts + j)),
                                   d, Mi + j);
                    for (int64_t j = i + 1; j < mw; ++j) Mi[j] = 0.0f;
                }
                SsdBlock b;
                b.nb = n_sub;
                b.ps = ps;
                b.ecum = ecum;
                b.Mt = Mt;
                b.m_rs = ld;
                b.X = direct_x ? reinterpret_cast<const float*>(xh + ts * g.x_nb2) : X;
                b.x_rs = direct_x ? static_cast<int64_t>(g.x_nb2 / sizeof(float)) : ps;
                b.Xw = Xw;
                b.C = Cq + ts * g.C_nb2;
                b.C_nb2 = g.C_nb2;
                b.B = Bq + ts * g.B_nb2;
                b.B_nb2 = g.B_nb2;
                b.elast = std::exp(clast);
                b.S = S;
                // Whole column tiles: the Y tiles store straight into the y rows.
                const bool direct_y = rows == ps;
                b.Y = direct_y ? yq + P * H * ts : Y;
                b.y_rs = direct_y ? P * H : ps;
                b.pf = &pfq;
                // Per column tile: Y (reads the old state of these columns), then the state update
                // of the same columns, while that 16-column stripe of S is in L1.
                for (int64_t col = 0; col < ps; col += CW) {
                    ByRows<YRows>(n_sub, b, N, col);
                    ByRows<SRows>(N, b, col);
                }
                if (!direct_y) {
                    for (int64_t i = 0; i < n_sub; ++i) {
                        float* yr = yq + P * H * (ts + i);
                        const float* Yi = Y + i * ps;
                        for (int64_t j = 0; j < rows; ++j) yr[j] = Yi[j];
                    }
                }
                a = e;
            }
            pfq.Issue(static_cast<int>(pfq.n));  // whatever the tiles did not issue
        }
    }

    for (int64_t h = h0; h < h1; ++h) {
        const float* delta = delta_all + (h - h0) * Tp;
        const float* la = la_all + (h - h0) * Tp;
        float* S = S_all + (h - h0) * N * ps;
        const int64_t grp = h / g.heads_per_group;
        float* st_head = g.states + N * P * (h + H * q);
        const char* xh = xq + (h * P + p0) * 4;
        float* yq = yq0 + P * h + p0;
        const char* Bq = g.B + q * g.B_nb3 + grp * N * 4;
        const char* Cq = g.C + q * g.C_nb3 + grp * N * 4;
        // Kept state before the tail (block `tail`), then the tail tokens one by one.
        auto keep = [&](int64_t k) { Transpose(S, ps, N, rows, st_head + k * g.state_elements + N * p0, N); };
        if (Tm > 0) keep(tail);
        for (int64_t t = Tm; t < T; ++t) {
            const float a = std::exp(la[t]);
            const float dl = delta[t];
            const float* xr = reinterpret_cast<const float*>(xh + t * g.x_nb2);
            const float* Bt = reinterpret_cast<const float*>(Bq + t * g.B_nb2);
            const float* Ct = reinterpret_cast<const float*>(Cq + t * g.C_nb2);
            for (int64_t j = 0; j < rows; ++j) X[j] = xr[j] * dl;
            for (int64_t j = rows; j < ps; ++j) X[j] = 0.0f;
            for (int64_t j = 0; j < ps; ++j) Y[j] = 0.0f;
            const auto av = hn::Set(d, a);
            for (int64_t n = 0; n < N; ++n) {
                const auto bn = hn::Set(d, Bt[n]);
                const auto cn = hn::Set(d, Ct[n]);
                float* Sn = S + n * ps;
                for (int64_t j = 0; j < ps; j += L) {
                    const auto sv = hn::MulAdd(hn::Load(d, Sn + j), av, hn::Mul(bn, hn::Load(d, X + j)));
                    hn::Store(sv, d, Sn + j);
                    hn::Store(hn::MulAdd(sv, cn, hn::Load(d, Y + j)), d, Y + j);
                }
            }
            float* yr = yq + P * H * t;
            for (int64_t j = 0; j < rows; ++j) yr[j] = Y[j];
            keep(T - 1 - t);
        }
    }
}

int64_t ChunkedRows() { return ColTile(); }

}  // namespace HWY_NAMESPACE
}  // namespace cpu
}  // namespace ssmkit
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssmkit {
namespace cpu {

HWY_EXPORT(ScanDirect);
HWY_EXPORT(ScanChunked);
HWY_EXPORT(ChunkedRows);
HWY_EXPORT(SsdGram);

void scan_direct(const scan_geom& g, int64_t q, int64_t h0, int64_t h1, int64_t p0, int64_t p1) {
    HWY_DYNAMIC_DISPATCH(ScanDirect)(g, q, h0, h1, p0, p1);
}
void scan_chunked(const scan_geom& g, int64_t q, int64_t h0, int64_t h1, int64_t p0, int64_t p1,
                  const float* gram) {
    HWY_DYNAMIC_DISPATCH(ScanChunked)(g, q, h0, h1, p0, p1, gram);
}
void scan_gram(const scan_geom& g, int64_t q, int64_t grp, int64_t blk, float* gram) {
    const int64_t tail = std::min<int64_t>(g.K - 1, g.T), Tm = g.T - tail;
    const int64_t nblk = (Tm + kSsdBlock - 1) / kSsdBlock;
    const int64_t t0 = blk * kSsdBlock, nb = std::min(kSsdBlock, Tm - t0);
    float* G = gram + ((q * (g.H / g.heads_per_group) + grp) * nblk + blk) * scan_gram_block_floats();
    HWY_DYNAMIC_DISPATCH(SsdGram)(g, q, grp, t0, nb, G);
}
int64_t scan_gram_blocks(const scan_geom& g) {
    const int64_t tail = std::min<int64_t>(g.K - 1, g.T), Tm = g.T - tail;
    return (Tm + kSsdBlock - 1) / kSsdBlock;
}
int64_t scan_gram_block_floats() {
    const int64_t cw = scan_chunked_rows();
    return kSsdBlock * ((kSsdBlock + cw - 1) / cw * cw);
}
int64_t scan_chunked_rows() { return HWY_DYNAMIC_DISPATCH(ChunkedRows)(); }

}  // namespace cpu
}  // namespace ssmkit
#endif
