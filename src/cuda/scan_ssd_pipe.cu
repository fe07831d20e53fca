// The walk of the chunked (SSD) scan: one block of 16 warps per (sequence, head, head_dim tile of
// 32, 64 or 80 columns) walks the chunks in order with the state in registers.
//
// The first version ran each chunk in phases: x to fp16 (all warps), barrier, the ten 16x16 C B^T
// blocks on and below the diagonal (10 of 16 warps), barrier, y and the state update (8 + 8
// warps). Profiled on the H100 (granite 512 x 1, tile 32): 11 cycles per issued instruction, of
// which 3.1 waiting at barriers, 2.2 on fixed-latency dependencies and 2.0 on shared memory:
// short dependent chains separated by barriers, with warps idle in each phase.
//
// Only the state carries a dependency from one chunk to the next. Everything else of chunk c+1
// (x to fp16, the masked C B^T) can run while chunk c's y and state update run, so each
// iteration does both, with one barrier:
//   y warps 0-7      y of chunk c (exp(cum) C S_in + M x), then warps 0 and 7 (the lightest
//                    row groups) build C B^T blocks 8 and 9 of chunk c+1;
//   state warps 8-15 S = exp(cum_last) S + B^T (weighted x) for chunk c, then C B^T blocks 0-7
//                    of chunk c+1;
//   all warps        x of chunk c+1 to fp16.
// X16, XS16 and MS16 are double-buffered by chunk parity for this. The load ring has three
// stages for tiles of 32 and two for tiles of 64 and 80 (shared memory). Measured against the
// phased walk in the same calls (docs/perf-ssd-notes.md): 1.1-1.2x faster at tiles of 32 and 64,
// equal at 80; the phased walk was then removed.
//
// CBPRE (v8, tiles of 32 and 64): C B^T is the same for every head of a group, so ssd_prep
// computes it once per (group, chunk) and the walk copies it with the stage; ssd_prep also
// tabulates every decay factor (dct::), so the walk does no exponentials. The masked product M x
// becomes: blocks below the diagonal as raw C B^T times x weighted to its 16-token block end,
// accumulated Horner-style with the block-to-block factors and scaled per row at the end; the
// diagonal block's fragment scaled in registers by the prep's decay rows. The state warps no
// longer build C B^T blocks. Profiled on the H200 (granite 4096 x 1): 6204 -> 4362 issued
// instructions per chunk and block; 134.7 -> 106.5 us. The v6 walk (CBPRE false) stays for tiles
// of 80 (the C B^T tile and XT16 do not fit beside them) and behind SSMKIT_SSD_WALK=v6.
//
// WG (v9, opt-in: SSMKIT_SSD_WALK=v9; d_state 128, tiles of 32 and 64, sm_90a): C S_in and the
// state update on wgmma, each warpgroup reading its operands from swizzled K-major tiles
// (wgmma.cuh): ssd_prep writes B^T and C so, the walk writes S_in (stmatrix, transposed) and
// the weighted x^T so. The y warps' C S_in runs asynchronously under their masked mma.sync part;
// the state warps convert the next chunk's x under their update. Shared-memory wavefronts per
// call -18% against v8 (ncu, granite 4096 x 1), but 4096 x 1 takes 99 us against v8's 94 (the
// barrier stalls tripled: docs/perf-ssd-notes.md, sixth session), so v8 stays the default.
//
// WM (v10, opt-in: SSMKIT_SSD_WALK=v10; v9's shapes): y's masked part also on wgmma. ssd_prep
// writes each head's masked C B^T (decay and delta applied, fp16, swizzled: 8 KB per head and
// chunk) and the walk copies it in place of the shared C B^T tile; the y warpgroups run two wgmma
// chains (C S_in, M x^T) and convert the next chunk's x^T meanwhile, with no mma.sync and no
// per-row-group imbalance. Measured (H200, granite): correct everywhere, the walk kernel ~10%
// faster than v8's at 4096 x 1, but ssd_prep twice as long (26.5 vs 13.3 us under ncu), so the
// scan is slower: docs/perf-ssd-notes.md, seventh session.
#include "cuda/pdl.cuh"
#include "cuda/ssd_device.cuh"
#include "cuda/wgmma.cuh"

#include <algorithm>
#include <type_traits>

namespace ssmkit::cuda::ssd {
namespace {

// Diagnostic build only (-DSSMKIT_SSD_TRACE, see scripts/ssd-trace.sh): each warp adds up the
// SM cycles of its walk by phase (own work, the wait for the next stage, the conversion, the
// chunk's barrier, prologue, epilogue) and lane 0 of two blocks prints them for the fifth launch.
#ifdef SSMKIT_SSD_TRACE
}  // namespace
}  // namespace ssmkit::cuda::ssd
#include <cstdio>
namespace ssmkit::cuda::ssd {
namespace {
__device__ unsigned ssd_trace_launches;
#define SSD_TL(k) tl[k] = globaltimer_ns()
#define SSD_TRACE_DECL long long tr_acc[6] = {0, 0, 0, 0, 0, 0}; long long tr_last = clock64(); \
    unsigned long long tl[5]; SSD_TL(0); \
    const unsigned tr_launch = trace_launch_index(&ssd_trace_launches);
#define SSD_TRACE(k) do { const long long tr_now = clock64(); tr_acc[k] += tr_now - tr_last; tr_last = tr_now; } while (0)
#define SSD_TRACE_PRINT                                                                                         \
    do {                                                                                                       \
        SSD_TRACE(5);                                                                                          \
        if (tr_launch == 4 && blockIdx.y == 0 && (blockIdx.x == 0 || blockIdx.x == gridDim.x / 2) && lane == 0) \
            printf("ssd-trace PT %d stages %d block %3d warp %2d: work %7lld wait %7lld conv %7lld bar %7lld "  \
                   "pro %6lld epi %6lld cycles, %d chunks\n", PT, kStages, int(blockIdx.x), warp, tr_acc[0],   \
                   tr_acc[1], tr_acc[2], tr_acc[3], tr_acc[4], tr_acc[5], p.nch);                              \
        SSD_TL(4);                                                                                             \
        if (tr_launch == 4 && threadIdx.x == 0)                                                                \
            printf("ssd-tl walk %d %d %llu %llu %llu %llu %llu\n", int(blockIdx.x), int(blockIdx.y), tl[0], tl[1], \
                   tl[2], tl[3], tl[4]);                                                                       \
    } while (0)
#else
#define SSD_TL(k) do { } while (0)
#define SSD_TRACE_DECL
#define SSD_TRACE(k) do { } while (0)
#define SSD_TRACE_PRINT do { } while (0)
#endif

constexpr size_t round1k(size_t b) { return (b + 1023) / 1024 * 1024; }

template <int NS, int PT_, bool CBPRE, bool WG = false, bool WM = false>
struct pipe_layout {
    static constexpr int PT = PT_;
    static constexpr int ldbc = bc_ld<NS>();             // halves
    static constexpr int ldx = PT + 8;                   // halves
    static constexpr int ldm = kL + 8;                   // halves, rows of MS16
    static constexpr int srows = NS > kL ? NS : kL;      // S16 buffers double as kept-state x
    static constexpr int ldst = NS + 4;                  // fp32 [p][n] state staging in the S16 buffers
    // WG: B^T then C, swizzled, no padding (ssd_prep writes them so); else the padded B/C rows
    static constexpr size_t bc_bytes = WG ? size_t(2) * kL * NS * 2 : bc_tile_halves<NS>() * 2;
    // C B^T from ssd_prep; WM: this head's masked C B^T, swizzled
    static constexpr size_t cb_bytes = WM ? kMhHalves * 2 : CBPRE ? cb_tile_halves() * 2 : 0;
    static constexpr size_t xraw_bytes = size_t(kL) * PT * 4;
    // v6: cum, delta only; WM: no diagonal decay rows (the masked tile has them)
    static constexpr size_t dc_bytes = WM ? dct::kDiag * 4 : CBPRE ? dct::kFloats * 4 : 2ull * kL * 4;
    // WG: stages start on 1024-byte boundaries (the swizzle pattern is taken from address bits)
    static constexpr size_t stage_bytes_raw = bc_bytes + cb_bytes + xraw_bytes + dc_bytes;
    static constexpr size_t stage_bytes = WG ? round1k(stage_bytes_raw) : stage_bytes_raw;
    static constexpr size_t x16_bytes = size_t(kL) * ldx * 2;
    static constexpr size_t ms_bytes = size_t(kL) * ldm * 2;
    // WG: XS^T, x weighted for the state update as [p][t] swizzled (the B operand of its wgmma)
    static constexpr size_t xst_bytes = WG ? size_t(PT) * kL * 2 : 0;
    // X16, XS16 and a third buffer of one chunk: MS16 (masked C B^T), or with CBPRE XT16 (x
    // weighted by delta and the decay to the end of its 16-token block); WG: XS^T, X16, XT16;
    // WM: XS^T and X^T (plain x as [p][t] swizzled, the B operand of M x), at the X16 offset
    static constexpr size_t parity_bytes =
        WM ? 2 * xst_bytes : WG ? round1k(xst_bytes + 2 * x16_bytes) : 2 * x16_bytes + (CBPRE ? x16_bytes : ms_bytes);
    // WG: S16 is S_in as [p][n] swizzled (C S_in's B operand); the two buffers also hold the
    // fp32 staging of the state and the kept-state x^T
    static constexpr size_t s16_bytes =
        WG ? round1k(std::max(size_t(PT) * NS * 2, (size_t(PT) * ldst * 4 + 1) / 2)) : size_t(srows) * ldx * 2;
    static constexpr size_t fixed = 2 * parity_bytes + 2 * s16_bytes + 64;   // + mbarriers
    static constexpr size_t align_slack = WG ? 1024 : 0;                     // the base rounded up to 1024
    // three stages when they fit (tiles of 32), else two (tiles of 64 and 80)
    static constexpr int stages = (3 * stage_bytes + fixed + align_slack <= 227 * 1024) ? 3 : 2;
    static constexpr size_t total = stages * stage_bytes + fixed + align_slack;
    static_assert(size_t(PT) * ldst * 4 <= 2 * s16_bytes, "state staging must fit the S16 buffers");
    static_assert(total <= 227 * 1024, "shared memory");
    static_assert(stage_bytes % 128 == 0 && bc_bytes % 128 == 0 && cb_bytes % 128 == 0 && parity_bytes % 128 == 0 &&
                      s16_bytes % 128 == 0,
                  "TMA and ldmatrix alignment");
    static_assert(!WG || (NS == 128 && CBPRE && (PT == 32 || PT == 64)), "v9 walk: d_state 128, tiles of 32 or 64");
    static_assert(!WM || WG, "v10 builds on v9");
    static_assert(!WM || (xst_bytes % 1024 == 0 && bc_bytes % 1024 == 0 && cb_bytes % 1024 == 0), "swizzled tiles");
};

// LO (with CBPRE, p.cb_lo): ssd_prep kept the rounding error of C B^T's diagonal blocks
// (store_cb_diag_block), which the diagonal block adds back before its decay.
template <int NS, int PT, bool CBPRE, bool WG, bool WM, bool LO>
__global__ void __launch_bounds__(kThreads, 1) ssd_main_pipe(const __grid_constant__ ssd_params p) {
    static_assert(!LO || CBPRE, "the lo halves are in ssd_prep's C B^T tile");
    using LY = pipe_layout<NS, PT, CBPRE, WG, WM>;
    SSD_TRACE_DECL
    extern __shared__ __align__(128) unsigned char smem_raw[];
    // WG: the swizzled tiles need 1024-byte alignment (LY::align_slack bytes are allocated for it)
    unsigned char* const smem = WG ? smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u) : smem_raw;
    constexpr int ldbc = LY::ldbc, ldx = LY::ldx, ldm = LY::ldm, kStages = LY::stages;
    constexpr int PH = PT / 2;       // columns of a y warp / state unit
    constexpr int NJH = PH / 8;      // n8 tiles in PH
    constexpr int UNITS = NS / 8;    // state units of (16 rows, PH columns)
    constexpr int UPW = UNITS >= 8 ? UNITS / 8 : 1;
    constexpr int ACTIVE_SW = UNITS / UPW;

    const int n_pt = (p.P + PT - 1) / PT;
    const int pt = blockIdx.x % n_pt;
    const int h = blockIdx.x / n_pt;
    const int q = blockIdx.y;
    const int p0 = pt * PT;
    const int pvalid = min(PT, p.P - p0);
    const int g = h / (p.H / p.G);
    // the warp index through a shuffle: visibly uniform, so ptxas keeps the wgmma of the warp
    // roles (is_state branches) asynchronous instead of serializing them
    const int warp = __shfl_sync(0xffffffffu, int(threadIdx.x >> 5), 0), lane = threadIdx.x & 31;
    const int gr = lane >> 2, qd = lane & 3;
    const bool is_state = warp >= 8;
    const int sw = warp - 8;
    const bool state_active = is_state && sw < ACTIVE_SW;

    auto stage = [&](int c) { return smem + (c % kStages) * LY::stage_bytes; };
    unsigned char* par = smem + kStages * LY::stage_bytes;
    // WG: XS^T (swizzled [p][t]) first in each parity buffer, then X16 and XT16 as in v8
    auto XST = [&](int c) { return par + (c & 1) * LY::parity_bytes; };
    auto X16 = [&](int c) { return reinterpret_cast<__half*>(par + (c & 1) * LY::parity_bytes + LY::xst_bytes); };
    auto XS16 = [&](int c) { return X16(c) + kL * ldx; };      // decay-weighted x (state update; !WG)
    auto MS16 = [&](int c) { return XS16(c) + kL * ldx; };     // decay-masked C B^T (!CBPRE)
    auto XT16 = [&](int c) { return WG ? X16(c) + kL * ldx : MS16(c); };   // block-weighted x (CBPRE)
    unsigned char* const S16bytes = par + 2 * LY::parity_bytes;
    __half* S16base = reinterpret_cast<__half*>(S16bytes);
    auto S16 = [&](int c) {
        return reinterpret_cast<__half*>(S16bytes + (c & 1) * (WG ? LY::s16_bytes : size_t(LY::srows) * ldx * 2));
    };
    float* stg = reinterpret_cast<float*>(S16base);
    uint64_t* bars = reinterpret_cast<uint64_t*>(S16bytes + 2 * LY::s16_bytes);

    const float* xq = p.x + (long long)h * p.x_h + (long long)q * p.x_q + p0;
    const __half* bcq = p.bc16 + ((size_t)q * p.G + g) * p.nch * bc_tile_halves<NS>();
    const float* dcq = p.dc + ((size_t)q * p.H + h) * p.nch * dct::kFloats;
    const __half* cbq = CBPRE ? p.cb16 + ((size_t)q * p.G + g) * p.nch * cb_tile_halves() : nullptr;
    const __half* mhq = WM ? p.mh16 + ((size_t)q * p.H + h) * p.nch * kMhHalves : nullptr;
    const size_t ysz = (size_t)p.P * p.H * p.T * p.S;
    const size_t ssz = (size_t)p.N * p.P * p.H * p.S;
    const size_t slab = (size_t)p.N * (p0 + (size_t)p.P * (h + (size_t)p.H * q));

    if (threadIdx.x == 0) {
        for (int i = 0; i < kStages; ++i) mbar_init(&bars[i], 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    // A stage's copies in two parts: x (an input: may start before ssd_prep is done) with the
    // byte count of the whole stage, then ssd_prep's outputs.
    const bool xcopy = p.x_vec;
    auto issue_x = [&](int c) {
        if (c >= p.nch || threadIdx.x != 0) return;
        uint64_t* bar = &bars[c % kStages];
        const unsigned bytes =
            unsigned(LY::bc_bytes + LY::cb_bytes + LY::dc_bytes) + (xcopy ? unsigned(LY::xraw_bytes) : 0u);
        mbar_expect_arrive(bar, bytes);
        if (xcopy) tma_x(stage(c) + LY::bc_bytes + LY::cb_bytes, &p.xmap, p0, h, c * kL, q, bar);
    };
    auto issue_dep = [&](int c) {
        if (c >= p.nch || threadIdx.x != 0) return;
        unsigned char* st = stage(c);
        uint64_t* bar = &bars[c % kStages];
        bulk_g2s(st, bcq + (size_t)c * bc_tile_halves<NS>(), unsigned(LY::bc_bytes), bar);
        if constexpr (WM) bulk_g2s(st + LY::bc_bytes, mhq + (size_t)c * kMhHalves, unsigned(LY::cb_bytes), bar);
        else if constexpr (CBPRE) bulk_g2s(st + LY::bc_bytes, cbq + (size_t)c * cb_tile_halves(), unsigned(LY::cb_bytes), bar);
        bulk_g2s(st + LY::bc_bytes + LY::cb_bytes + LY::xraw_bytes, dcq + (size_t)c * dct::kFloats, unsigned(LY::dc_bytes), bar);
    };
    auto issue = [&](int c) { issue_x(c); issue_dep(c); };
    auto wait_stage = [&](int c) { mbar_wait(&bars[c % kStages], unsigned(c / kStages) & 1u); };
    auto B16 = [&](int c) { return reinterpret_cast<const __half*>(stage(c)); };
    auto C16 = [&](int c) { return B16(c) + kL * ldbc; };
    auto CB16 = [&](int c) { return reinterpret_cast<const __half*>(stage(c) + LY::bc_bytes); };   // CBPRE
    auto xraw = [&](int c) { return reinterpret_cast<float*>(stage(c) + LY::bc_bytes + LY::cb_bytes); };
    auto cum_of = [&](int c) {
        return reinterpret_cast<const float*>(stage(c) + LY::bc_bytes + LY::cb_bytes + LY::xraw_bytes);
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
    issue_x(0);        // x of the first two chunks while ssd_prep runs
    issue_x(1);

    ssmkit::cuda::pdl_wait_previous();   // ssd_prep's B/C tiles and cum/delta are complete and visible
    SSD_TL(1);
    issue_dep(0);
    issue_dep(1);

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
    for (int k = p.T; k < p.K; ++k)   // kept blocks k >= T hold the initial state (rare: K > T)
        for (int i = threadIdx.x; i < PT * NS; i += kThreads) {
            const int pp = i / NS, n = i % NS;
            if (pp < pvalid && n < p.N) p.out[ysz + (size_t)k * ssz + slab + (size_t)p.N * pp + n] = stg[pp * LY::ldst + n];
        }
    __syncthreads();   // staging reads done before S16(0) overwrites it
    auto store_s16 = [&](__half* dst) {
        if constexpr (WG) {
            // [p][n] swizzled: the warp's 16 rows n x PT columns p as 8x8 blocks stored transposed,
            // four per stmatrix: (n8 tile jt, rows +0 / +8) and (jt + 1, +0 / +8)
            float* Sf = &S[0][0][0];
            const int m = lane >> 3, rr = lane & 7;
            // this lane's row: p = 8 (jt + m / 2) + rr, n = 16 sw + 8 (m % 2), the piece n / 8
            unsigned char* const row0 =
                reinterpret_cast<unsigned char*>(dst) + wg::sw128_offset(8 * (m >> 1) + rr, 16 * sw + 8 * (m & 1), PT);
#pragma unroll
            for (int jt = 0; jt < PT / 8; jt += 2) {
                stsm_x4_t(row0 + jt * 8 * 128,
                          pack_half2(Sf[4 * jt], Sf[4 * jt + 1]), pack_half2(Sf[4 * jt + 2], Sf[4 * jt + 3]),
                          pack_half2(Sf[4 * jt + 4], Sf[4 * jt + 5]), pack_half2(Sf[4 * jt + 6], Sf[4 * jt + 7]));
            }
            wg::fence_smem_for_async();   // read by the next chunk's wgmma after the barrier
        } else {
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
        }
    };
    if (state_active) store_s16(S16(0));

    // ---- the per-chunk pieces
    // x of chunk c to fp16 twice: plain (in-chunk product) and weighted by delta_s and the decay to
    // the chunk end (state update). Rows past the sequence and columns past head_dim are zero.
    auto convert_x = [&](int c) {
        float* xr = xraw(c);
        const float* cum = cum_of(c);
        const float* delta = cum + kL;
        const float cum_last = cum[kL - 1];
        const int t0 = c * kL, nt = min(kL, p.T - t0);
        __half* X = X16(c);
        __half* XS = XS16(c);
        constexpr int Q = PT / 4;   // float4 per row
        // whole tile: fixed lanes, no checks, by NT threads from thread tid
        auto fast = [&](auto nt_tag, int tid) {
            constexpr int NT = decltype(nt_tag)::value;
#pragma unroll
            for (int u = 0; u < kL / (NT / Q); ++u) {
                const int t = tid / Q + u * (NT / Q), k = (tid % Q) * 4;
                const float4 v = *reinterpret_cast<const float4*>(xr + t * PT + k);
                const float w = cum[dct::kWs + t];
                const __half2 a0 = __floats2half2_rn(v.x, v.y), a1 = __floats2half2_rn(v.z, v.w);
                const __half2 b0 = __floats2half2_rn(v.x * w, v.y * w), b1 = __floats2half2_rn(v.z * w, v.w * w);
                *reinterpret_cast<uint2*>(X + t * ldx + k) = make_uint2(*reinterpret_cast<const uint32_t*>(&a0), *reinterpret_cast<const uint32_t*>(&a1));
                *reinterpret_cast<uint2*>(XS + t * ldx + k) = make_uint2(*reinterpret_cast<const uint32_t*>(&b0), *reinterpret_cast<const uint32_t*>(&b1));
                if (t < kL - 16) {
                    const float wt = cum[dct::kWt + t];
                    const __half2 c0 = __floats2half2_rn(v.x * wt, v.y * wt), c1 = __floats2half2_rn(v.z * wt, v.w * wt);
                    *reinterpret_cast<uint2*>(XT16(c) + t * ldx + k) = make_uint2(*reinterpret_cast<const uint32_t*>(&c0), *reinterpret_cast<const uint32_t*>(&c1));
                }
            }
        };
        // WM, whole tile: x^T as [p][t] swizzled, two tokens of one 4-column piece per item (4-byte
        // stores), weighted (XS^T, state warps) or plain (X^T, y warps); each half loads x itself
        auto fast_xt = [&](unsigned char* xs, bool weighted, int tid) {
            constexpr int NT = kThreads / 2, PAIRS = kL / 2 * Q;
            static_assert(!WM || PAIRS % NT == 0, "whole rounds");
#pragma unroll
            for (int u = 0; u < PAIRS / NT; ++u) {
                const int i = tid + u * NT;
                const int t = 2 * (i / Q), k = (i % Q) * 4;
                const float4 v0 = *reinterpret_cast<const float4*>(xr + t * PT + k);
                const float4 v1 = *reinterpret_cast<const float4*>(xr + (t + 1) * PT + k);
                const float w0 = weighted ? cum[dct::kWs + t] : 1.f, w1 = weighted ? cum[dct::kWs + t + 1] : 1.f;
                *reinterpret_cast<uint32_t*>(xs + wg::sw128_offset_k64(k, t)) = pack_half2(v0.x * w0, v1.x * w1);
                *reinterpret_cast<uint32_t*>(xs + wg::sw128_offset_k64(k + 1, t)) = pack_half2(v0.y * w0, v1.y * w1);
                *reinterpret_cast<uint32_t*>(xs + wg::sw128_offset_k64(k + 2, t)) = pack_half2(v0.z * w0, v1.z * w1);
                *reinterpret_cast<uint32_t*>(xs + wg::sw128_offset_k64(k + 3, t)) = pack_half2(v0.w * w0, v1.w * w1);
            }
            wg::fence_smem_for_async();   // read by wgmma after the barrier
        };
        if constexpr (WM) {
            if (p.x_vec && nt == kL && pvalid == PT) {
                if (is_state) fast_xt(XST(c), true, threadIdx.x - kThreads / 2);
                else fast_xt(reinterpret_cast<unsigned char*>(X), false, threadIdx.x);
                return;
            }
        }
        if constexpr (WG && !WM) {
            if (p.x_vec && nt == kL && pvalid == PT) {
                // Split by output: the y warps write X16 and XT16 (read by their mma.sync next
                // chunk), the state warps XS^T (read by their wgmma), each loading x itself.
                constexpr int NT = kThreads / 2;
                if (!is_state) {
                    static_assert((kL * Q) % NT == 0, "whole rounds");
#pragma unroll
                    for (int u = 0; u < kL * Q / NT; ++u) {
                        const int i = threadIdx.x + u * NT;
                        const int t = i / Q, k = (i % Q) * 4;
                        const float4 v = *reinterpret_cast<const float4*>(xr + t * PT + k);
                        *reinterpret_cast<uint2*>(X + t * ldx + k) = make_uint2(pack_half2(v.x, v.y), pack_half2(v.z, v.w));
                        if (t < kL - 16) {
                            const float a = cum[dct::kWt + t];
                            *reinterpret_cast<uint2*>(XT16(c) + t * ldx + k) =
                                make_uint2(pack_half2(v.x * a, v.y * a), pack_half2(v.z * a, v.w * a));
                        }
                    }
                    return;
                }
                // state warps: two tokens of one 4-column piece per item, so XS^T gets (t, t+1)
                // pairs: 4-byte stores
                constexpr int PAIRS = kL / 2 * Q;
                static_assert(PAIRS % NT == 0, "whole rounds");
                unsigned char* xs = XST(c);
#pragma unroll
                for (int u = 0; u < PAIRS / NT; ++u) {
                    const int i = threadIdx.x - NT + u * NT;
                    const int t = 2 * (i / Q), k = (i % Q) * 4;
                    const float4 v0 = *reinterpret_cast<const float4*>(xr + t * PT + k);
                    const float4 v1 = *reinterpret_cast<const float4*>(xr + (t + 1) * PT + k);
                    const float w0 = cum[dct::kWs + t], w1 = cum[dct::kWs + t + 1];
                    *reinterpret_cast<uint32_t*>(xs + wg::sw128_offset_k64(k, t)) = pack_half2(v0.x * w0, v1.x * w1);
                    *reinterpret_cast<uint32_t*>(xs + wg::sw128_offset_k64(k + 1, t)) = pack_half2(v0.y * w0, v1.y * w1);
                    *reinterpret_cast<uint32_t*>(xs + wg::sw128_offset_k64(k + 2, t)) = pack_half2(v0.z * w0, v1.z * w1);
                    *reinterpret_cast<uint32_t*>(xs + wg::sw128_offset_k64(k + 3, t)) = pack_half2(v0.w * w0, v1.w * w1);
                }
                wg::fence_smem_for_async();   // XS^T is read by wgmma after the barrier
                return;
            }
        }
        if constexpr (!WG && CBPRE && (kThreads / 2) % Q == 0 && kL % (kThreads / 2 / Q) == 0) {
            if (p.x_vec && nt == kL && pvalid == PT) {
                // The state warps have about half the y warps' instructions per chunk (ncu, granite
                // 4096 x 1: 105 vs 209 per warp), so they convert alone and the y warps go on.
                // Measured against all 16 warps converting (H200, same call): 4096 x 1 106.7 ->
                // 105.4 us, 512 x 1 18.3 -> 18.2, 512 x 8 equal (predicted 10-15%: the y warps'
                // instruction count is not what sets a chunk's time).
                if (is_state) fast(std::integral_constant<int, kThreads / 2>{}, threadIdx.x - kThreads / 2);
                return;
            }
        }
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
            const float w = CBPRE ? cum[dct::kWs + t] : delta[t] * __expf(cum_last - cum[t]);
            __half2 a0 = __floats2half2_rn(v.x, v.y), a1 = __floats2half2_rn(v.z, v.w);
            __half2 b0 = __floats2half2_rn(v.x * w, v.y * w), b1 = __floats2half2_rn(v.z * w, v.w * w);
            uint2 pa, pb;
            pa.x = *reinterpret_cast<uint32_t*>(&a0); pa.y = *reinterpret_cast<uint32_t*>(&a1);
            pb.x = *reinterpret_cast<uint32_t*>(&b0); pb.y = *reinterpret_cast<uint32_t*>(&b1);
            if constexpr (!WM) *reinterpret_cast<uint2*>(X + t * ldx + k) = pa;
            if constexpr (WG) {
                unsigned char* xs = XST(c);
                const float wv[4] = {v.x * w, v.y * w, v.z * w, v.w * w};
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    *reinterpret_cast<__half*>(xs + wg::sw128_offset_k64(k + e, t)) = __float2half_rn(wv[e]);
                if constexpr (WM) {
                    unsigned char* xt = reinterpret_cast<unsigned char*>(X);
                    const float xv[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                    for (int e = 0; e < 4; ++e)
                        *reinterpret_cast<__half*>(xt + wg::sw128_offset_k64(k + e, t)) = __float2half_rn(xv[e]);
                }
            } else {
                *reinterpret_cast<uint2*>(XS + t * ldx + k) = pb;
            }
            if constexpr (CBPRE && !WM) {
                // only blocks 0-2 are read (off-diagonal blocks of later row groups)
                if (t < kL - 16) {
                    const float wt = cum[dct::kWt + t];
                    __half2 c0 = __floats2half2_rn(v.x * wt, v.y * wt), c1 = __floats2half2_rn(v.z * wt, v.w * wt);
                    uint2 pc;
                    pc.x = *reinterpret_cast<uint32_t*>(&c0); pc.y = *reinterpret_cast<uint32_t*>(&c1);
                    *reinterpret_cast<uint2*>(XT16(c) + t * ldx + k) = pc;
                }
            }
            // the kept-state path reads raw x from the stage; give it what plain loads saw
            if (!p.x_vec && p.K > 1) *reinterpret_cast<float4*>(xr + t * PT + k) = v;
        }
        if constexpr (WG) wg::fence_smem_for_async();
    };

    // One 16x16 block (0..9, on and below the diagonal) of chunk c's
    // M[t][s] = (C B^T)[t][s] exp(cum_t - cum_s) delta_s, s <= t, as fp16 into MS16(c).
    auto masked_cb_block = [&](int c, int blk) {
        const __half* Bc = B16(c);
        const __half* Cc = C16(c);
        const float* cum = cum_of(c);
        const float* delta = cum + kL;
        __half* M = MS16(c);
        int rg, jj;
        cb_block_pos(blk, rg, jj);
        float gacc[2][4];
        cb_block<NS>(gacc, Bc, Cc, ldbc, rg, jj, lane);
        const int ta = rg * 16 + gr, tb = ta + 8;
        const float ca = cum[ta], cb = cum[tb];
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int sidx = jj * 16 + half * 8 + 2 * qd;
            const float cs0 = cum[sidx], cs1 = cum[sidx + 1];
            const float d0 = delta[sidx], d1 = delta[sidx + 1];
            const float m00 = masked_exp(sidx <= ta, ca - cs0, gacc[half][0] * d0);
            const float m01 = masked_exp(sidx + 1 <= ta, ca - cs1, gacc[half][1] * d1);
            const float m10 = masked_exp(sidx <= tb, cb - cs0, gacc[half][2] * d0);
            const float m11 = masked_exp(sidx + 1 <= tb, cb - cs1, gacc[half][3] * d1);
            *reinterpret_cast<__half2*>(M + ta * ldm + sidx) = __floats2half2_rn(m00, m01);
            *reinterpret_cast<__half2*>(M + tb * ldm + sidx) = __floats2half2_rn(m10, m11);
        }
    };

    // y warps: tokens [16 rg, 16 rg + 16), columns [PH ph, PH ph + PH) of chunk c:
    // exp(cum_t) C S_in + M x. Warp w runs on scheduler w % 4: the heaviest row group shares a
    // scheduler with the lightest.
    const int yph = warp >> 2;
    // WG: warp w of a warpgroup holds rows 16 w of its wgmma accumulator
    const int yrg = (yph && !WG) ? 3 - (warp & 3) : (warp & 3);
    // y of this lane's first row (token 16 yrg + gr of chunk 0) and the step between tokens
    float* const ybase = p.out + (size_t)p.P * (h + (size_t)p.H * (yrg * 16 + gr + (size_t)p.T * q)) + p0 + yph * (PT / 2) + 2 * (lane & 3);
    const size_t ystep = (size_t)p.P * p.H;
    const size_t ystep8 = 8 * ystep, ychunk = kL * ystep;   // rows gr + 8 and the next chunk
    // y of chunk c (this warp's rows and columns, accumulator layout) to the output
    auto store_y = [&](int c, const float (&y)[NJH][4]) {
        const int t0 = c * kL, nt = min(kL, p.T - t0);
        const int r0 = yrg * 16;
        if (p.y_vec && pvalid == PT && nt == kL) {   // whole tile inside y: no bounds checks
            float* const yrow0 = ybase + unsigned(c) * ychunk;
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                float* yrow = yrow0 + hh * ystep8;
#pragma unroll
                for (int j = 0; j < NJH; ++j) *reinterpret_cast<float2*>(yrow + j * 8) = make_float2(y[j][2 * hh], y[j][2 * hh + 1]);
            }
            return;
        }
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            const int t = r0 + gr + hh * 8;
            if (t < nt) {
                float* yrow = p.out + (size_t)p.P * (h + (size_t)p.H * (t0 + t + (size_t)p.T * q)) + p0;
#pragma unroll
                for (int j = 0; j < NJH; ++j) {
                    const int pp = yph * PH + j * 8 + 2 * qd;
                    if (pp + 1 < pvalid && p.y_vec) {
                        *reinterpret_cast<float2*>(yrow + pp) = make_float2(y[j][2 * hh], y[j][2 * hh + 1]);
                    } else {
                        if (pp < pvalid) yrow[pp] = y[j][2 * hh];
                        if (pp + 1 < pvalid) yrow[pp + 1] = y[j][2 * hh + 1];
                    }
                }
            }
        }
    };
    auto chunk_y = [&](int c) {
        const __half* Cc = C16(c);
        const float* cum = cum_of(c);
        const int t0 = c * kL, nt = min(kL, p.T - t0);
        const int r0 = yrg * 16;
        float y[NJH][4];
#pragma unroll
        for (int j = 0; j < NJH; ++j) y[j][0] = y[j][1] = y[j][2] = y[j][3] = 0.f;
        const __half* Sin = S16(c) + yph * PH;
        if constexpr (WG) {
            // C S_in on the warpgroup (rows 0-63, this group's PH columns), asynchronous: the
            // masked part below runs on mma.sync meanwhile, and y is read only after the wait
            float(&yf)[PH / 2] = *reinterpret_cast<float(*)[PH / 2]>(&y[0][0]);
            const uint64_t da = wg::sw128_desc(smem_u32(stage(c) + size_t(NS) * kL * 2));
            const uint64_t db = wg::sw128_desc(smem_u32(S16(c))) + (yph ? wg::sw128_step(PT, PH, 0) : 0);
            wg::pin(yf);   // every write of the accumulators before the fence (else ptxas serializes)
            wg::fence();
#pragma unroll
            for (int ks = 0; ks < NS / 16; ++ks)
                wg::mma_m64<PH>(yf, da + wg::sw128_step(kL, 0, 16 * ks), db + wg::sw128_step(PT, 0, 16 * ks), ks > 0);
            wg::commit();
        } else if constexpr (CBPRE) {
            // C S_in heads each chunk's critical path: the fragments of a group of k-steps are
            // loaded before its mma (ldmatrix latency paid once per group), and even and odd
            // k-steps accumulate separately (two dependent chains of half the length).
            constexpr int KS = NS / 16, GRP = NJH <= 2 ? KS : (KS >= 4 ? KS / 2 : KS);
            float y2[NJH][4];
#pragma unroll
            for (int j = 0; j < NJH; ++j) y2[j][0] = y2[j][1] = y2[j][2] = y2[j][3] = 0.f;
#pragma unroll
            for (int k0 = 0; k0 < KS; k0 += GRP) {
                uint32_t a[GRP][4], b[GRP][NJH][2];
#pragma unroll
                for (int k = 0; k < GRP; ++k) {
                    ldsm_x4(a[k][0], a[k][1], a[k][2], a[k][3],
                            Cc + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ldbc + (k0 + k) * 16 + (lane >> 4) * 8);
                    load_b_kn<NJH>(b[k], Sin, ldx, (k0 + k) * 16, lane);
                }
#pragma unroll
                for (int k = 0; k < GRP; ++k)
#pragma unroll
                    for (int j = 0; j < NJH; ++j) mma16816((k & 1) ? y2[j] : y[j], a[k], b[k][j][0], b[k][j][1]);
            }
#pragma unroll
            for (int j = 0; j < NJH; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) y[j][e] += y2[j][e];
        } else {
#pragma unroll
            for (int k = 0; k < NS / 16; ++k) {
                uint32_t a[4];
                ldsm_x4(a[0], a[1], a[2], a[3], Cc + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ldbc + k * 16 + (lane >> 4) * 8);
                uint32_t b[NJH][2];
                load_b_kn<NJH>(b, Sin, ldx, k * 16, lane);
#pragma unroll
                for (int j = 0; j < NJH; ++j) mma16816(y[j], a, b[j][0], b[j][1]);
            }
        }
        const float e0 = CBPRE ? cum[dct::kRowE + r0 + gr] : __expf(cum[r0 + gr]);
        const float e1 = CBPRE ? cum[dct::kRowE + r0 + gr + 8] : __expf(cum[r0 + gr + 8]);
        if constexpr (!CBPRE) {
#pragma unroll
            for (int j = 0; j < NJH; ++j) { y[j][0] *= e0; y[j][1] *= e0; y[j][2] *= e1; y[j][3] *= e1; }
        }
        const __half* X = X16(c) + yph * PH;
        if constexpr (!CBPRE) {
            const __half* M = MS16(c);
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                if (kk <= yrg) {
                    uint32_t a[4];
                    ldsm_x4(a[0], a[1], a[2], a[3], M + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ldm + kk * 16 + (lane >> 4) * 8);
                    uint32_t b[NJH][2];
                    load_b_kn<NJH>(b, X, ldx, kk * 16, lane);
#pragma unroll
                    for (int j = 0; j < NJH; ++j) mma16816(y[j], a, b[j][0], b[j][1]);
                }
            }
        } else {
            // M = (C B^T) o D with D[t][s] = exp(cum_t - cum_s) delta_s, s <= t, from the raw
            // C B^T of ssd_prep. Below the diagonal D factors through the block ends b_j = 16 j + 15
            // (every factor <= 1, so nothing overflows fp16): for s in block j < rg,
            // D[t][s] = exp(cum_t - cum_{b_{rg-1}}) exp(cum_{b_{rg-1}} - cum_{b_j}) XT-weight(s),
            // summed Horner-style over j. The diagonal block is masked in registers with the decay
            // rows of ssd_prep (fp32 products, one rounding to fp16).
            const __half* CB = CB16(c);
            const float* F = cum;
            // y = exp(cum_t) C S_in + g_t o + d, combined once C S_in is there
            float o[NJH][4];
#pragma unroll
            for (int j = 0; j < NJH; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
            float g0 = 0.f, g1 = 0.f;
            if (yrg > 0) {
                const __half* XT = XT16(c) + yph * PH;
#pragma unroll
                for (int jb = 0; jb < 3; ++jb) {
                    if (jb < yrg) {
                        if (jb > 0) {
                            const float f = F[dct::kBlkF + jb];
#pragma unroll
                            for (int j = 0; j < NJH; ++j) { o[j][0] *= f; o[j][1] *= f; o[j][2] *= f; o[j][3] *= f; }
                        }
                        uint32_t a[4];
                        ldsm_x4(a[0], a[1], a[2], a[3], CB + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * kCbLd + jb * 16 + (lane >> 4) * 8);
                        uint32_t b[NJH][2];
                        load_b_kn<NJH>(b, XT, ldx, jb * 16, lane);
#pragma unroll
                        for (int j = 0; j < NJH; ++j) mma16816(o[j], a, b[j][0], b[j][1]);
                    }
                }
                g0 = F[dct::kRowF + r0 + gr];
                g1 = F[dct::kRowF + r0 + gr + 8];
            }
            // diagonal block in the m16n8k16 A layout: a0 = (ta, s0..s0+1), a1 = (tb, s0..),
            // a2 = (ta, s0+8..) (above the diagonal: zero), a3 = (tb, s0+8..)
            uint32_t a[4];
            const __half* dg = CB + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * kCbLd + r0 + (lane >> 4) * 8;
            ldsm_x4(a[0], a[1], a[2], a[3], dg);
            {
                const float* L = F + dct::kDiag;
                const int ta = r0 + gr, tb = ta + 8;
                auto h2f = [](uint32_t r) { return __half22float2(*reinterpret_cast<const __half2*>(&r)); };
                auto scale2f = [](float2 f, float2 w) {   // f w, rounded to fp16 once
                    const __half2 o2 = __floats2half2_rn(f.x * w.x, f.y * w.y);
                    return *reinterpret_cast<const uint32_t*>(&o2);
                };
                auto scale2 = [&](uint32_t r, float2 w) { return scale2f(h2f(r), w); };
                if constexpr (LO) {
                    // lo of s < t through .trans from [s][t] (matrix 2 holds a1's, matrix 1 none);
                    // on the diagonal (lane qd = gr / 2, element gr & 1) from the padding column
                    uint32_t lo[4];
                    ldsm_x4_t(lo[0], lo[2], lo[1], lo[3], dg);
                    if (qd == (gr >> 1)) {   // shifts, not a dynamic index (that would go to local memory)
                        const int sh = (gr & 1) * 16;
                        const uint32_t keep = ~(0xffffu << sh);
                        lo[0] = (lo[0] & keep) | (uint32_t(__half_as_ushort(CB[ta * kCbLd + kL])) << sh);
                        lo[3] = (lo[3] & keep) | (uint32_t(__half_as_ushort(CB[tb * kCbLd + kL])) << sh);
                    }
                    auto add_lo = [&](uint32_t h, uint32_t l) {   // hi + lo in fp32
                        const float2 f = h2f(h), g = h2f(l);
                        return make_float2(f.x + g.x, f.y + g.y);
                    };
                    a[0] = scale2f(add_lo(a[0], lo[0]), *reinterpret_cast<const float2*>(L + ta * 16 + 2 * qd));
                    a[1] = scale2f(add_lo(a[1], lo[1]), *reinterpret_cast<const float2*>(L + tb * 16 + 2 * qd));
                    a[2] = 0u;
                    a[3] = scale2f(add_lo(a[3], lo[3]), *reinterpret_cast<const float2*>(L + tb * 16 + 8 + 2 * qd));
                } else {
                    a[0] = scale2(a[0], *reinterpret_cast<const float2*>(L + ta * 16 + 2 * qd));
                    a[1] = scale2(a[1], *reinterpret_cast<const float2*>(L + tb * 16 + 2 * qd));
                    a[2] = 0u;
                    a[3] = scale2(a[3], *reinterpret_cast<const float2*>(L + tb * 16 + 8 + 2 * qd));
                }
            }
            uint32_t b[NJH][2];
            load_b_kn<NJH>(b, X, ldx, r0, lane);
            float d[NJH][4];   // its own accumulator: not chained behind C S_in
#pragma unroll
            for (int j = 0; j < NJH; ++j) {
                d[j][0] = d[j][1] = d[j][2] = d[j][3] = 0.f;
                mma16816(d[j], a, b[j][0], b[j][1]);
            }
            if constexpr (WG) {
                wg::wait<0>();
                wg::pin(*reinterpret_cast<float(*)[PH / 2]>(&y[0][0]));
            }
#pragma unroll
            for (int j = 0; j < NJH; ++j) {
                y[j][0] = e0 * y[j][0] + g0 * o[j][0] + d[j][0];
                y[j][1] = e0 * y[j][1] + g0 * o[j][1] + d[j][1];
                y[j][2] = e1 * y[j][2] + g1 * o[j][2] + d[j][2];
                y[j][3] = e1 * y[j][3] + g1 * o[j][3] + d[j][3];
            }
        }
        store_y(c, y);
    };

    // WM y warps: y = exp(cum_t) (C S_in) + M x as two wgmma chains of the warpgroup (rows 0-63,
    // this group's PH columns), C S_in over d_state (C and S_in as in v9) and M x over the chunk's
    // tokens (M: ssd_prep's masked tile of this head; x^T as [p][t]); issued, then the next
    // chunk's x^T is converted meanwhile, then y_finish waits and combines.
    float ycs[PH / 2], ymx[PH / 2];
    auto y_issue = [&](int c) {
      if constexpr (WM) {
        const uint64_t dcm = wg::sw128_desc(smem_u32(stage(c) + size_t(NS) * kL * 2));
        const uint64_t dsi = wg::sw128_desc(smem_u32(S16(c))) + (yph ? wg::sw128_step(PT, PH, 0) : 0);
        const uint64_t dmm = wg::sw128_desc(smem_u32(stage(c) + LY::bc_bytes));
        const uint64_t dxt = wg::sw128_desc(smem_u32(X16(c))) + (yph ? wg::sw128_step(PT, PH, 0) : 0);
        wg::pin(ycs);
        wg::pin(ymx);
        wg::fence();
#pragma unroll
        for (int ks = 0; ks < NS / 16; ++ks)
            wg::mma_m64<PH>(ycs, dcm + wg::sw128_step(kL, 0, 16 * ks), dsi + wg::sw128_step(PT, 0, 16 * ks), ks > 0);
#pragma unroll
        for (int kk = 0; kk < kL / 16; ++kk)
            wg::mma_m64<PH>(ymx, dmm + wg::sw128_step(kL, 0, 16 * kk), dxt + wg::sw128_step(PT, 0, 16 * kk), kk > 0);
        wg::commit();
      }
    };
    auto y_finish = [&](int c) {
      if constexpr (WM) {
        wg::wait<0>();
        wg::pin(ycs);
        wg::pin(ymx);
        const float* cum = cum_of(c);
        const float e0 = cum[dct::kRowE + yrg * 16 + gr], e1 = cum[dct::kRowE + yrg * 16 + gr + 8];
        float y[NJH][4];
#pragma unroll
        for (int j = 0; j < NJH; ++j) {
            y[j][0] = e0 * ycs[4 * j] + ymx[4 * j];
            y[j][1] = e0 * ycs[4 * j + 1] + ymx[4 * j + 1];
            y[j][2] = e1 * ycs[4 * j + 2] + ymx[4 * j + 2];
            y[j][3] = e1 * ycs[4 * j + 3] + ymx[4 * j + 3];
        }
        store_y(c, y);
      }
    };
    // state warps: S = exp(cum_last) S + B^T XS for chunk c; S as fp16 for chunk c+1's C S_in.
    // WG: the update as four wgmma steps on the warpgroup's 64 rows of S (issued here; the
    // state warps convert the next chunk's x meanwhile, then state_finish waits and stores S16)
    const int wrow = 64 * (sw >> 2);
    auto state_issue = [&](int c) {
      if constexpr (WG) {
        const float el = cum_of(c)[dct::kEl];
        float(&Sf)[PT / 2] = *reinterpret_cast<float(*)[PT / 2]>(&S[0][0][0]);
#pragma unroll
        for (int i = 0; i < PT / 2; ++i) Sf[i] *= el;
        const uint64_t da = wg::sw128_desc(smem_u32(stage(c))) + (wrow ? wg::sw128_step(NS, 64, 0) : 0);
        const uint64_t db = wg::sw128_desc(smem_u32(XST(c)));
        wg::pin(Sf);
        wg::fence();
#pragma unroll
        for (int kk = 0; kk < kL / 16; ++kk)
            wg::mma_m64<PT>(Sf, da + wg::sw128_step(NS, 0, 16 * kk), db + wg::sw128_step(PT, 0, 16 * kk), true);
        wg::commit();
      }
    };
    auto state_finish = [&](int c) {
      if constexpr (WG) {
        wg::wait<0>();
        wg::pin(*reinterpret_cast<float(*)[PT / 2]>(&S[0][0][0]));
        if (c + 1 < p.nch) store_s16(S16(c + 1));
      }
    };
    auto chunk_state = [&](int c) {
        const __half* Bc = B16(c);
        const float el = CBPRE ? cum_of(c)[dct::kEl] : __expf(cum_of(c)[kL - 1]);
#pragma unroll
        for (int u = 0; u < UPW; ++u)
#pragma unroll
            for (int j = 0; j < NJH; ++j)
#pragma unroll
                for (int r = 0; r < 4; ++r) S[u][j][r] *= el;
        const __half* XS = XS16(c);
        if constexpr (CBPRE && UPW * NJH <= 4) {   // all fragments first (48 registers)
            uint32_t a[4][4], b[4][UPW][NJH][2];
            const int n0 = u_mt(0) * 16;
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                ldsm_x4_t(a[kk][0], a[kk][1], a[kk][2], a[kk][3],
                          Bc + (kk * 16 + (lane & 7) + (lane >> 4) * 8) * ldbc + n0 + ((lane >> 3) & 1) * 8);
#pragma unroll
                for (int u = 0; u < UPW; ++u) load_b_kn<NJH>(b[kk][u], XS + u_ph(u) * PH, ldx, kk * 16, lane);
            }
#pragma unroll
            for (int kk = 0; kk < 4; ++kk)
#pragma unroll
                for (int u = 0; u < UPW; ++u)
#pragma unroll
                    for (int j = 0; j < NJH; ++j) mma16816(S[u][j], a[kk], b[kk][u][j][0], b[kk][u][j][1]);
        } else {
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
                uint32_t a[4];
                const int n0 = u_mt(0) * 16;   // all units of a warp share the rows
                const __half* ptr = Bc + (kk * 16 + (lane & 7) + (lane >> 4) * 8) * ldbc + n0 + ((lane >> 3) & 1) * 8;
                ldsm_x4_t(a[0], a[1], a[2], a[3], ptr);
#pragma unroll
                for (int u = 0; u < UPW; ++u) {
                    uint32_t b[NJH][2];
                    load_b_kn<NJH>(b, XS + u_ph(u) * PH, ldx, kk * 16, lane);
#pragma unroll
                    for (int j = 0; j < NJH; ++j) mma16816(S[u][j], a, b[j][0], b[j][1]);
                }
            }
        }
        if (c + 1 < p.nch) store_s16(S16(c + 1));
    };

    // Kept states whose token falls in chunk c (rare: K > 1): exp(cum_tau) S_in + B^T (x weighted
    // up to tau). Block-uniform condition, so block barriers order the KX buffer (S16(c+1), free
    // until the state update of chunk c stores into it).
    auto chunk_kept = [&](int c) {
        const int t0 = c * kL, nt = min(kL, p.T - t0);
        const float* cum = cum_of(c);
        const float* delta = cum + kL;
        const float* xr = xraw(c);
        const __half* Bc = B16(c);
        for (int k = 1; k < p.K && k < p.T; ++k) {
            const int tau = p.T - 1 - k;
            if (tau < t0 || tau >= t0 + kL) continue;
            const int e = tau - t0;
            __half* KX = S16(c + 1);
            const float ce = cum[e];
            for (int i = threadIdx.x; i < kL * PT / 2; i += kThreads) {
                const int t = i / (PT / 2), kx = (i % (PT / 2)) * 2;
                const float2 v = (t < nt && kx < pvalid) ? *reinterpret_cast<const float2*>(xr + t * PT + kx)
                                                         : make_float2(0.f, 0.f);
                const float w = t <= e ? delta[t] * __expf(ce - cum[t]) : 0.f;
                if constexpr (WG) {   // x^T swizzled, as XS^T
                    unsigned char* kx8 = reinterpret_cast<unsigned char*>(KX);
                    *reinterpret_cast<__half*>(kx8 + wg::sw128_offset_k64(kx, t)) = __float2half_rn(v.x * w);
                    *reinterpret_cast<__half*>(kx8 + wg::sw128_offset_k64(kx + 1, t)) = __float2half_rn(v.y * w);
                } else {
                    *reinterpret_cast<__half2*>(KX + t * ldx + kx) = __floats2half2_rn(v.x * w, v.y * w);
                }
            }
            if constexpr (WG) wg::fence_smem_for_async();
            __syncthreads();
            if constexpr (WG) {
                if (is_state) {
                    const float ee = __expf(ce);
                    float* blk = p.out + ysz + (size_t)k * ssz + slab;
                    float acc[PT / 2];
#pragma unroll
                    for (int i = 0; i < PT / 2; ++i) acc[i] = 0.f;
                    const uint64_t da = wg::sw128_desc(smem_u32(stage(c))) + (wrow ? wg::sw128_step(NS, 64, 0) : 0);
                    const uint64_t db = wg::sw128_desc(smem_u32(KX));
                    wg::pin(acc);
                    wg::fence();
#pragma unroll
                    for (int kk = 0; kk < kL / 16; ++kk)
                        wg::mma_m64<PT>(acc, da + wg::sw128_step(NS, 0, 16 * kk), db + wg::sw128_step(PT, 0, 16 * kk), kk > 0);
                    wg::commit();
                    wg::wait<0>();
                    wg::pin(acc);
                    const float* Sf = &S[0][0][0];
#pragma unroll
                    for (int i = 0; i < PT / 2; ++i) {
                        const int jt = i >> 2, r = i & 3;
                        const int n = 16 * sw + gr + (r >> 1) * 8, pp = 8 * jt + 2 * qd + (r & 1);
                        if (n < p.N && pp < pvalid) blk[n + (size_t)p.N * pp] = ee * Sf[i] + acc[i];
                    }
                }
            } else if (state_active) {
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
                        const __half* ptr = Bc + (kk * 16 + (lane & 7) + (lane >> 4) * 8) * ldbc + n0 + ((lane >> 3) & 1) * 8;
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
            __syncthreads();   // KX reads done before the next kept token or the state store
        }
    };

    // ---- the walk: chunk 0's state-independent part first, then one barrier per chunk
    wait_stage(0);
    SSD_TL(2);
    SSD_TRACE(4);
    convert_x(0);
    if constexpr (!CBPRE) {
        if (warp < 10) masked_cb_block(0, warp);
    }
    __syncthreads();
    SSD_TRACE(4);
    // Chunk c+1's stage is waited for only after chunk c's own work, so with two stages (tiles of
    // 64) its copy, issued at the end of the previous iteration, still overlaps that work.
    for (int c = 0; c < p.nch; ++c) {
        if (kStages >= 3) issue(c + 2);   // into the slot of chunk c-1, free since the last barrier
        const bool ahead = c + 1 < p.nch;
        chunk_kept(c);
        if constexpr (WG) {
            // each role's wgmma issue and wait in one branch (ptxas serializes them otherwise);
            // the state warps convert the next chunk's x while their update runs
            if (!is_state) {
                if constexpr (WM) {
                    y_issue(c);
                    SSD_TRACE(0);
                    if (ahead) {
                        wait_stage(c + 1);
                        SSD_TRACE(1);
                        convert_x(c + 1);
                        SSD_TRACE(2);
                    }
                    y_finish(c);
                } else {
                    chunk_y(c);
                    SSD_TRACE(0);
                    if (ahead) {
                        wait_stage(c + 1);
                        SSD_TRACE(1);
                        convert_x(c + 1);
                        SSD_TRACE(2);
                    }
                }
            } else {
                state_issue(c);
                SSD_TRACE(0);
                if (ahead) {
                    wait_stage(c + 1);
                    SSD_TRACE(1);
                    convert_x(c + 1);
                    SSD_TRACE(2);
                }
                state_finish(c);
            }
            SSD_TRACE(0);   // WG: the wgmma wait and the stores after it count as own work
            __syncthreads();
            SSD_TRACE(3);
            if (kStages == 2) issue(c + 2);
            continue;
        }
        if (!is_state) chunk_y(c);
        else if (state_active) chunk_state(c);
        SSD_TRACE(0);
        if (ahead) {
            wait_stage(c + 1);
            SSD_TRACE(1);
            if constexpr (!CBPRE) {
                if (!is_state) {
                    if (warp == 0 || warp == 7) masked_cb_block(c + 1, warp == 0 ? 8 : 9);
                } else {
                    masked_cb_block(c + 1, sw);
                }
            }
            convert_x(c + 1);
        }
        SSD_TRACE(2);
        __syncthreads();
        SSD_TRACE(3);
        if (kStages == 2) issue(c + 2);   // into chunk c's slot, released by that barrier
    }

    SSD_TL(3);
    // ---- epilogue: the final state through the staging buffer, stored with 16-byte writes
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
    SSD_TRACE_PRINT;
}

template <int NS, int PT, bool CBPRE, bool WG = false, bool WM = false, bool LO = false>
bool launch_variant(const ssd_params& p, cudaStream_t stream) {
    using LY = pipe_layout<NS, PT, CBPRE, WG, WM>;
    if (!raise_smem_limit<ssd_main_pipe<NS, PT, CBPRE, WG, WM, LO>>(LY::total)) return false;
    const int n_pt = (p.P + PT - 1) / PT;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(unsigned(n_pt * p.H), unsigned(p.S));
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = LY::total;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    if (cudaLaunchKernelEx(&cfg, ssd_main_pipe<NS, PT, CBPRE, WG, WM, LO>, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return true;
}

template <int NS, int PT>
bool launch_ns(const ssd_params& p, cudaStream_t stream) {
    if constexpr (PT == 80) {   // C B^T tile + XT16 do not fit next to tiles of 80
        return !p.cb_pre && launch_variant<NS, PT, false>(p, stream);
    } else {
        if constexpr (NS == 128) {
            if (p.wm) return p.wg && p.cb_pre && launch_variant<NS, PT, true, true, true>(p, stream);
            if (p.wg) return p.cb_pre && launch_variant<NS, PT, true, true>(p, stream);
        }
        if (p.wg || p.wm) return false;   // ssd_prep wrote the v9/v10 tiles: only those walks read them
        if (!p.cb_pre) return launch_variant<NS, PT, false>(p, stream);
        return p.cb_lo ? launch_variant<NS, PT, true, false, false, true>(p, stream) : launch_variant<NS, PT, true>(p, stream);
    }
}

}  // namespace

bool launch_main_pipe(const ssd_params& p, int NS, int PT, cudaStream_t stream) {
    if (PT == 32) {
        switch (NS) {
            case 32: return launch_ns<32, 32>(p, stream);
            case 64: return launch_ns<64, 32>(p, stream);
            case 128: return launch_ns<128, 32>(p, stream);
        }
    } else if (PT == 64) {
        switch (NS) {
            case 32: return launch_ns<32, 64>(p, stream);
            case 64: return launch_ns<64, 64>(p, stream);
            case 128: return launch_ns<128, 64>(p, stream);
        }
    } else if (PT == 80) {
        switch (NS) {
            case 32: return launch_ns<32, 80>(p, stream);
            case 64: return launch_ns<64, 80>(p, stream);
            case 128: return launch_ns<128, 80>(p, stream);
        }
    }
    return false;
}

}  // namespace ssmkit::cuda::ssd
