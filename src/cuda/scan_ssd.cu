// Chunked (SSD) Mamba-2 prefill scan on tensor cores. Design and measurements:
// docs/perf-ssd-notes.md.
//
// Two launches (the second with programmatic dependent launch, so its prologue overlaps the first):
//   ssd_prep  grid (chunk, sequence, part): B and C rounded to fp16 once, into padded tiles that
//             the main kernel copies with one bulk copy (they are shared by every head of a
//             group: converting them per head would multiply the main kernel's L2 traffic), and
//             softplus(dt) with the in-chunk cumulative sum of dt*A per head.
//   ssd_main  one block per (sequence, head, head_dim tile) that walks the chunks in order and
//             keeps the running state in registers, so the inter-chunk pass needs no workspace
//             round trip and no extra launch. Per chunk: phase 1, warps 0-9 build the ten
//             16x16 blocks of the causal, decay-masked C B^T (one each, into shared memory);
//             kept states whose token is in the chunk (K > 1 only, all warps); phase 2, warps
//             0-7 produce y (16 tokens x half the head_dim tile each: C S_in plus M x) while
//             warps 8-15 advance the state (S = decay S + B^T (decay-weighted x)). The walk is latency-bound, so each chunk's
//             work is cut into short dependent chains spread over 16 warps.
//
// For head_dim tiles of 32 and 64 the walk is pipelined instead (scan_ssd_pipe.cu: chunk c+1's
// state-independent work overlaps chunk c's y and state update, one barrier per chunk);
// SSMKIT_SSD_WALK=phased keeps the walk above for those too.
//
// Operands are fp16 with fp32 accumulation (m16n8k16 mma.sync): fp16 keeps 11 significant bits
// like tf32 but runs at twice the rate and allows ldmatrix; bf16 (8 bits) fails the 5e-7 bound.
#include "cuda/scan_ssd.h"
#include "cuda/ssd_device.cuh"

#include <cuda.h>            // CUtensorMap (types only; the encoder comes through the runtime)
#include <cuda_fp16.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace {

using namespace ssmkit::cuda::ssd;

// ---------------------------------------------------------------------------------------------
// ssd_prep: grid (chunk, sequence, part). Parts [0, bc_blocks) round B/C of the chunk to fp16,
// the rest compute cum/delta for 8 heads each (one warp per head, two tokens per lane). Each
// thread issues all its loads before the first use: these blocks are latency-bound, not
// bandwidth-bound.
template <int NS>
__global__ void __launch_bounds__(256) ssd_prep(const __grid_constant__ ssd_params p) {
    pdl_trigger();   // the main kernel may start its prologue (initial state) now
    const int c = blockIdx.x, q = blockIdx.y;
    const int t0 = c * kL;
    const int nbc = prep_bc_blocks(p.G, NS);
    if (int(blockIdx.z) < nbc) {
        const int quads = p.G * 2 * kL * (NS / 4);
        float4 v[kPrepBatch];
        const int base = blockIdx.z * 256 * kPrepBatch + threadIdx.x;
#pragma unroll
        for (int u = 0; u < kPrepBatch; ++u) {
            const int i = base + u * 256;
            v[u] = make_float4(0.f, 0.f, 0.f, 0.f);
            if (i >= quads) continue;
            const int n = (i % (NS / 4)) * 4;
            int r = i / (NS / 4);
            const int t = r % kL; r /= kL;
            const int which = r % 2, g = r / 2;
            const int tg = t0 + t;
            if (tg >= p.T) continue;
            const float* src = which ? p.C + g * p.c_g + (long long)tg * p.c_t + (long long)q * p.c_q
                                     : p.B + g * p.b_g + (long long)tg * p.b_t + (long long)q * p.b_q;
            if (p.bc_vec && n + 3 < p.N) {
                v[u] = __ldg(reinterpret_cast<const float4*>(src + n));
            } else {
                if (n < p.N) v[u].x = __ldg(src + n);
                if (n + 1 < p.N) v[u].y = __ldg(src + n + 1);
                if (n + 2 < p.N) v[u].z = __ldg(src + n + 2);
                if (n + 3 < p.N) v[u].w = __ldg(src + n + 3);
            }
        }
#pragma unroll
        for (int u = 0; u < kPrepBatch; ++u) {
            const int i = base + u * 256;
            if (i >= quads) continue;
            const int n = (i % (NS / 4)) * 4;
            int r = i / (NS / 4);
            const int t = r % kL; r /= kL;
            const int which = r % 2, g = r / 2;
            __half* dst = p.bc16 + (((size_t)q * p.G + g) * p.nch + c) * bc_tile_halves<NS>() +
                          (size_t)(which * kL + t) * bc_ld<NS>() + n;
            __half2 lo = __floats2half2_rn(v[u].x, v[u].y), hi = __floats2half2_rn(v[u].z, v[u].w);
            uint2 pk;
            pk.x = *reinterpret_cast<uint32_t*>(&lo);
            pk.y = *reinterpret_cast<uint32_t*>(&hi);
            *reinterpret_cast<uint2*>(dst) = pk;
        }
        return;
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h = (blockIdx.z - nbc) * kHeadsPerPrepBlock + warp;
    if (h >= p.H) return;
    const float A = __ldg(p.A + h * p.a_h);
    const int ta = t0 + 2 * lane, tb = ta + 1;
    const float* dtq = p.dt + h + (long long)p.H * (long long)p.T * q;
    const float va = ta < p.T ? __ldg(dtq + (long long)p.H * ta) : 0.f;
    const float vb = tb < p.T ? __ldg(dtq + (long long)p.H * tb) : 0.f;
    const float da = ta < p.T ? softplus_f(va) : 0.f;
    const float db = tb < p.T ? softplus_f(vb) : 0.f;
    const float aa = da * A, ab = db * A;
    float sum = aa + ab;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float v = __shfl_up_sync(0xffffffffu, sum, o);
        if (lane >= o) sum += v;
    }
    const float excl = sum - (aa + ab);
    float* dst = p.dc + (((size_t)q * p.H + h) * p.nch + c) * 2 * kL;
    *reinterpret_cast<float2*>(dst + 2 * lane) = make_float2(excl + aa, excl + aa + ab);
    *reinterpret_cast<float2*>(dst + kL + 2 * lane) = make_float2(da, db);
}

// ---------------------------------------------------------------------------------------------
// Shared memory of ssd_main. Row strides carry 8 halves (16 bytes) of padding so that the eight
// row addresses of an ldmatrix fall in different banks.
template <int NS, int PT>
struct smem_layout {
    static constexpr int ldbc = NS + 8;                  // halves
    static constexpr int ldx = PT + 8;                   // halves
    static constexpr int srows = NS > kL ? NS : kL;      // S16 buffers double as kept-state x
    static constexpr size_t bc_bytes = bc_tile_halves<NS>() * 2;
    static constexpr size_t xraw_bytes = size_t(kL) * PT * 4;
    static constexpr size_t dc_bytes = 2ull * kL * 4;
    static constexpr size_t stage_bytes = bc_bytes + xraw_bytes + dc_bytes;
    static constexpr size_t x16_bytes = size_t(kL) * ldx * 2;
    static constexpr size_t s16_bytes = size_t(srows) * ldx * 2;
    static constexpr int ldm = kL + 8;                   // halves, rows of MS16
    static constexpr size_t ms_bytes = size_t(kL) * ldm * 2;
    static constexpr size_t fixed = 2 * x16_bytes + ms_bytes + 2 * s16_bytes + 64;   // + mbarriers
    // three stages (loads two chunks ahead) when they fit, else two
    static constexpr int stages = (3 * stage_bytes + fixed <= 227 * 1024) ? 3 : 2;
    static constexpr size_t total = stages * stage_bytes + fixed;
    // fp32 [p][n] staging of the initial and final state (row stride NS + 4 floats) reuses S16
    static constexpr int ldst = NS + 4;
    static_assert(size_t(PT) * ldst * 4 <= 2 * s16_bytes, "state staging must fit the S16 buffers");
    static_assert(total <= 227 * 1024, "shared memory");
};

template <int NS, int PT>
__global__ void __launch_bounds__(kThreads, 1) ssd_main(const __grid_constant__ ssd_params p) {
    using LY = smem_layout<NS, PT>;
    extern __shared__ __align__(128) unsigned char smem[];
    constexpr int ldbc = LY::ldbc, ldx = LY::ldx, kStages = LY::stages;
    constexpr int PH = PT / 2;       // columns of a y warp / state unit
    constexpr int NJH = PH / 8;      // n8 tiles in PH
    static_assert(PH % 8 == 0, "head_dim tile must split into two multiples of 8");
    // state work: units of (16 state rows, PH columns); 8 state warps
    constexpr int UNITS = NS / 8;
    constexpr int UPW = UNITS >= 8 ? UNITS / 8 : 1;   // units per state warp (NS 128: both halves)
    constexpr int ACTIVE_SW = UNITS / UPW;

    const int n_pt = (p.P + PT - 1) / PT;
    const int pt = blockIdx.x % n_pt;
    const int h = blockIdx.x / n_pt;
    const int q = blockIdx.y;
    const int p0 = pt * PT;
    const int pvalid = min(PT, p.P - p0);
    const int g = h / (p.H / p.G);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gr = lane >> 2, qd = lane & 3;
    const bool is_state = warp >= 8;
    const int sw = warp - 8;
    const bool state_active = is_state && sw < ACTIVE_SW;

    auto stage = [&](int c) { return smem + (c % kStages) * LY::stage_bytes; };
    __half* X16 = reinterpret_cast<__half*>(smem + kStages * LY::stage_bytes);
    __half* XS16 = X16 + kL * ldx;   // decay-weighted x for the state update
    __half* MS16 = XS16 + kL * ldx;  // the chunk's decay-masked C B^T (phase 1 -> phase 2)
    __half* S16base = MS16 + kL * LY::ldm;
    auto S16 = [&](int c) { return S16base + (c & 1) * LY::srows * ldx; };
    float* stg = reinterpret_cast<float*>(S16base);   // fp32 state staging (prologue/epilogue)
    uint64_t* bars = reinterpret_cast<uint64_t*>(S16base + 2 * LY::srows * ldx);

    const float* xq = p.x + (long long)h * p.x_h + (long long)q * p.x_q + p0;
    const __half* bcq = p.bc16 + ((size_t)q * p.G + g) * p.nch * bc_tile_halves<NS>();
    const float* dcq = p.dc + ((size_t)q * p.H + h) * p.nch * 2 * kL;
    const size_t ysz = (size_t)p.P * p.H * p.T * p.S;
    const size_t ssz = (size_t)p.N * p.P * p.H * p.S;
    // this block's [p][n] slab of a state block: element (n, p) at slab[n + N p]
    const size_t slab = (size_t)p.N * (p0 + (size_t)p.P * (h + (size_t)p.H * q));

    if (threadIdx.x == 0) {
        for (int i = 0; i < kStages; ++i) mbar_init(&bars[i], 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }

    // One thread issues a chunk's three copies: the B/C tile and cum/delta (written by ssd_prep)
    // and this head_dim tile of x (a 4-d TMA box; rows past T and columns past head_dim read 0).
    auto issue = [&](int c) {
        if (c >= p.nch || threadIdx.x != 0) return;
        unsigned char* st = stage(c);
        uint64_t* bar = &bars[c % kStages];
        const unsigned bytes = unsigned(LY::bc_bytes + LY::dc_bytes) + (p.x_vec ? unsigned(LY::xraw_bytes) : 0u);
        mbar_expect_arrive(bar, bytes);
        bulk_g2s(st, bcq + (size_t)c * bc_tile_halves<NS>(), unsigned(LY::bc_bytes), bar);
        bulk_g2s(st + LY::bc_bytes + LY::xraw_bytes, dcq + (size_t)c * 2 * kL, unsigned(LY::dc_bytes), bar);
        if (p.x_vec) tma_x(st + LY::bc_bytes, &p.xmap, p0, h, c * kL, q, bar);
    };

    // ---- prologue: the initial state (not written by ssd_prep, so it may overlap it)
    const int slot = p.ids[q];
    const float* s0 = p.s + (size_t)p.N * (p0 + (size_t)p.P * ((size_t)h + (size_t)p.H * slot));
    for (int i = threadIdx.x; i < PT * (NS / 4); i += kThreads) {
        const int pp = i / (NS / 4), n = (i % (NS / 4)) * 4;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (pp < pvalid) {
            const float* src = s0 + (size_t)p.N * pp + n;
            if (p.s_vec && n < p.N) v = __ldg(reinterpret_cast<const float4*>(src));
            else {
                if (n < p.N) v.x = __ldg(src);
                if (n + 1 < p.N) v.y = __ldg(src + 1);
                if (n + 2 < p.N) v.z = __ldg(src + 2);
                if (n + 3 < p.N) v.w = __ldg(src + 3);
            }
        }
        *reinterpret_cast<float4*>(stg + pp * LY::ldst + n) = v;
    }
    __syncthreads();   // staging written; mbarriers initialised

    pdl_wait();        // ssd_prep's B/C tiles and cum/delta are complete and visible
    for (int c = 0; c + 1 < kStages; ++c) issue(c);

    // state warps: S[u][j][e] holds rows n = 16 mt(u) + gr (+8), columns p = PH ph(u) + 8 j + 2 qd (+1)
    float S[UPW][NJH][4];
    auto u_mt = [&](int u) { return (sw * UPW + u) >> 1; };
    auto u_ph = [&](int u) { return (sw * UPW + u) & 1; };
    if (state_active) {
#pragma unroll
        for (int u = 0; u < UPW; ++u)
#pragma unroll
            for (int j = 0; j < NJH; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int n = u_mt(u) * 16 + gr + (e >> 1) * 8;
                    const int pp = u_ph(u) * PH + j * 8 + 2 * qd + (e & 1);
                    S[u][j][e] = stg[pp * LY::ldst + n];
                }
    }
    // kept blocks k >= T hold the initial state (rare: K > T)
    for (int k = p.T; k < p.K; ++k)
        for (int i = threadIdx.x; i < PT * NS; i += kThreads) {
            const int pp = i / NS, n = i % NS;
            if (pp < pvalid && n < p.N) p.out[ysz + (size_t)k * ssz + slab + (size_t)p.N * pp + n] = stg[pp * LY::ldst + n];
        }
    __syncthreads();   // staging reads done before S16(0) overwrites it
    auto store_s16 = [&](__half* dst) {
#pragma unroll
        for (int u = 0; u < UPW; ++u)
#pragma unroll
            for (int j = 0; j < NJH; ++j)
#pragma unroll
                for (int hh = 0; hh < 2; ++hh) {
                    const int n = u_mt(u) * 16 + gr + hh * 8;
                    const int pp = u_ph(u) * PH + j * 8 + 2 * qd;
                    *reinterpret_cast<__half2*>(dst + n * ldx + pp) =
                        __floats2half2_rn(S[u][j][2 * hh], S[u][j][2 * hh + 1]);
                }
    };
    if (state_active) store_s16(S16(0));

    for (int c = 0; c < p.nch; ++c) {
        __syncthreads();   // everyone is done with chunk c-1 (its stage, X16/XS16, S16 reads)
        issue(c + kStages - 1);
        mbar_wait(&bars[c % kStages], unsigned(c / kStages) & 1u);

        unsigned char* st = stage(c);
        const __half* B16 = reinterpret_cast<const __half*>(st);
        const __half* C16 = B16 + kL * ldbc;
        const float* xr = reinterpret_cast<const float*>(st + LY::bc_bytes);
        const float* cum = reinterpret_cast<const float*>(st + LY::bc_bytes + LY::xraw_bytes);
        const float* delta = cum + kL;
        const float cum_last = cum[kL - 1];
        const int t0 = c * kL;
        const int nt = min(kL, p.T - t0);

        // x to fp16 twice: plain (in-chunk product) and weighted by delta_s and the decay to the
        // chunk end (state update). Rows past the sequence and columns past head_dim are zero.
        for (int i = threadIdx.x; i < kL * PT / 4; i += kThreads) {
            const int t = i / (PT / 4), k = (i % (PT / 4)) * 4;
            float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
            if (t < nt && k < pvalid) {
                if (p.x_vec) v = *reinterpret_cast<const float4*>(xr + t * PT + k);
                else {
                    const float* src = xq + (long long)(t0 + t) * p.x_t + k;
                    v.x = src[0];
                    if (k + 1 < pvalid) v.y = src[1];
                    if (k + 2 < pvalid) v.z = src[2];
                    if (k + 3 < pvalid) v.w = src[3];
                }
            }
            const float w = delta[t] * __expf(cum_last - cum[t]);
            __half2 a0 = __floats2half2_rn(v.x, v.y), a1 = __floats2half2_rn(v.z, v.w);
            __half2 b0 = __floats2half2_rn(v.x * w, v.y * w), b1 = __floats2half2_rn(v.z * w, v.w * w);
            uint2 pa, pb;
            pa.x = *reinterpret_cast<uint32_t*>(&a0); pa.y = *reinterpret_cast<uint32_t*>(&a1);
            pb.x = *reinterpret_cast<uint32_t*>(&b0); pb.y = *reinterpret_cast<uint32_t*>(&b1);
            *reinterpret_cast<uint2*>(X16 + t * ldx + k) = pa;
            *reinterpret_cast<uint2*>(XS16 + t * ldx + k) = pb;
            // the kept-state path reads raw x from the stage; give it zeros too
            if (!p.x_vec && p.K > 1) *reinterpret_cast<float4*>(const_cast<float*>(xr) + t * PT + k) = v;
        }
        __syncthreads();

        // ---------------- phase 1: the ten 16x16 blocks of M on and below the diagonal, one warp
        // each: M[t][s] = (C B^T)[t][s] exp(cum_t - cum_s) delta_s for s <= t, as fp16 in MS16.
        // One block per warp keeps every dependent chain short; the walk over chunks is
        // latency-bound, so short chains on many warps beat long ones on few.
        if (warp < 10) {
            const int rg = warp >= 6 ? 3 : warp >= 3 ? 2 : warp >= 1 ? 1 : 0;
            const int jj = warp - rg * (rg + 1) / 2;
            float gacc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
            for (int k = 0; k < NS / 16; ++k) {
                uint32_t a[4], b0, b1, b2, b3;
                ldsm_x4(a[0], a[1], a[2], a[3], C16 + (rg * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ldbc + k * 16 + (lane >> 4) * 8);
                ldsm_x4(b0, b1, b2, b3, B16 + (jj * 16 + (lane & 7) + (lane >> 4) * 8) * ldbc + k * 16 + ((lane >> 3) & 1) * 8);
                mma16816(gacc[0], a, b0, b1);
                mma16816(gacc[1], a, b2, b3);
            }
            const int ta = rg * 16 + gr, tb = ta + 8;
            const float ca = cum[ta], cb = cum[tb];
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int sidx = jj * 16 + half * 8 + 2 * qd;
                const float cs0 = cum[sidx], cs1 = cum[sidx + 1];
                const float d0 = delta[sidx], d1 = delta[sidx + 1];
                const float m00 = sidx <= ta ? gacc[half][0] * __expf(ca - cs0) * d0 : 0.f;
                const float m01 = sidx + 1 <= ta ? gacc[half][1] * __expf(ca - cs1) * d1 : 0.f;
                const float m10 = sidx <= tb ? gacc[half][2] * __expf(cb - cs0) * d0 : 0.f;
                const float m11 = sidx + 1 <= tb ? gacc[half][3] * __expf(cb - cs1) * d1 : 0.f;
                *reinterpret_cast<__half2*>(MS16 + ta * LY::ldm + sidx) = __floats2half2_rn(m00, m01);
                *reinterpret_cast<__half2*>(MS16 + tb * LY::ldm + sidx) = __floats2half2_rn(m10, m11);
            }
        }
        __syncthreads();

        // ---------------- kept states whose token falls in this chunk (rare: K > 1), before phase 2
        // because they need S_in: exp(cum_tau) S_in + B^T (x weighted up to tau). The condition is
        // the same for the whole block, so plain block barriers order the KX buffer.
        for (int k = 1; k < p.K && k < p.T; ++k) {
            const int tau = p.T - 1 - k;
            if (tau < t0 || tau >= t0 + kL) continue;
            const int e = tau - t0;
            __half* KX = S16(c + 1);   // free: chunk c-1's S_in, read before this chunk began
            const float ce = cum[e];
            for (int i = threadIdx.x; i < kL * PT / 2; i += kThreads) {
                const int t = i / (PT / 2), kx = (i % (PT / 2)) * 2;
                const float2 v = (t < nt && kx < pvalid) ? *reinterpret_cast<const float2*>(xr + t * PT + kx)
                                                         : make_float2(0.f, 0.f);
                const float w = t <= e ? delta[t] * __expf(ce - cum[t]) : 0.f;
                *reinterpret_cast<__half2*>(KX + t * ldx + kx) = __floats2half2_rn(v.x * w, v.y * w);
            }
            __syncthreads();
            if (state_active) {
                const float ee = __expf(ce);
                float* blk = p.out + ysz + (size_t)k * ssz + slab;
#pragma unroll
                for (int u = 0; u < UPW; ++u) {
                    float acc[NJH][4];
#pragma unroll
                    for (int j = 0; j < NJH; ++j)
#pragma unroll
                        for (int r = 0; r < 4; ++r) acc[j][r] = 0.f;
                    const int n0 = u_mt(u) * 16;
#pragma unroll
                    for (int kk = 0; kk < 4; ++kk) {
                        uint32_t a[4];
                        const __half* ptr = B16 + (kk * 16 + (lane & 7) + (lane >> 4) * 8) * ldbc + n0 + ((lane >> 3) & 1) * 8;
                        ldsm_x4_t(a[0], a[1], a[2], a[3], ptr);
                        uint32_t b[NJH][2];
                        load_b_kn<NJH>(b, KX + u_ph(u) * PH, ldx, kk * 16, lane);
#pragma unroll
                        for (int j = 0; j < NJH; ++j) mma16816(acc[j], a, b[j][0], b[j][1]);
                    }
#pragma unroll
                    for (int j = 0; j < NJH; ++j)
#pragma unroll
                        for (int r = 0; r < 4; ++r) {
                            const int n = n0 + gr + (r >> 1) * 8;
                            const int pp = u_ph(u) * PH + j * 8 + 2 * qd + (r & 1);
                            if (n < p.N && pp < pvalid) blk[n + (size_t)p.N * pp] = ee * S[u][j][r] + acc[j][r];
                        }
                }
            }
            __syncthreads();   // KX reads done before the next kept token or this chunk's S16(c+1)
        }

        if (!is_state) {
            // ---------------- phase 2, y for tokens [16 rg, 16 rg + 16), columns [PH ph, PH ph + PH):
            // exp(cum_t) C S_in + M x. Warp w runs on scheduler w % 4: the heaviest row group
            // shares a scheduler with the lightest.
            const int ph = warp >> 2;
            const int rg = ph ? 3 - (warp & 3) : (warp & 3);
            const int r0 = rg * 16;
            float y[NJH][4];
#pragma unroll
            for (int j = 0; j < NJH; ++j) y[j][0] = y[j][1] = y[j][2] = y[j][3] = 0.f;
            const __half* Sin = S16(c) + ph * PH;
#pragma unroll
            for (int k = 0; k < NS / 16; ++k) {
                uint32_t a[4];
                ldsm_x4(a[0], a[1], a[2], a[3], C16 + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ldbc + k * 16 + (lane >> 4) * 8);
                uint32_t b[NJH][2];
                load_b_kn<NJH>(b, Sin, ldx, k * 16, lane);
#pragma unroll
                for (int j = 0; j < NJH; ++j) mma16816(y[j], a, b[j][0], b[j][1]);
            }
            const float e0 = __expf(cum[r0 + gr]), e1 = __expf(cum[r0 + gr + 8]);
#pragma unroll
            for (int j = 0; j < NJH; ++j) { y[j][0] *= e0; y[j][1] *= e0; y[j][2] *= e1; y[j][3] *= e1; }
            {
#pragma unroll
                for (int kk = 0; kk < 4; ++kk) {
                    if (kk <= rg) {
                        uint32_t a[4];
                        ldsm_x4(a[0], a[1], a[2], a[3], MS16 + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LY::ldm + kk * 16 + (lane >> 4) * 8);
                        uint32_t b[NJH][2];
                        load_b_kn<NJH>(b, X16 + ph * PH, ldx, kk * 16, lane);
#pragma unroll
                        for (int j = 0; j < NJH; ++j) mma16816(y[j], a, b[j][0], b[j][1]);
                    }
                }
            }
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                const int t = r0 + gr + hh * 8;
                if (t < nt) {
                    float* yrow = p.out + (size_t)p.P * (h + (size_t)p.H * (t0 + t + (size_t)p.T * q)) + p0;
#pragma unroll
                    for (int j = 0; j < NJH; ++j) {
                        const int pp = ph * PH + j * 8 + 2 * qd;
                        if (pp + 1 < pvalid && p.y_vec) {
                            *reinterpret_cast<float2*>(yrow + pp) = make_float2(y[j][2 * hh], y[j][2 * hh + 1]);
                        } else {
                            if (pp < pvalid) yrow[pp] = y[j][2 * hh];
                            if (pp + 1 < pvalid) yrow[pp + 1] = y[j][2 * hh + 1];
                        }
                    }
                }
            }
        } else {
            // ---------------- S = exp(cum_last) S + B^T XS
            if (state_active) {
                const float el = __expf(cum_last);
#pragma unroll
                for (int u = 0; u < UPW; ++u)
#pragma unroll
                    for (int j = 0; j < NJH; ++j)
#pragma unroll
                        for (int r = 0; r < 4; ++r) S[u][j][r] *= el;
#pragma unroll
                for (int kk = 0; kk < 4; ++kk) {
                    uint32_t a[4];
                    const int n0 = u_mt(0) * 16;   // all units of a warp share the rows
                    const __half* ptr = B16 + (kk * 16 + (lane & 7) + (lane >> 4) * 8) * ldbc + n0 + ((lane >> 3) & 1) * 8;
                    ldsm_x4_t(a[0], a[1], a[2], a[3], ptr);
#pragma unroll
                    for (int u = 0; u < UPW; ++u) {
                        uint32_t b[NJH][2];
                        load_b_kn<NJH>(b, XS16 + u_ph(u) * PH, ldx, kk * 16, lane);
#pragma unroll
                        for (int j = 0; j < NJH; ++j) mma16816(S[u][j], a, b[j][0], b[j][1]);
                    }
                }
                if (c + 1 < p.nch) store_s16(S16(c + 1));
            }
        }
    }

    // ---- epilogue: the final state through the staging buffer, stored with 16-byte writes
    __syncthreads();   // A warps are done with S16
    if (state_active) {
#pragma unroll
        for (int u = 0; u < UPW; ++u)
#pragma unroll
            for (int j = 0; j < NJH; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int n = u_mt(u) * 16 + gr + (e >> 1) * 8;
                    const int pp = u_ph(u) * PH + j * 8 + 2 * qd + (e & 1);
                    stg[pp * LY::ldst + n] = S[u][j][e];
                }
    }
    __syncthreads();
    float* dst0 = p.out + ysz + slab;
    for (int i = threadIdx.x; i < PT * (NS / 4); i += kThreads) {
        const int pp = i / (NS / 4), n = (i % (NS / 4)) * 4;
        if (pp >= pvalid || n >= p.N) continue;
        const float4 v = *reinterpret_cast<const float4*>(stg + pp * LY::ldst + n);
        float* d = dst0 + (size_t)p.N * pp + n;
        if (p.so_vec) *reinterpret_cast<float4*>(d) = v;
        else {
            d[0] = v.x;
            if (n + 1 < p.N) d[1] = v.y;
            if (n + 2 < p.N) d[2] = v.z;
            if (n + 3 < p.N) d[3] = v.w;
        }
    }
}

int pick_ns(int64_t N) { return N <= 32 ? 32 : N <= 64 ? 64 : N <= 128 ? 128 : 0; }

// Measurement knobs: SSMKIT_SSD_WALK=phased runs the one-phase-at-a-time walk for tiles of 32
// too; SSMKIT_SSD_TILE=32 or 64 forces the head_dim tile where the shape allows it.
bool phased_walk() {
    static const bool v = [] {
        const char* e = std::getenv("SSMKIT_SSD_WALK");
        return e && std::strcmp(e, "phased") == 0;
    }();
    return v;
}
int forced_tile() {
    static const int v = [] {
        const char* e = std::getenv("SSMKIT_SSD_TILE");
        const int t = e ? std::atoi(e) : 0;
        return t == 32 || t == 64 ? t : 0;
    }();
    return v;
}

int pick_pt(const ssmkit::scan_shape& sh) {
    const int64_t P = sh.head_dim;
    if (forced_tile() && P % 80 != 0) return forced_tile();
    if (P % 80 == 0 && P % 64 != 0) return 80;
    if (P <= 32) return 32;
    // Each block walks its chunks serially, so blocks are what fills the GPU: halve the tile
    // when whole-head tiles would leave SMs idle (measured: granite 512 x 1, 25.7 vs 31.7 us).
    static const int sms = [] {
        int dev = 0, n = 132;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) n = 132;
        return n;
    }();
    const int64_t blocks64 = (P + 63) / 64 * sh.n_head * sh.n_seqs;
    if (P % 32 == 0 && blocks64 < sms) return 32;
    return 64;
}

PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
        void* f = nullptr;
        cudaDriverEntryPointQueryResult q{};
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
            q != cudaDriverEntryPointSuccess)
            f = nullptr;
        return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
    }();
    return fn;
}

bool encode_x_map(CUtensorMap* map, const ssmkit::scan_args& a, int PT) {
    auto enc = tensor_map_encoder();
    if (!enc) return false;
    const ssmkit::scan_shape& sh = a.shape;
    const cuuint64_t dims[4] = {cuuint64_t(sh.head_dim), cuuint64_t(sh.n_head), cuuint64_t(sh.n_t), cuuint64_t(sh.n_seqs)};
    const cuuint64_t strides[3] = {cuuint64_t(a.x.nb[1]), cuuint64_t(a.x.nb[2]), cuuint64_t(a.x.nb[3])};
    const cuuint32_t box[4] = {cuuint32_t(PT), 1, cuuint32_t(kL), 1};
    const cuuint32_t estr[4] = {1, 1, 1, 1};
    return enc(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, a.x.data, dims, strides, box, estr,
               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

size_t align256(size_t v) { return (v + 255) & ~size_t(255); }

struct ws_parts { size_t bc, dc; };
ws_parts ws_layout(const ssmkit::scan_shape& sh, int NS) {
    const size_t nch = size_t((sh.n_t + kL - 1) / kL);
    return {align256(size_t(sh.n_seqs) * sh.n_group * nch * 2 * kL * (NS + 8) * 2),
            align256(size_t(sh.n_seqs) * sh.n_head * nch * 2 * kL * 4)};
}

// The dynamic shared-memory limit is raised once per device and instantiation (host-side only,
// so it is also legal while a stream is being captured).
template <int NS, int PT>
bool prepare_main() {
    using LY = smem_layout<NS, PT>;
    static unsigned long long done = 0;   // bit per device ordinal
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    if (dev < 64 && (done >> dev) & 1ull) return true;
    if (cudaFuncSetAttribute(ssd_main<NS, PT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             int(LY::total)) != cudaSuccess)
        return false;
    if (dev < 64) done |= 1ull << dev;
    return true;
}

template <int NS, int PT>
bool launch_pair(const ssd_params& p, cudaStream_t stream) {
    using LY = smem_layout<NS, PT>;
    if (!prepare_main<NS, PT>()) return false;
    dim3 pg(unsigned(p.nch), unsigned(p.S),
            unsigned(prep_bc_blocks(p.G, NS) + (p.H + kHeadsPerPrepBlock - 1) / kHeadsPerPrepBlock));
    ssd_prep<NS><<<pg, 256, 0, stream>>>(p);
    if ((PT == 32 || PT == 64) && !phased_walk()) return launch_main_pipe(p, NS, PT, stream);
    const int n_pt = (p.P + PT - 1) / PT;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(unsigned(n_pt * p.H), unsigned(p.S));
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = LY::total;
    cfg.stream = stream;
    // Programmatic dependent launch: the main kernel's blocks start (and load the initial state)
    // while ssd_prep runs; griddepcontrol.wait orders the reads of its outputs. Capturable.
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    if (cudaLaunchKernelEx(&cfg, ssd_main<NS, PT>, p) != cudaSuccess) {
        (void)cudaGetLastError();   // don't leave our failure for the fallback's launch check
        return false;
    }
    return true;
}

template <int NS>
bool launch_ns(const ssd_params& p, int PT, cudaStream_t stream) {
    switch (PT) {
        case 32: return launch_pair<NS, 32>(p, stream);
        case 64: return launch_pair<NS, 64>(p, stream);
        case 80: return launch_pair<NS, 80>(p, stream);
        default: return false;
    }
}

}  // namespace

struct ssd_workspace {
    void* ptr = nullptr;
    size_t bytes = 0;
};

ssd_workspace* ssd_workspace_create() { return new ssd_workspace(); }

void ssd_workspace_destroy(ssd_workspace* ws) {
    if (!ws) return;
    if (ws->ptr) cudaFree(ws->ptr);
    delete ws;
}

bool ssd_supports(const ssmkit::scan_shape& sh) {
    if (sh.mamba1) return false;
    if (sh.d_state < 1 || sh.d_state > kMaxState) return false;
    if (sh.head_dim < 1 || sh.n_head < 1 || sh.n_group < 1 || sh.n_head % sh.n_group) return false;
    if (sh.n_t < 1 || sh.n_seqs < 1 || sh.n_seqs > 65535) return false;
    const int PT = pick_pt(sh);
    const int64_t n_pt = (sh.head_dim + PT - 1) / PT;
    if (n_pt * sh.n_head > (1ll << 31) - 1) return false;
    if (sh.n_t > (1ll << 30)) return false;
    return true;
}

size_t ssd_workspace_bytes(const ssmkit::scan_shape& sh) {
    if (!ssd_supports(sh)) return 0;
    const ws_parts w = ws_layout(sh, pick_ns(sh.d_state));
    return w.bc + w.dc;
}

bool ssd_workspace_reserve(ssd_workspace* ws, const ssmkit::scan_shape& sh) {
    if (!ws) return false;
    const size_t need = ssd_workspace_bytes(sh);
    if (need <= ws->bytes) return true;
    if (ws->ptr) {
        cudaFree(ws->ptr);   // synchronizes the device: queued work may still read the old one
        ws->ptr = nullptr;
        ws->bytes = 0;
    }
    if (cudaMalloc(&ws->ptr, need) != cudaSuccess) {
        ws->ptr = nullptr;
        return false;
    }
    ws->bytes = need;
    return true;
}

// Measured on an H100 (docs/perf-ssd-notes.md), granite shapes: the chunked path loses at 4 tokens
// (6.4 vs 5.9 us for the sequential kernel) and wins from 8 (6.4 vs 7.1 us).
int64_t ssd_min_tokens() { return 8; }

bool ssd_scan_launch(const ssmkit::scan_args& a, cudaStream_t stream, ssd_workspace* ws) {
    const ssmkit::scan_shape& sh = a.shape;
    if (!ws || !ssd_supports(sh)) return false;
    const int NS = pick_ns(sh.d_state), PT = pick_pt(sh);
    const ws_parts w = ws_layout(sh, NS);
    if (ws->bytes < w.bc + w.dc) return false;

    ssd_params p{};
    p.s = static_cast<const float*>(a.s.data);
    p.x = static_cast<const float*>(a.x.data);
    p.x_h = (long long)(a.x.nb[1] / 4);
    p.x_t = (long long)(a.x.nb[2] / 4);
    p.x_q = (long long)(a.x.nb[3] / 4);
    p.dt = static_cast<const float*>(a.dt.data);
    p.A = static_cast<const float*>(a.A.data);
    p.a_h = (long long)(a.A.nb[1] / 4);
    p.B = static_cast<const float*>(a.B.data);
    p.C = static_cast<const float*>(a.C.data);
    p.b_g = (long long)(a.B.nb[1] / 4); p.b_t = (long long)(a.B.nb[2] / 4); p.b_q = (long long)(a.B.nb[3] / 4);
    p.c_g = (long long)(a.C.nb[1] / 4); p.c_t = (long long)(a.C.nb[2] / 4); p.c_q = (long long)(a.C.nb[3] / 4);
    p.ids = static_cast<const int32_t*>(a.ids.data);
    p.out = static_cast<float*>(a.out.data);
    p.N = int(sh.d_state); p.P = int(sh.head_dim); p.H = int(sh.n_head); p.G = int(sh.n_group);
    p.T = int(sh.n_t); p.S = int(sh.n_seqs); p.K = int(sh.n_keep);
    p.nch = int((sh.n_t + kL - 1) / kL);
    p.bc16 = static_cast<__half*>(ws->ptr);
    p.dc = reinterpret_cast<float*>(static_cast<unsigned char*>(ws->ptr) + w.bc);
    // 16-byte copies of x need 16-byte aligned rows and tiles that end on a 4-float boundary
    const uintptr_t xa = reinterpret_cast<uintptr_t>(a.x.data);
    p.x_vec = (xa % 16 == 0) && (a.x.nb[1] % 16 == 0) && (a.x.nb[2] % 16 == 0) &&
              (a.x.nb[3] % 16 == 0) && (sh.head_dim % 4 == 0);
    // x through TMA needs a tensor map (host-side encode, no allocation: capture-safe); if the
    // encoder is unavailable the kernel reads x directly (slower, same results).
    if (p.x_vec) p.x_vec = encode_x_map(&p.xmap, a, PT);
    const uintptr_t ba = reinterpret_cast<uintptr_t>(a.B.data), ca = reinterpret_cast<uintptr_t>(a.C.data);
    p.bc_vec = (ba % 16 == 0) && (ca % 16 == 0) && (a.B.nb[1] % 16 == 0) && (a.B.nb[2] % 16 == 0) &&
               (a.B.nb[3] % 16 == 0) && (a.C.nb[1] % 16 == 0) && (a.C.nb[2] % 16 == 0) &&
               (a.C.nb[3] % 16 == 0);
    p.s_vec = (reinterpret_cast<uintptr_t>(a.s.data) % 16 == 0) && (sh.d_state % 4 == 0);
    const uintptr_t out_addr = reinterpret_cast<uintptr_t>(a.out.data);
    p.so_vec = ((out_addr + size_t(sh.y_elements()) * 4) % 16 == 0) && (sh.d_state % 4 == 0);
    p.y_vec = (out_addr % 8 == 0) && (sh.head_dim % 2 == 0);

    switch (NS) {
        case 32: return launch_ns<32>(p, PT, stream);
        case 64: return launch_ns<64>(p, PT, stream);
        case 128: return launch_ns<128>(p, PT, stream);
        default: return false;
    }
}
