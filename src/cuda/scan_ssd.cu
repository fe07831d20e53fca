// Chunked (SSD) Mamba-2 prefill scan on tensor cores. Design and measurements:
// docs/perf-ssd-notes.md.
//
// The default for d_state 128, K = 1 and head_dim % 64 == 0 on sm_90a is the v11 walk
// (scan_ssd_wg1.cu: one warpgroup per head and 64 columns, every product on wgmma). When its
// blocks fill the SMs it runs after ssd_prep (C B^T, the swizzled B^T/C tile, the tables) and a
// second warpgroup of the walk masks C B^T (two launches); else ssd_prep_beside computes the
// tiles, tables and masks chunk by chunk on the SMs the walk leaves free while the walk waits on
// per-item flags (two launches side by side). Each launch with programmatic dependent launch.
// Everything else:
// two launches (the second with programmatic dependent launch, so its prologue overlaps the first):
//   ssd_prep  grid (chunk, sequence, part): B and C rounded to fp16 once, into padded tiles that
//             the walk copies with one bulk copy (they are shared by every head of a group:
//             converting them per head would multiply the walk's L2 traffic), the chunk's C B^T
//             per group (no decay; the walk applies each head's decay), and per head softplus(dt),
//             the in-chunk cumulative sum of dt*A and every decay factor the walk needs (dct::).
//   ssd_main_pipe (scan_ssd_pipe.cu) one block per (sequence, head, head_dim tile) that walks
//             the chunks in order and keeps the running state in registers, so the inter-chunk
//             pass needs no workspace round trip and no extra launch; chunk c+1's
//             state-independent work overlaps chunk c's y and state update.
//
// Operands are fp16 with fp32 accumulation (m16n8k16 mma.sync): fp16 keeps 11 significant bits
// like tf32 but runs at twice the rate and allows ldmatrix; bf16 (8 bits) fails the 5e-7 bound.
// C B^T alone takes B and C as fp16 hi + lo pairs (cb_block_split): where it cancels, their
// fp16 rounding alone took the error past the bound (5.85e-7 on an H200).
#include "cuda/scan_ssd.h"
#include "cuda/knobs.h"
#include "cuda/launch.h"
#include "cuda/pdl.cuh"
#include "cuda/ssd_device.cuh"
#include "cuda/wgmma.cuh"

#include <cuda.h>            // CUtensorMap (types only; the encoder comes through the runtime)
#include <cuda_fp16.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace {

using namespace ssmkit::cuda::ssd;
namespace wg = ssmkit::cuda::wg;

// Diagnostic build only (-DSSMKIT_SSD_TRACE): two %globaltimer marks inside each ssd_prep block
// (loads done; the block's middle step done), printed with its start and end.
#ifdef SSMKIT_SSD_TRACE
}  // namespace
#include <cstdio>
namespace {
__device__ __forceinline__ unsigned long long* prep_tl_slots() {
    __shared__ unsigned long long s[2];
    return s;
}
#define PREP_TL(k) do { if (threadIdx.x == 0) prep_tl_slots()[k] = globaltimer_ns(); } while (0)
#else
#define PREP_TL(k) do { } while (0)
#endif

// Four consecutive fp32 values of row tg of B (which = 0) or C (which = 1), group g, from
// column n; zero past the sequence and past N.
__device__ __forceinline__ float4 load_bc4(const ssd_params& p, int q, int g, int which, int tg, int n) {
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (tg >= p.T) return v;
    const float* src = which ? p.C + g * p.c_g + (long long)tg * p.c_t + (long long)q * p.c_q
                             : p.B + g * p.b_g + (long long)tg * p.b_t + (long long)q * p.b_q;
    if (p.bc_vec && n + 3 < p.N) return __ldg(reinterpret_cast<const float4*>(src + n));
    if (n < p.N) v.x = __ldg(src + n);
    if (n + 1 < p.N) v.y = __ldg(src + n + 1);
    if (n + 2 < p.N) v.z = __ldg(src + n + 2);
    if (n + 3 < p.N) v.w = __ldg(src + n + 3);
    return v;
}

// ---------------------------------------------------------------------------------------------
// The C B^T blocks of ssd_prep, one per (chunk, sequence, group): the chunk's B and C rounded to
// fp16 into the padded tile the walk copies with one bulk copy (the same for every head of the
// group), and C B^T from those fp16 operands (so the walk's products see the same values) with
// fp32 accumulation, stored as fp16 without decay: computing it once here replaces 160 mma per
// chunk in every walk block (48 per group for granite).
// The chunk's B and C (group g) rounded to fp16 into sbc, rows padded to bc_ld (B rows then C
// rows), and when lo is given their rounding errors times kCbSplitScale into lo (same layout);
// the caller synchronizes before reading them.
template <int NS>
__device__ __forceinline__ void load_bc_tile(const ssd_params& p, int c, int q, int g, __half* sbc, __half* lo) {
    constexpr int ld = bc_ld<NS>();
    constexpr int kPerThread = 2 * kL * (NS / 4) / kPrepThreads;
    static_assert(kPerThread >= 1, "d_state >= 32");
    const int t0 = c * kL;
    float4 v[kPerThread];
#pragma unroll
    for (int u = 0; u < kPerThread; ++u) {
        const int i = threadIdx.x + u * kPrepThreads;
        const int n = (i % (NS / 4)) * 4, r = i / (NS / 4);
        v[u] = load_bc4(p, q, g, r / kL, t0 + r % kL, n);
    }
#pragma unroll
    for (int u = 0; u < kPerThread; ++u) {
        const int i = threadIdx.x + u * kPrepThreads;
        const int n = (i % (NS / 4)) * 4, r = i / (NS / 4);
        __half2* d = reinterpret_cast<__half2*>(sbc + r * ld + n);
        const __half2 h0 = __floats2half2_rn(v[u].x, v[u].y), h1 = __floats2half2_rn(v[u].z, v[u].w);
        d[0] = h0;
        d[1] = h1;
        if (lo) {   // block-uniform; v - fp16(v) is exact in fp32
            const float2 f0 = __half22float2(h0), f1 = __half22float2(h1);
            __half2* l = reinterpret_cast<__half2*>(lo + r * ld + n);
            l[0] = __floats2half2_rn((v[u].x - f0.x) * kCbSplitScale, (v[u].y - f0.y) * kCbSplitScale);
            l[1] = __floats2half2_rn((v[u].z - f1.x) * kCbSplitScale, (v[u].w - f1.y) * kCbSplitScale);
        }
    }
}

// The v9/v10 walks' B/C tile from sbc: B^T ([n][t], the state update's A operand) then C ([t][n],
// C S_in's A operand), both K-major and swizzled (wgmma.cuh), in 16-byte pieces of 8 halves.
template <int NS>
__device__ void write_bc_swizzled(const ssd_params& p, int c, int q, int g, const __half* sbc) {
    constexpr int ld = bc_ld<NS>();
    unsigned char* dst = reinterpret_cast<unsigned char*>(p.bc16 + (((size_t)q * p.G + g) * p.nch + c) * bc_tile_halves<NS>());
    // B^T: row n, tokens 8 j... Consecutive lanes take consecutive n, so each of the eight 2-byte
    // reads of a warp covers 64 contiguous bytes of one sbc row; with lanes along t instead (the
    // first version), the rows 8 tokens apart all start on the same bank (ld = NS + 8 halves keeps
    // ldmatrix conflict-free, which makes 8 * ld a multiple of 32 words): 16-way conflicts.
    for (int i = threadIdx.x; i < NS * (kL / 8); i += kPrepThreads) {
        const int n = i % NS, t = (i / NS) * 8;
        uint32_t w[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const __half lo = sbc[(t + 2 * e) * ld + n], hi = sbc[(t + 2 * e + 1) * ld + n];
            const __half2 h2 = __halves2half2(lo, hi);
            w[e] = *reinterpret_cast<const uint32_t*>(&h2);
        }
        *reinterpret_cast<uint4*>(dst + wg::sw128_offset(n, t, NS)) = make_uint4(w[0], w[1], w[2], w[3]);
    }
    for (int i = threadIdx.x; i < kL * (NS / 8); i += kPrepThreads) {   // C: row t, columns 8 j..
        const int t = i / (NS / 8), n = (i % (NS / 8)) * 8;
        *reinterpret_cast<uint4*>(dst + NS * kL * 2 + wg::sw128_offset(t, n, kL)) =
            *reinterpret_cast<const uint4*>(sbc + (kL + t) * ld + n);
    }
}

// A diagonal block of the fp16 C B^T tile, with the rounding error of its lower triangle kept:
// the walk scales these entries by their decay in fp32 and rounds once more, and two roundings
// there were the largest error of the path (ssd-precision: 6.2e-7 on ops_property_test's worst
// case, 1.5e-7 with one). Each entry s <= t is stored as hi = fp16(v) at [t][s] and lo = fp16(v -
// hi) at [s][t] (the unused upper triangle, read back with ldmatrix .trans) or, on the diagonal,
// in the row's padding column kL.
__device__ __forceinline__ void store_cb_diag_block(__half* dst, const float (&acc)[2][4], int rg, int gr, int qd) {
#pragma unroll
    for (int hf = 0; hf < 2; ++hf)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int row = rg * 16 + gr + (e >= 2 ? 8 : 0), col = rg * 16 + hf * 8 + 2 * qd + (e & 1);
            if (col > row) continue;
            const __half hi = __float2half_rn(acc[hf][e]);
            const __half lo = __float2half_rn(acc[hf][e] - __half2float(hi));
            dst[row * kCbLd + col] = hi;
            dst[col == row ? row * kCbLd + kL : col * kCbLd + row] = lo;
        }
}

// C B^T block (rg, jj) from the tiles load_bc_tile left in shared memory: split (sbc_lo) when
// p.cb_split, else from the fp16 tile alone
template <int NS>
__device__ __forceinline__ void group_cb_block(const ssd_params& p, float (&acc)[2][4], const __half* sbc, const __half* sbc_lo,
                                               int rg, int jj, int lane) {
    constexpr int ld = bc_ld<NS>();
    if (p.cb_split) cb_block_split<NS>(acc, sbc, sbc + kL * ld, sbc_lo, sbc_lo + kL * ld, ld, rg, jj, lane);
    else cb_block<NS>(acc, sbc, sbc + kL * ld, ld, rg, jj, lane);
}

// sbc_lo: the lo tile's shared memory (dynamic, present only with p.cb_split)
template <int NS, bool kExt>
__device__ void prep_cb(const ssd_params& p, int c, int q, int g, __half* sbc, __half* sbc_lo) {
    load_bc_tile<NS>(p, c, q, g, sbc, p.cb_split ? sbc_lo : nullptr);
    __syncthreads();
    PREP_TL(0);
    if (p.wg) {
        write_bc_swizzled<NS>(p, c, q, g, sbc);
    } else {   // the B/C tile for the walk: this shared-memory image, padding included (never read)
        const uint4* src = reinterpret_cast<const uint4*>(sbc);
        uint4* dst = reinterpret_cast<uint4*>(p.bc16 + (((size_t)q * p.G + g) * p.nch + c) * bc_tile_halves<NS>());
        for (int i = threadIdx.x; i < int(bc_tile_halves<NS>() / 8); i += kPrepThreads) dst[i] = src[i];
    }
    PREP_TL(1);
    if (p.mw && !p.mw_cb) return;   // block-uniform: the v11 walk computes C B^T itself
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gr = lane >> 2, qd = lane & 3;
    __half* dst = p.cb16 + (((size_t)q * p.G + g) * p.nch + c) * cb_tile_halves();
    for (int blk = warp; blk < 10; blk += kPrepThreads / 32) {
        int rg, jj;
        cb_block_pos(blk, rg, jj);
        float acc[2][4];
        group_cb_block<NS>(p, acc, sbc, sbc_lo, rg, jj, lane);
        if (p.wm_split) {   // fp32, as the fragments ssd_mask works on
            float4* f = cb_fragment(p, q, g, c, blk, lane);
            f[0] = make_float4(acc[0][0], acc[0][1], acc[0][2], acc[0][3]);
            f[1] = make_float4(acc[1][0], acc[1][1], acc[1][2], acc[1][3]);
            continue;
        }
        if constexpr (kExt) {
            if (jj == rg && p.cb_lo) {   // warp-uniform
                store_cb_diag_block(dst, acc, rg, gr, qd);
                continue;
            }
        }
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int col = jj * 16 + hf * 8 + 2 * qd, row = rg * 16 + gr;
            *reinterpret_cast<__half2*>(dst + row * kCbLd + col) = __floats2half2_rn(acc[hf][0], acc[hf][1]);
            *reinterpret_cast<__half2*>(dst + (row + 8) * kCbLd + col) = __floats2half2_rn(acc[hf][2], acc[hf][3]);
        }
    }
}

// dt of heads [h0, h0 + nh) for the chunk's tokens into sdt[t][head - h0] (zero past T). dt is
// [H, T, S]: a token's heads are contiguous, so the block reads its heads token by token (a warp
// per head would touch a sector per token).
__device__ __forceinline__ void load_dt(const ssd_params& p, int c, int q, int h0, int nh, float (*sdt)[kPrepHeads]) {
    const int t0 = c * kL;
    for (int i = threadIdx.x; i < kL * nh; i += kPrepThreads) {
        const int hh = i % nh, t = i / nh;
        const bool in = h0 + hh < p.H && t0 + t < p.T;
        sdt[t][hh] = in ? __ldg(p.dt + (h0 + hh) + (long long)p.H * ((t0 + t) + (long long)p.T * q)) : 0.f;
    }
}

// One warp per head (column hh of sdt): softplus(dt), the in-chunk inclusive cumulative sum of
// dt*A (two tokens per lane), and, with tables, the decay factors of dct:: except the diagonal
// rows; cum, delta and the kWt weights also go to sdec[hh] for the block's later passes.
__device__ __forceinline__ void head_tables(const ssd_params& p, int c, int q, int h, int hh, int lane,
                                            float (*sdt)[kPrepHeads], float (*sdec)[3][kL], bool tables) {
    const int t0 = c * kL;
    const float A = __ldg(p.A + h * p.a_h);
    const int ta = 2 * lane, tb = ta + 1;
    const float da = t0 + ta < p.T ? softplus_f(sdt[ta][hh]) : 0.f;
    const float db = t0 + tb < p.T ? softplus_f(sdt[tb][hh]) : 0.f;
    const float aa = da * A, ab = db * A;
    float sum = aa + ab;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float v = __shfl_up_sync(0xffffffffu, sum, o);
        if (lane >= o) sum += v;
    }
    const float excl = sum - (aa + ab);
    const float ca = excl + aa, cb = excl + aa + ab;   // cum of tokens ta, tb
    float* dst = p.dc + (((size_t)q * p.H + h) * p.nch + c) * dct::kFloats;
    *reinterpret_cast<float2*>(dst + dct::kCum + 2 * lane) = make_float2(ca, cb);
    *reinterpret_cast<float2*>(dst + dct::kDelta + 2 * lane) = make_float2(da, db);
    if (!tables) return;   // the v6 walk reads cum and delta only
    *reinterpret_cast<float2*>(&sdec[hh][0][2 * lane]) = make_float2(ca, cb);
    *reinterpret_cast<float2*>(&sdec[hh][1][2 * lane]) = make_float2(da, db);
    // cum at the chunk end, at the end of this lane's 16-token block and of the block before
    const float cl = __shfl_sync(0xffffffffu, cb, 31);
    const float cend = __shfl_sync(0xffffffffu, cb, lane | 7);
    const float cprev = __shfl_sync(0xffffffffu, cb, lane >= 8 ? (lane & ~7) - 1 : 0);
    const float bend = __shfl_sync(0xffffffffu, cb, 8 * (lane & 3) + 7);
    const float bprev = __shfl_sync(0xffffffffu, cb, (lane & 3) ? 8 * (lane & 3) - 1 : 0);
    *reinterpret_cast<float2*>(dst + dct::kWs + 2 * lane) = make_float2(da * __expf(cl - ca), db * __expf(cl - cb));
    const float2 wt = make_float2(da * __expf(cend - ca), db * __expf(cend - cb));
    *reinterpret_cast<float2*>(dst + dct::kWt + 2 * lane) = wt;
    *reinterpret_cast<float2*>(&sdec[hh][2][2 * lane]) = wt;
    *reinterpret_cast<float2*>(dst + dct::kRowE + 2 * lane) = make_float2(__expf(ca), __expf(cb));
    *reinterpret_cast<float2*>(dst + dct::kRowF + 2 * lane) =
        lane >= 8 ? make_float2(__expf(ca - cprev), __expf(cb - cprev)) : make_float2(0.f, 0.f);
    if (lane < 4) dst[dct::kBlkF + lane] = lane ? __expf(bend - bprev) : 1.f;
    if (lane == 0) dst[dct::kEl] = __expf(cl);
}

// Blocks that split each group's heads into parts of at most hpb: grid index z -> the group, the
// part, its first head and its number of heads (ssd_prep's v10 blocks, ssd_mask).
// v10: warp `blk` (< 10) holds C B^T block (rg, jj) in mma fragments (rows rg*16 + gr and +8,
// columns jj*16 + hf*8 + 2 qd and +1) and writes that block of M for each of the nh heads
// straight from registers, as half2 into the swizzled tile (the four threads of a row group fill
// one 16-byte piece; the two pieces of a thread share a 32-byte sector). Blocks above the
// diagonal stay as the zeros the buffer was made with.
// Below the diagonal block the decay factors through the end e of the column block,
// exp(cum_t - cum_s) delta_s = exp(cum_t - cum_e) * kWt_s, both factors <= 1 (nothing
// overflows): two exponentials per head and thread instead of eight. The diagonal block keeps
// the direct form (there exp(cum_t - cum_e) can overflow while kWt_s underflows).
// Measured (H200, granite 4096 x 1, v10, same builds): 97.9 us with the first version (C B^T
// staged in shared memory, each thread 16-byte pieces of all heads: ~18 k warp instructions per
// 16-head block), 93.5 with this one, 95.4 with the items spread over all 16 warps from a staged
// fp32 copy (ssd_prep 23.3 us under ncu against 21.7 here).
__device__ __forceinline__ void mask_heads(const ssd_params& p, int c, int q, int h0, int nh, const float (*sdec)[3][kL],
                                           const float (&acc)[2][4], int rg, int jj, int lane) {
    unsigned char* dst = reinterpret_cast<unsigned char*>(p.mh16 + (((size_t)q * p.H + h0) * p.nch + c) * kMhHalves);
    const size_t head_bytes = size_t(p.nch) * kMhHalves * 2;
#pragma unroll 2
    for (int hh = 0; hh < nh; ++hh, dst += head_bytes) mask_block(sdec[hh][0], sdec[hh][1], sdec[hh][2], acc, rg, jj, lane, dst);
}

// v10 blocks, one per (chunk, sequence, part of a group's heads): each loads the group's B and C
// (part 0 also writes the swizzled B^T/C tile), computes C B^T in fp32 (ten 16x16 blocks on and
// below the diagonal, one per warp) and, for each of its heads, the masked product
// M[t][s] = (C B^T)[t][s] exp(cum_t - cum_s) delta_s (s <= t) rounded once to fp16, as the
// swizzled A operand of the walk's M x wgmma. The walk then needs no decay work for y at all.
// Every part recomputes C B^T (one mma pass, L2-resident inputs) so no block waits for another.
template <int NS>
__device__ void prep_wm(const ssd_params& p, int c, int q, int z, __half* sbc, __half* sbc_lo, float (*sdt)[kPrepHeads],
                        float (*sdec)[3][kL]) {
    const head_part hp = group_part(p, z, p.prep_heads);
    const int g = hp.g, part = hp.part, h0 = hp.h0, nh = hp.nh;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    load_bc_tile<NS>(p, c, q, g, sbc, p.cb_split ? sbc_lo : nullptr);
    load_dt(p, c, q, h0, nh, sdt);
    __syncthreads();
    PREP_TL(0);
    if (part == 0) write_bc_swizzled<NS>(p, c, q, g, sbc);
    if (warp < nh) head_tables(p, c, q, h0 + warp, warp, lane, sdt, sdec, true);
    float acc[2][4];
    int rg = 0, jj = 0;
    if (warp < 10) {
        cb_block_pos(warp, rg, jj);
        group_cb_block<NS>(p, acc, sbc, sbc_lo, rg, jj, lane);
    }
    __syncthreads();   // sdec written
    PREP_TL(1);
    if (warp < 10) mask_heads(p, c, q, h0, nh, sdec, acc, rg, jj, lane);
}

// The fused prep beside the walk with its C B^T apart (SSMKIT_SSD_BESIDE_CB=1, p.beside_cb). The
// prep_wm items above each load the group's B and C and compute C B^T for 4 heads, and at granite
// 4096 x 1 those items set the pace (docs/perf-ssd-notes.md, twelfth session). Here each
// (sequence, chunk) has first G C B^T items (B and C loaded once per group, the swizzled B^T/C
// tile, C B^T as fp32 fragments in cbf32, the layout ssd_mask reads), then the parts' mask items
// (dt, tables, and the masks from those fragments), each waiting for its group's C B^T item.
// An item waits only for an item before it in the order every block takes them, so with the
// whole grid resident (at most one block per free SM) nothing waits in a cycle.
template <int NS>
__device__ void beside_cb_item(const ssd_params& p, int c, int q, int g, __half* sbc, __half* sbc_lo) {
    load_bc_tile<NS>(p, c, q, g, sbc, p.cb_split ? sbc_lo : nullptr);
    __syncthreads();
    write_bc_swizzled<NS>(p, c, q, g, sbc);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (warp < 10) {
        int rg, jj;
        cb_block_pos(warp, rg, jj);
        float acc[2][4];
        group_cb_block<NS>(p, acc, sbc, sbc_lo, rg, jj, lane);
        float4* f = cb_fragment(p, q, g, c, warp, lane);
        f[0] = make_float4(acc[0][0], acc[0][1], acc[0][2], acc[0][3]);
        f[1] = make_float4(acc[1][0], acc[1][1], acc[1][2], acc[1][3]);
    }
}
// cb_flag: the flag of the group's C B^T item of this chunk; call: the value it holds once written
__device__ void beside_mask_item(const ssd_params& p, int c, int q, int z, float (*sdt)[kPrepHeads], float (*sdec)[3][kL],
                                 const unsigned* cb_flag, unsigned call) {
    const head_part hp = group_part(p, z, p.prep_heads);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    load_dt(p, c, q, hp.h0, hp.nh, sdt);
    __syncthreads();
    if (warp < hp.nh) head_tables(p, c, q, hp.h0 + warp, warp, lane, sdt, sdec, true);
    if (threadIdx.x == 0)
        while (ld_acquire_gpu(cb_flag) != call) __nanosleep(32);
    __syncthreads();   // sdec written, and the C B^T fragments visible (thread 0's acquire, then the barrier)
    if (warp < 10) {
        // through L2 (ld.cg): another SM wrote them during this kernel
        const float4* f = cb_fragment(p, q, hp.g, c, warp, lane);
        const float4 a = __ldcg(f), b = __ldcg(f + 1);
        const float acc[2][4] = {{a.x, a.y, a.z, a.w}, {b.x, b.y, b.z, b.w}};
        int rg, jj;
        cb_block_pos(warp, rg, jj);
        mask_heads(p, c, q, hp.h0, hp.nh, sdec, acc, rg, jj, lane);
    }
}

// ---------------------------------------------------------------------------------------------
// ssd_prep: grid (chunk, sequence, part), kPrepThreads threads. With wm (v10), every part is a
// prep_wm block. Otherwise: with cb_pre, parts [0, G) are the C B^T blocks (prep_cb: they also
// write the B/C tiles); without it (v6 walk, tiles of 80), parts [0, bc_blocks) round B/C to
// fp16. The next prep_head_blocks(H, p.prep_heads) parts compute, for p.prep_heads heads each,
// cum/delta (one warp per head, two tokens per lane) and with cb_pre the decay tables. Each
// thread issues its loads before the first use: these blocks are latency-bound, and the walk
// waits for the slowest.
// Measured (H200, granite): with 256 threads, separate B/C blocks, two heads per block and the
// C B^T blocks last, 1728 blocks of 105 registers ran 6.5 waves of two blocks per SM at 4096 x 1
// (ncu: 25 us, a fifth of the scan, all before the walk starts). Now 512 threads (64 registers)
// and a grid of one wave; the variants tried (256 threads with B/C loaded in two rounds, C B^T
// as a kernel of its own) are in docs/perf-ssd-notes.md.
template <int NS, bool kExt>
__device__ __forceinline__ void ssd_prep_block(const ssd_params& p) {
    // one allocation for every block type (static shared memory is per kernel, not per branch)
    __shared__ __align__(16) __half sbc[2 * kL * bc_ld<NS>()];
    __shared__ float sdt[kL][kPrepHeads];        // raw dt: one 64-byte row of heads per token
    __shared__ float sdec[kPrepHeads][3][kL];    // cum, delta and the kWt weights of the block's heads
    extern __shared__ __align__(16) __half sbc_lo[];   // bc_tile_halves<NS>() with p.cb_split, else none
    const int c = blockIdx.x, q = blockIdx.y;
    const int t0 = c * kL;
    if constexpr (NS == 128) {   // v10 handles d_state 128 only
        if (p.wm && !p.wm_split) {
            prep_wm<NS>(p, c, q, int(blockIdx.z), sbc, sbc_lo, sdt, sdec);
            return;
        }
    }
    const int ncb = prep_cb_blocks(p.G, p.cb_pre);
    if (int(blockIdx.z) < ncb) {
        prep_cb<NS, kExt>(p, c, q, int(blockIdx.z), sbc, sbc_lo);
        return;
    }
    const int nbc = ncb + prep_bc_blocks(p.G, NS, p.cb_pre);
    if (int(blockIdx.z) < nbc) {
        const int quads = p.G * 2 * kL * (NS / 4);
        float4 v[kPrepBatch];
        const int base = (blockIdx.z - ncb) * kPrepThreads * kPrepBatch + threadIdx.x;
#pragma unroll
        for (int u = 0; u < kPrepBatch; ++u) {
            const int i = base + u * kPrepThreads;
            v[u] = make_float4(0.f, 0.f, 0.f, 0.f);
            if (i >= quads) continue;
            const int n = (i % (NS / 4)) * 4;
            int r = i / (NS / 4);
            const int t = r % kL; r /= kL;
            v[u] = load_bc4(p, q, r / 2, r % 2, t0 + t, n);
        }
#pragma unroll
        for (int u = 0; u < kPrepBatch; ++u) {
            const int i = base + u * kPrepThreads;
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
    const int hpb = p.prep_heads;
    const int h0 = (blockIdx.z - nbc) * hpb;
    const int h = h0 + warp;
    load_dt(p, c, q, h0, hpb, sdt);
    __syncthreads();
    PREP_TL(0);
    static_assert(kPrepHeads == kPrepThreads / 32, "a warp per head");
    if (warp < hpb && h < p.H) head_tables(p, c, q, h, warp, lane, sdt, sdec, p.cb_pre);
    if (!p.cb_pre || p.wm) return;   // block-uniform; the v10/v11 walks read no diagonal rows
    __syncthreads();
    PREP_TL(1);
    // Diagonal-block decay rows, spread over the whole block: item -> (head, row t, 8 columns).
#pragma unroll 1
    for (int w = threadIdx.x; w < hpb * kL * 2; w += kPrepThreads) {
        const int hh = w / (2 * kL), t = (w % (2 * kL)) >> 1, j0 = (w & 1) * 8;
        if (h0 + hh >= p.H) break;   // hh only grows with w
        const float* cum = sdec[hh][0];
        const float* del = sdec[hh][1];
        const float ct = cum[t];
        float r[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int s = (t & ~15) + j0 + j;
            r[j] = s <= t ? __expf(ct - cum[s]) * del[s] : 0.f;   // faster here than masked_exp (measured)
        }
        float4* d4 = reinterpret_cast<float4*>(p.dc + (((size_t)q * p.H + h0 + hh) * p.nch + c) * dct::kFloats + dct::kDiag + 16 * t + j0);
        d4[0] = make_float4(r[0], r[1], r[2], r[3]);
        d4[1] = make_float4(r[4], r[5], r[6], r[7]);
    }
}

#ifdef SSMKIT_SSD_TRACE
// Diagnostic build only (scripts/ssd-trace.sh): %globaltimer at each block's launch, after its
// wait on the previous kernel and at its end, printed for the fifth launch (the walk prints the
// same for its blocks, so one call gives the timeline of both kernels).
__device__ unsigned ssd_prep_trace_launches;
#endif

// kExt: the form behind SSMKIT_SSD_CB_LO (p.cb_lo), kept out of the default kernels' code
template <int NS, bool kExt>
__global__ void __launch_bounds__(kPrepThreads) ssd_prep(const __grid_constant__ ssd_params p) {
#ifdef SSMKIT_SSD_TRACE
    const unsigned long long tl0 = ssmkit::cuda::ssd::globaltimer_ns();
    const unsigned tl_launch = trace_launch_index(&ssd_prep_trace_launches);
#endif
    // After the previous kernel of the stream (pdl.cuh), then the walk may start its prologue
    // (initial state, first x copies), which overlaps this kernel.
    ssmkit::cuda::pdl_begin();
#ifdef SSMKIT_SSD_TRACE
    const unsigned long long tl1 = ssmkit::cuda::ssd::globaltimer_ns();
    if (threadIdx.x == 0) prep_tl_slots()[0] = prep_tl_slots()[1] = tl1;
#endif
    ssd_prep_block<NS, kExt>(p);
#ifdef SSMKIT_SSD_TRACE
    __syncthreads();
    if (threadIdx.x == 0) {
        if (tl_launch == 4)
            printf("ssd-tl prep %d %d %d %llu %llu %llu %llu %llu\n", int(blockIdx.x), int(blockIdx.y), int(blockIdx.z), tl0,
                   tl1, ssmkit::cuda::ssd::globaltimer_ns(), prep_tl_slots()[0], prep_tl_slots()[1]);
    }
#endif
}

// ssd_mask (wm_split: the third launch, after ssd_prep): grid (chunk, sequence, part of a group's
// heads), one warp per C B^T block on or below the diagonal. The block reads the ten fp32 blocks
// ssd_prep left in the workspace and its heads' cum, delta and kWt, then writes their masked
// tiles (mask_heads). Splitting this from ssd_prep keeps every block short: the v10 prep blocks,
// which each loaded B and C, computed C B^T and then masked up to 16 heads, made a 22 us prep at
// granite 4096 x 1 (ncu) against 12.5 for the v8 prep.
// Item i of an overlap form's grid-stride loop: the part z of a group's heads fastest, then the
// chunk and the sequence in the order the walk wants them (p.flags_seq_major).
__device__ __forceinline__ void flagged_item(const ssd_params& p, long long i, int parts, int& c, int& q, int& z) {
    z = int(i % parts);
    const long long r = i / parts;
    q = int(p.flags_seq_major ? r / p.nch : r % p.S);
    c = int(p.flags_seq_major ? r % p.nch : r / p.S);
}

template <bool kFlags>
__device__ __forceinline__ void mask_item(const ssd_params& p, int c, int q, int z, float (*sdec)[3][kL], unsigned call = 0) {
    const head_part hp = group_part(p, z, p.mask_heads);
    const int g = hp.g, h0 = hp.h0, nh = hp.nh;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float4* f = cb_fragment(p, q, g, c, warp, lane);
    const float4 a = f[0], b = f[1];
    for (int i = threadIdx.x; i < nh * 3 * (kL / 4); i += kMaskThreads) {   // float4 pieces
        const int hh = i / (3 * (kL / 4)), k = i % (3 * (kL / 4)), arr = k / (kL / 4), j = (k % (kL / 4)) * 4;
        const int off = arr == 0 ? dct::kCum : arr == 1 ? dct::kDelta : dct::kWt;
        *reinterpret_cast<float4*>(&sdec[hh][arr][j]) =
            *reinterpret_cast<const float4*>(p.dc + (((size_t)q * p.H + h0 + hh) * p.nch + c) * dct::kFloats + off + j);
    }
    __syncthreads();
    const float acc[2][4] = {{a.x, a.y, a.z, a.w}, {b.x, b.y, b.z, b.w}};
    int rg, jj;
    cb_block_pos(warp, rg, jj);
    mask_heads(p, c, q, h0, nh, sdec, acc, rg, jj, lane);
    if constexpr (kFlags) {
        __syncthreads();   // every tile store of the block (and every read of sdec) is done
        if (int(threadIdx.x) < nh) {
            __threadfence();
            st_release_gpu(p.mask_flags + ((size_t)q * p.H + h0 + threadIdx.x) * p.nch + c, call);
        }
    }
}

template <bool kFlags>
__global__ void __launch_bounds__(kMaskThreads) ssd_mask(const __grid_constant__ ssd_params p) {
    __shared__ float sdec[kPrepHeads][3][kL];
    ssmkit::cuda::pdl_begin();   // after ssd_prep; the walk may start its prologue
    if constexpr (!kFlags) {
        mask_item<false>(p, int(blockIdx.x), int(blockIdx.y), int(blockIdx.z), sdec);
    } else {
        // Overlap form: a grid of at most one block per SM, all resident before the walk
        // launches, takes the items chunk by chunk (all heads of chunk 0 first), so the walk can
        // start on the first chunks while the later ones are masked; sequence by sequence when
        // the walk's blocks outnumber the SMs (they are scheduled in that order). No deadlock:
        // the walk's blocks only wait for these, which are all running.
        const unsigned call = ld_acquire_gpu(p.flag_sync) + 1;   // this call's number (ssd_params)
        const int parts = p.G * parts_per_group(p.H, p.G, p.mask_heads);
        const long long items = (long long)parts * p.S * p.nch;
        for (long long i = blockIdx.x; i < items; i += gridDim.x) {
            int c, q, z;
            flagged_item(p, i, parts, c, q, z);
            mask_item<true>(p, c, q, z, sdec, call);
        }
    }
}

// The fused prep beside the v11 walk (SSMKIT_SSD_MASK=fused-overlap): ssd_prep's v10 items
// (prep_wm: B/C tiles, tables and masks of a part of a group's heads) taken by a grid of fewer
// blocks than SMs, chunk by chunk, each item's flag set when it is written; the walk, launched
// once these blocks run, waits on the flags. A prep block (51 KB of shared memory) cannot share
// an SM with a walk block (207 KB), so the grid leaves at least the walk's blocks' worth of SMs
// free (blocks are placed breadth-first); and since these blocks wait for nothing of the walk,
// the walk's blocks only ever wait for running blocks.
// (d_state 128 only: v11's.)
// kCbItems: the form with C B^T items apart (beside_cb_item), kept out of the default kernel's code
template <bool kCbItems>
__global__ void __launch_bounds__(kPrepThreads) ssd_prep_beside(const __grid_constant__ ssd_params p) {
    constexpr int NS = 128;
    __shared__ __align__(16) __half sbc[2 * kL * bc_ld<NS>()];
    __shared__ float sdt[kL][kPrepHeads];
    __shared__ float sdec[kPrepHeads][3][kL];
    extern __shared__ __align__(16) __half sbc_lo[];   // bc_tile_halves<NS>() with p.cb_split, else none
    ssmkit::cuda::pdl_begin();
    const unsigned call = ld_acquire_gpu(p.flag_sync) + 1;
    const int parts = p.G * parts_per_group(p.H, p.G, p.prep_heads) + (kCbItems ? p.G : 0);   // items per chunk
    const long long items = (long long)parts * p.S * p.nch;
    for (long long i = blockIdx.x; i < items; i += gridDim.x) {
        int c, q, z;
        flagged_item(p, i, parts, c, q, z);
        if constexpr (kCbItems) {
            const unsigned* fl = p.prep_flags + ((size_t)q * p.nch + c) * parts;
            if (z < p.G) beside_cb_item<NS>(p, c, q, z, sbc, sbc_lo);
            else beside_mask_item(p, c, q, z - p.G, sdt, sdec, fl + group_part(p, z - p.G, p.prep_heads).g, call);
        } else {
            prep_wm<NS>(p, c, q, z, sbc, sbc_lo, sdt, sdec);
        }
        __syncthreads();   // every store of the item is done, and the buffers are free again
        if (threadIdx.x == 0) {
            __threadfence();
            st_release_gpu(p.prep_flags + ((size_t)q * p.nch + c) * parts + z, call);
        }
    }
}

int pick_ns(int64_t N) { return N <= 32 ? 32 : N <= 64 ? 64 : N <= 128 ? 128 : 0; }

// The two knobs that name a form (SSMKIT_SSD_WALK, SSMKIT_SSD_MASK), each read once; "" when
// unset or empty (the default choice).
bool walk_knob_is(const char* v) {
    static const std::string k = ssmkit::cuda::knob_str("SSMKIT_SSD_WALK");
    return k == v;
}
bool mask_knob_is(const char* v) {
    static const std::string k = ssmkit::cuda::knob_str("SSMKIT_SSD_MASK");
    return k == v;
}

// Measurement knob: SSMKIT_SSD_WALK=v6 selects the walk that computes the masked C B^T blocks
// itself (the previous variant) instead of reading C B^T from ssd_prep.
bool walk_v6() { return walk_knob_is("v6"); }

// Measurement knob: SSMKIT_SSD_TILE=32 or 64 forces the head_dim tile where the shape allows it.
int forced_tile() {
    static const int t = ssmkit::cuda::knob_int("SSMKIT_SSD_TILE", 0);
    return t == 32 || t == 64 ? t : 0;
}

// Measurement knob: SSMKIT_SSD_PREP_HEADS=2, 4, 8 or 16 forces ssd_prep's heads per block.
int forced_prep_heads() {
    static const int v = ssmkit::cuda::knob_int("SSMKIT_SSD_PREP_HEADS", 0);
    return v == 2 || v == 4 || v == 8 || v == 16 ? v : 0;
}

// Blocks of a walk with head_dim tiles of 64 (v11's grid): one per tile, head and sequence.
int64_t blocks_of_64(int64_t head_dim, int64_t heads, int64_t seqs) { return (head_dim + 63) / 64 * heads * seqs; }

// Measurement knobs for the v10/v11 prep: SSMKIT_SSD_MASK=fused keeps the masks in ssd_prep (one
// block per chunk and part of a group's heads loads B/C, computes C B^T and masks) before the
// walk; =split gives them their own launch (ssd_mask) with SSMKIT_SSD_MASK_HEADS (1, 2, 4, 8, 16;
// 4) heads per block. Measured with v11 (H200, granite, same call, us, fused / split): 512 x 1
// 20.28 / 19.18, 4096 x 1 88.82 / 86.11, 512 x 8 68.72 / 66.78.
// Where v11's masks come from. SSMKIT_SSD_MASK=walk: a second warpgroup of the walk computes
// them (p.mw); =split: ssd_mask; =fused: ssd_prep. Unset: the walk's when the walk's blocks fill
// the SMs, else the fused prep beside the walk (v11_fused_overlap). Measured (H200, granite, same
// call, us, walk / split): 512 x 8 (384 blocks) 58.61 / 72.29, 4096 x 1 (48 blocks) 90.54 / 88.28, 512 x 1 (v11
// forced) 19.23 / 20.21. With few blocks the walk's chain sets the time, and the producer's
// products on the same tensor cores lengthen it (ncu walk at 4096 x 1: 86.7 against 70 us);
// with many, ssd_mask's 14-15 us launch weighs more.
// SSMKIT_SSD_MASK=walkcb: the walk's producer masks ssd_prep's fp32 C B^T instead of computing
// it (measured: 89.20 / 60.79 us at 4096 x 1 / 512 x 8 against walk's 60.31 and ssd_mask's 88.71).
bool mask_walkcb() { return mask_knob_is("walkcb"); }
// SSMKIT_SSD_MASK=overlap: ssd_mask as a grid of one block per SM taking the chunks in order, and
// the walk waiting on per-chunk flags instead of on ssd_mask's end, so the walk runs beside it
// (predicted at granite 4096 x 1: ~12 of ssd_mask's 14.5 us off the critical path).
bool mask_overlap() { return mask_knob_is("overlap"); }
// SSMKIT_SSD_CB_LO=1: v8 keeps the rounding error of C B^T's diagonal blocks (store_cb_diag_block).
// Off: measured 18.33-18.40 against 17.67-17.75 us at granite 512 x 1 (predicted < 0.1 us more),
// and with the split the modelled worst case of 535 is 2.6e-7 without it.
// SSMKIT_SSD_CB_SPLIT=0: ssd_prep's C B^T from fp16 B and C alone (the previous form, one
// product instead of three; see cb_block_split). Measured (H200, granite, same call, us, split /
// not): 512 x 1 17.73-17.85 / 17.74-17.77, 512 x 8 59.2-60.1 / 59.1-59.9 (C B^T once per group
// and chunk), 4096 x 1 84.74-84.96 / 82.45-82.46 (the fused prep beside the walk recomputes
// C B^T for every 4 heads, and there its items set the pace).
bool cb_split() {
    static const bool v = ssmkit::cuda::knob_int("SSMKIT_SSD_CB_SPLIT", 1) != 0;
    return v;
}
bool cb_keep_lo() {
    static const bool v = ssmkit::cuda::knob_int("SSMKIT_SSD_CB_LO", 0) != 0;
    return v;
}
bool v11_masks_in_walk(const ssmkit::scan_shape& sh) {
    if (mask_knob_is("walk") || mask_walkcb()) return true;
    if (!mask_knob_is("")) return false;
    return blocks_of_64(sh.head_dim, sh.n_head, sh.n_seqs) >= ssmkit::cuda::info_for_current_device().sm_count;
}
// SSMKIT_SSD_MASK=fused-overlap: the fused prep (masks in ssd_prep's v10 items) beside the walk
// on per-item flags (ssd_prep_beside), when the walk's blocks leave SMs free for it; else the
// fused prep before the walk. The default where the walk's masks would come from ssd_mask.
// Predicted at granite 4096 x 1: the walk starts after the first chunk's items (~4 us) instead of
// after ssd_prep and ssd_mask, 70-74 us. Measured (H200, same call, us, fused-overlap / overlap /
// split, C B^T from fp16 B and C): 4096 x 1 81.94-82.23 / 86.06-86.30 / 88.39-88.86; 512 x 8
// (v11 forced to these forms; its default takes the walk's masks, 59.8-60.1) 73.39-73.44 /
// 78.86-78.98. With the split C B^T, 84.74-84.96 against split's 89.02-89.06. The miss: the
// items, not the first chunk's wait, set the pace (4 prep heads per item 84.7-85.0, 8 heads
// 84.8-84.9, 16 heads 87.4; the split costs 2.4 us with 4 heads and 0.6 with 8).
bool v11_fused_overlap(const ssmkit::scan_shape& sh) {
    return mask_knob_is("fused-overlap") || (mask_knob_is("") && !v11_masks_in_walk(sh));
}
// SSMKIT_SSD_BESIDE_CB=1: the fused prep beside the walk with C B^T items apart (beside_cb_item),
// once per group and chunk instead of once per 4 heads. Predicted at granite 4096 x 1: items
// about half as long on average, the prep no longer the pace, ~75-78 us (84.7-85.0). Not run yet.
bool beside_cb_items() {
    static const bool v = ssmkit::cuda::knob_int("SSMKIT_SSD_BESIDE_CB", 0) != 0;
    return v;
}
bool mask_fused(const ssmkit::scan_shape& sh) { return mask_knob_is("fused") || v11_fused_overlap(sh); }
int forced_mask_heads() {
    static const int v = ssmkit::cuda::knob_int("SSMKIT_SSD_MASK_HEADS", 0);
    return v == 1 || v == 2 || v == 4 || v == 8 || v == 16 ? v : 0;
}

// Measurement knob: SSMKIT_SSD_WALK=v9 runs the wgmma walk (d_state 128, tiles of 32 and 64,
// sm_90a code) instead of the mma.sync walk (v8). Correct (gpu-check tests it) but slower so far:
// docs/perf-ssd-notes.md, sixth session.
bool walk_v9() { return walk_knob_is("v9"); }

// Measurement knob: SSMKIT_SSD_WALK=v10 runs the v10 walk (v9's wgmma for C S_in and the state
// update, plus y's masked part M x as one more wgmma chain on a per-head masked C B^T tile that
// ssd_prep writes; same shapes as v9).
bool walk_v10() { return walk_knob_is("v10"); }

// Measurement knob: SSMKIT_SSD_WALK=v11 runs the one-warpgroup walk (scan_ssd_wg1.cu) where it
// applies (wg1_shape, sm_90a code, x through TMA), after the v10 form of ssd_prep.
bool walk_v11() { return walk_knob_is("v11"); }
bool wg1_shape(const ssmkit::scan_shape& sh, int NS) { return NS == 128 && sh.n_keep == 1; }
// SSMKIT_SSD_WALK unset or empty: the default choice, v11 where it applies to whole tiles of 64
// columns (head_dim % 64 == 0; Nemotron-H's 80 keeps the v6 walk) and the sequences hold at
// least 16 chunks in all, else v8 or v6. Measured (H200, granite, same call, us, v11 / v8):
// 512 x 1 (8 chunks) 19.18 / 17.83, 4096 x 1 (64) 86.11 / 93.51, 512 x 8 (64) 66.78 / 76.85; v11
// has fewer blocks (one per head) and three launches, so its fixed cost is higher. The
// crossover lies between 8 and 64 chunks; 16 is a guess inside that bracket, not a measurement.
// SSMKIT_SSD_WALK=v8 keeps v8 (or v6) everywhere, =v11 forces v11 wherever wg1_shape holds.
bool walk_default() { return walk_knob_is(""); }
// v11 splits each sequence into segments walked side by side when its blocks leave SMs idle
// (granite 4096 x 1: 48 blocks on 132 SMs, each a 64-chunk latency chain). A segment after the
// first first sums the state at its start without a chain (the look-ahead, ~r of a walked chunk's
// time per chunk), so the earlier segments get more chunks: with walk time 1 per chunk and r per
// look-ahead chunk, segment g ends at b_{g+1} = T* + (1 - r) b_g, all ending together at T*.
// Off by default (measured, H200, granite 4096 x 1, same call, us): with ssd_mask's tiles 89.24
// with 2 segments against 87.70 with none (the walk's reads from L2, not its latency chain, set
// the pace then); with the masks in a one-warpgroup walk 91.97-92.14 against 127.4.
// Measurement knobs: SSMKIT_SSD_V11_SEGS=n (0: as many as idle SMs allow), SSMKIT_SSD_V11_LOOK=r
// sets r in percent.
void plan_segments(ssd_params& p, int n_pt) {
    static const int forced = ssmkit::cuda::knob_int("SSMKIT_SSD_V11_SEGS", 1);
    static const int look_pct = ssmkit::cuda::knob_int("SSMKIT_SSD_V11_LOOK", 30);
    const int64_t blocks = int64_t(n_pt) * p.H * p.S;
    const int64_t sms = ssmkit::cuda::info_for_current_device().sm_count;
    int64_t nseg = forced > 0 ? forced : std::max<int64_t>(1, sms / std::max<int64_t>(1, blocks));   // 0: automatic
    nseg = std::min<int64_t>({nseg, kMaxSegs, std::max(1, p.nch)});
    p.nseg = int(nseg);
    const double r = std::min(0.9, std::max(0.0, look_pct / 100.0));
    double denom = 0, pw = 1;
    for (int g = 0; g < p.nseg; ++g, pw *= 1 - r) denom += pw;
    const double t_end = p.nch / denom;
    double b = 0;
    p.seg_begin[0] = 0;
    for (int g = 1; g < p.nseg; ++g) {
        b = t_end + (1 - r) * b;
        const int lo = p.seg_begin[g - 1] + 1, hi = p.nch - (p.nseg - g);
        p.seg_begin[g] = std::min(hi, std::max(lo, int(b + 0.5)));
    }
    p.seg_begin[p.nseg] = p.nch;
}
bool want_v11(const ssmkit::scan_shape& sh, int NS) {
    const int64_t chunks = (sh.n_t + kL - 1) / kL * sh.n_seqs;
    return wg1_shape(sh, NS) && (walk_v11() || (walk_default() && sh.head_dim % 64 == 0 && chunks >= 16));
}

int pick_pt(const ssmkit::scan_shape& sh) {
    const int64_t P = sh.head_dim;
    if (forced_tile() && P % 80 != 0) return forced_tile();
    if (P % 80 == 0 && P % 64 != 0) return 80;
    if (P <= 32) return 32;
    // Each block walks its chunks serially, so blocks are what fills the GPU: halve the tile
    // when whole-head tiles would leave SMs idle (measured: granite 512 x 1, 25.7 vs 31.7 us).
    const int sms = ssmkit::cuda::info_for_current_device().sm_count;
    const int64_t blocks64 = blocks_of_64(P, sh.n_head, sh.n_seqs);
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

// x boxes of PT columns x 64 tokens; swizzled (v11): boxes of 32 columns (128 bytes) with the
// 128-byte swizzle, so that reading a column across tokens hits every bank once.
bool encode_x_map(CUtensorMap* map, const ssmkit::scan_args& a, int PT, bool swizzled) {
    auto enc = tensor_map_encoder();
    if (!enc) return false;
    const ssmkit::scan_shape& sh = a.shape;
    const cuuint64_t dims[4] = {cuuint64_t(sh.head_dim), cuuint64_t(sh.n_head), cuuint64_t(sh.n_t), cuuint64_t(sh.n_seqs)};
    const cuuint64_t strides[3] = {cuuint64_t(a.x.nb[1]), cuuint64_t(a.x.nb[2]), cuuint64_t(a.x.nb[3])};
    const cuuint32_t box[4] = {cuuint32_t(swizzled ? 32 : PT), 1, cuuint32_t(kL), 1};
    const cuuint32_t estr[4] = {1, 1, 1, 1};
    return enc(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, a.x.data, dims, strides, box, estr,
               CU_TENSOR_MAP_INTERLEAVE_NONE, swizzled ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE,
               CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// v11: y (the head of out, [P, H, T, S] contiguous) for tensor stores of 32 x 64 boxes with the
// 128-byte swizzle; needs a 16-byte aligned out and head_dim % 4 == 0.
bool encode_y_map(CUtensorMap* map, const ssmkit::scan_args& a) {
    auto enc = tensor_map_encoder();
    const ssmkit::scan_shape& sh = a.shape;
    if (!enc || reinterpret_cast<uintptr_t>(a.out.data) % 16 != 0 || sh.head_dim % 4 != 0) return false;
    const cuuint64_t dims[4] = {cuuint64_t(sh.head_dim), cuuint64_t(sh.n_head), cuuint64_t(sh.n_t), cuuint64_t(sh.n_seqs)};
    const cuuint64_t row = cuuint64_t(sh.head_dim) * 4;
    const cuuint64_t strides[3] = {row, row * cuuint64_t(sh.n_head), row * cuuint64_t(sh.n_head) * cuuint64_t(sh.n_t)};
    const cuuint32_t box[4] = {32, 1, cuuint32_t(kL), 1};
    const cuuint32_t estr[4] = {1, 1, 1, 1};
    return enc(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, a.out.data, dims, strides, box, estr,
               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

size_t align256(size_t v) { return (v + 255) & ~size_t(255); }

struct ws_parts {
    size_t bc, dc, cb, mh, fl;
    size_t main() const { return bc + dc + cb; }   // ssd_workspace::ptr
    size_t total() const { return main() + mh + fl; }
};
constexpr size_t kFlagSyncBytes = 256;   // flag_sync at the start of the flags' allocation
// The flags' allocation: flag_sync, then one flag per (sequence, chunk, head) and per (sequence,
// chunk, group), which covers every item kind (a part holds at least one head)
size_t flag_bytes(int64_t S, int64_t H, int64_t G, int64_t nch) { return kFlagSyncBytes + size_t(S * nch * (H + G)) * 4; }
// mh (v10's per-head masked C B^T, 8 KB per head and chunk) only when v10 is selected and handles
// the shape: the default walks never read it, so they neither allocate nor zero it
ws_parts ws_layout(const ssmkit::scan_shape& sh, int NS, int PT) {
    const size_t nch = size_t((sh.n_t + kL - 1) / kL);
    const bool v10_shape = (walk_v10() && NS == 128 && (PT == 32 || PT == 64)) || (want_v11(sh, NS) && !v11_masks_in_walk(sh));
    // the overlap forms' flags (flag_bytes)
    const bool flags = want_v11(sh, NS) && (mask_overlap() || v11_fused_overlap(sh));
    return {align256(size_t(sh.n_seqs) * sh.n_group * nch * 2 * kL * (NS + 8) * 2),
            align256(size_t(sh.n_seqs) * sh.n_head * nch * dct::kFloats * 4),
            align256(size_t(sh.n_seqs) * sh.n_group * nch * cb_region_bytes()),
            v10_shape ? align256(size_t(sh.n_seqs) * sh.n_head * nch * kMhHalves * 2) : 0,
            flags ? align256(flag_bytes(sh.n_seqs, sh.n_head, sh.n_group, int64_t(nch))) : 0};
}

// ssd_prep's grid parts per (chunk, sequence): v10 blocks cover the heads of one group each
int prep_parts(const ssd_params& p, int NS, int hpb) {
    if (p.wm && !p.wm_split) return p.G * parts_per_group(p.H, p.G, hpb);
    return prep_cb_blocks(p.G, p.cb_pre) + prep_bc_blocks(p.G, NS, p.cb_pre) + prep_head_blocks(p.H, hpb);
}

// ssd_prep, then the walk (scan_ssd_pipe.cu), which waits on ssd_prep's outputs through
// programmatic dependent launch. Capturable: no host synchronization, no allocation.
template <int NS>
bool launch_ns(const ssd_params& p, int PT, bool v11, cudaStream_t stream) {
    const int sms = ssmkit::cuda::info_for_current_device().sm_count;
    cudaLaunchAttribute attr;
    const size_t lo_bytes = p.cb_split ? bc_tile_halves<NS>() * sizeof(__half) : 0;
    if (p.prep_flags) {   // the fused prep beside the walk: a grid that leaves the walk's SMs free
        const long long items = (long long)(prep_parts(p, NS, p.prep_heads) + (p.beside_cb ? p.G : 0)) * p.S * p.nch;
        const long long free_sms = sms - blocks_of_64(p.P, p.H, p.S);   // > 0 (ssd_scan_launch)
        const dim3 pg(unsigned(items < free_sms ? items : free_sms));
        const auto prep = p.beside_cb ? ssd_prep_beside<true> : ssd_prep_beside<false>;
        if (lo_bytes && !(p.beside_cb ? raise_smem_limit<ssd_prep_beside<true>>(lo_bytes)
                                      : raise_smem_limit<ssd_prep_beside<false>>(lo_bytes)))
            return false;
        const cudaLaunchConfig_t cfg = ssmkit::cuda::pdl_config(pg, dim3(kPrepThreads), lo_bytes, stream, &attr);
        if (cudaLaunchKernelEx(&cfg, prep, p) != cudaSuccess) {
            (void)cudaGetLastError();
            return false;
        }
    } else {
        const dim3 pg(unsigned(p.nch), unsigned(p.S), unsigned(prep_parts(p, NS, p.prep_heads)));
        const auto prep = p.cb_lo ? ssd_prep<NS, true> : ssd_prep<NS, false>;
        if (lo_bytes && !(p.cb_lo ? raise_smem_limit<ssd_prep<NS, true>>(lo_bytes) : raise_smem_limit<ssd_prep<NS, false>>(lo_bytes)))
            return false;
        const cudaLaunchConfig_t cfg = ssmkit::cuda::pdl_config(pg, dim3(kPrepThreads), lo_bytes, stream, &attr);
        if (cudaLaunchKernelEx(&cfg, prep, p) != cudaSuccess) {
            (void)cudaGetLastError();
            return false;
        }
    }
    if (p.wm && p.wm_split && !p.mw) {
        const unsigned parts = unsigned(p.G * parts_per_group(p.H, p.G, p.mask_heads));
        const long long items = (long long)parts * p.S * p.nch;
        const dim3 mg = p.mask_flags ? dim3(unsigned(items < sms ? items : sms)) : dim3(unsigned(p.nch), unsigned(p.S), parts);
        cudaLaunchAttribute mattr;
        const cudaLaunchConfig_t mcfg = ssmkit::cuda::pdl_config(mg, dim3(kMaskThreads), 0, stream, &mattr);
        if (cudaLaunchKernelEx(&mcfg, p.mask_flags ? ssd_mask<true> : ssd_mask<false>, p) != cudaSuccess) {
            (void)cudaGetLastError();
            return false;
        }
    }
    const bool ok = v11 ? launch_walk_wg1(p, stream) : launch_main_pipe(p, NS, PT, stream);
    // An overlap form's items may be flagged with this call's number while no walk completes
    // the call: clear the flags and the count, so that the next call cannot take them as its own.
    if (!ok && walk_on_flags(p)) (void)cudaMemsetAsync(p.flag_sync, 0, flag_bytes(p.S, p.H, p.G, p.nch), stream);
    return ok;
}

}  // namespace

struct ssd_workspace {
    void* ptr = nullptr;      // B/C tiles, decay tables, C B^T tiles (ws_layout)
    size_t bytes = 0;
    // v10's masked tiles in an allocation of their own, zeroed when made: ssd_prep writes only
    // the pieces on and below the diagonal, the zeros above it are never overwritten (nothing
    // else lives there, and every shape puts its tiles on the same 8 KB grid from offset 0)
    void* mh_ptr = nullptr;
    size_t mh_bytes = 0;
    // the overlap forms' flag_sync and flags, zeroed when made (call 0 completed, no item set)
    void* fl_ptr = nullptr;
    size_t fl_bytes = 0;
    bool wgmma = false;   // the current device runs this build's sm_90a code (the v9 walk)
};

namespace {
// 1 in the sm_90a code, 0 in the portable PTX: tells which one the driver loaded for the device.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ const int ssd_arch_specific = 1;
#else
__device__ const int ssd_arch_specific = 0;
#endif
}  // namespace

ssd_workspace* ssd_workspace_create() {
    auto* ws = new ssd_workspace();
    // Read once here, at backend creation (not stream-ordered, so never inside a captured call).
    int v = 0;
    if (cudaMemcpyFromSymbol(&v, ssd_arch_specific, sizeof v) == cudaSuccess) ws->wgmma = v == 1;
    else (void)cudaGetLastError();
    return ws;
}

void ssd_workspace_destroy(ssd_workspace* ws) {
    if (!ws) return;
    if (ws->ptr) cudaFree(ws->ptr);
    if (ws->mh_ptr) cudaFree(ws->mh_ptr);
    if (ws->fl_ptr) cudaFree(ws->fl_ptr);
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
    return ws_layout(sh, pick_ns(sh.d_state), pick_pt(sh)).total();
}

bool ssd_workspace_reserve(ssd_workspace* ws, const ssmkit::scan_shape& sh) {
    if (!ws) return false;
    if (!ssd_supports(sh)) return true;   // nothing to hold: ssd_scan_launch declines the shape
    const ws_parts w = ws_layout(sh, pick_ns(sh.d_state), pick_pt(sh));
    // grows only; cudaFree synchronizes the device (queued work may still read the old buffer)
    auto grow = [](void*& ptr, size_t& have, size_t need, bool zero) {
        if (need <= have) return true;
        if (ptr) cudaFree(ptr);
        ptr = nullptr;
        have = 0;
        if (cudaMalloc(&ptr, need) != cudaSuccess) {
            (void)cudaGetLastError();
            ptr = nullptr;
            return false;
        }
        // (synchronized: the memset must land before work on any stream, blocking or not)
        if (zero && (cudaMemset(ptr, 0, need) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess)) {
            cudaFree(ptr);
            ptr = nullptr;
            return false;
        }
        have = need;
        return true;
    };
    return grow(ws->ptr, ws->bytes, w.main(), false) && grow(ws->mh_ptr, ws->mh_bytes, w.mh, true) &&
           grow(ws->fl_ptr, ws->fl_bytes, w.fl, true);
}

// Measured on an H200 with the v8 walk (docs/perf-ssd-notes.md, .probe crossover), granite shapes,
// S = 1: the chunked path loses at 16 tokens (6.83 vs 5.85 us for the sequential kernel) and wins
// from 32 (7.17 vs 8.81 us). (On the H100 with the v6 walk it won from 8.)
int64_t ssd_min_tokens() { return 32; }

bool ssd_scan_launch(const ssmkit::scan_args& a, cudaStream_t stream, ssd_workspace* ws) {
    const ssmkit::scan_shape& sh = a.shape;
    if (!ws || !ssd_supports(sh)) return false;
    const int NS = pick_ns(sh.d_state);
    ssd_params p{};
    // 16-byte copies of x need 16-byte aligned rows and tiles that end on a 4-float boundary
    const uintptr_t xa = reinterpret_cast<uintptr_t>(a.x.data);
    p.x_vec = (xa % 16 == 0) && (a.x.nb[1] % 16 == 0) && (a.x.nb[2] % 16 == 0) &&
              (a.x.nb[3] % 16 == 0) && (sh.head_dim % 4 == 0);
    // x through TMA needs a tensor map (host-side encode, no allocation: capture-safe); if the
    // encoder is unavailable the kernel reads x directly (slower, same results). The v11 walk
    // reads x through TMA only, swizzled, in tiles of 64.
    bool v11 = want_v11(sh, NS) && ws->wgmma && p.x_vec && encode_x_map(&p.xmap, a, 64, true) &&
               encode_y_map(&p.ymap, a);
    const int PT = v11 ? 64 : pick_pt(sh);
    if (!v11 && p.x_vec) p.x_vec = encode_x_map(&p.xmap, a, PT, false);
    const ws_parts w = ws_layout(sh, NS, PT);
    if (ws->bytes < w.main() || ws->mh_bytes < w.mh || ws->fl_bytes < w.fl) return false;

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
    p.cb16 = reinterpret_cast<__half*>(static_cast<unsigned char*>(ws->ptr) + w.bc + w.dc);
    p.mh16 = static_cast<__half*>(ws->mh_ptr);
    p.cb_pre = PT != 80 && !walk_v6();
    p.wg = p.cb_pre && NS == 128 && ws->wgmma && (walk_v9() || walk_v10() || v11);
    p.mw = v11 && p.wg && v11_masks_in_walk(sh);
    p.mw_cb = p.mw && mask_walkcb();
    p.wm = p.wg && (walk_v10() || v11) && (w.mh > 0 || p.mw);
    p.wm_split = p.wm && !mask_fused(sh);
    p.mask_heads = forced_mask_heads() ? forced_mask_heads() : 4;
    p.cbf32 = reinterpret_cast<float*>(p.cb16);
    p.cb_lo = p.cb_pre && !p.wg && cb_keep_lo();   // v8 (the v9 walk does not read them)
    p.cb_split = p.cb_pre && cb_split();
    // The overlap forms (one segment: each walk block reads every flag of its chunks). The fused
    // prep beside the walk needs SMs the walk leaves free; without them it runs before the walk.
    {
        const int64_t walk_blocks = blocks_of_64(sh.head_dim, sh.n_head, sh.n_seqs);
        const int64_t sms = ssmkit::cuda::info_for_current_device().sm_count;
        unsigned* const fl = static_cast<unsigned*>(ws->fl_ptr);
        p.flag_sync = w.fl > 0 ? fl : nullptr;
        unsigned* const items = w.fl > 0 ? fl + kFlagSyncBytes / sizeof(unsigned) : nullptr;
        p.mask_flags = v11 && p.wm_split && !p.mw && mask_overlap() && w.fl > 0 ? items : nullptr;
        p.prep_flags = v11 && p.wm && !p.wm_split && !p.mw && v11_fused_overlap(sh) && w.fl > 0 && walk_blocks < sms
                           ? items
                           : nullptr;
        p.flags_seq_major = walk_blocks > sms;
        p.beside_cb = p.prep_flags && beside_cb_items();
    }
    // ssd_prep's blocks are latency-bound and the walk waits for the slowest: few heads per block
    // (short blocks) while the grid still fits one wave of two blocks per SM, else kPrepHeads.
    // Measured (H200, granite, us, 2 / 4 / 8 / 16 heads per block): 512 x 1 18.31 / 18.42 / 18.76 /
    // 19.49, 4096 x 1 104.1 / 100.4 / 97.6 / 97.2, 512 x 8 83.8 / 80.2 / 76.9 / 76.5; this rule
    // picks 2, 16 and 16.
    {
        const int64_t slots = 2 * int64_t(ssmkit::cuda::info_for_current_device().sm_count), cs = int64_t(p.nch) * p.S;
        p.prep_heads = kPrepHeads;
        if (p.prep_flags) p.prep_heads = 4;   // beside the walk: small items, the first chunk's ready sooner
        else
            for (int hpb = 2; hpb < kPrepHeads; hpb *= 2)
                if (cs * prep_parts(p, NS, hpb) <= slots) { p.prep_heads = hpb; break; }
        if (forced_prep_heads()) p.prep_heads = forced_prep_heads();
    }
    const uintptr_t ba = reinterpret_cast<uintptr_t>(a.B.data), ca = reinterpret_cast<uintptr_t>(a.C.data);
    p.bc_vec = (ba % 16 == 0) && (ca % 16 == 0) && (a.B.nb[1] % 16 == 0) && (a.B.nb[2] % 16 == 0) &&
               (a.B.nb[3] % 16 == 0) && (a.C.nb[1] % 16 == 0) && (a.C.nb[2] % 16 == 0) &&
               (a.C.nb[3] % 16 == 0);
    p.s_vec = (reinterpret_cast<uintptr_t>(a.s.data) % 16 == 0) && (sh.d_state % 4 == 0);
    const uintptr_t out_addr = reinterpret_cast<uintptr_t>(a.out.data);
    p.so_vec = ((out_addr + size_t(sh.y_elements()) * 4) % 16 == 0) && (sh.d_state % 4 == 0);
    p.y_vec = (out_addr % 8 == 0) && (sh.head_dim % 2 == 0);

    p.nseg = 1;
    p.seg_begin[0] = 0;
    p.seg_begin[1] = p.nch;
    // the two-warpgroup walk (mw) has no look-ahead; the overlap form keeps one segment (its
    // flags are read by the walk of each head, and the look-ahead would read them too)
    if (v11 && !p.mw && !walk_on_flags(p)) plan_segments(p, (p.P + 63) / 64);

    switch (NS) {
        case 32: return launch_ns<32>(p, PT, v11, stream);
        case 64: return launch_ns<64>(p, PT, v11, stream);
        case 128: return launch_ns<128>(p, PT, v11, stream);
        default: return false;
    }
}
