// Definitions shared by the chunked-scan kernels (scan_ssd.cu: ssd_prep and the host side;
// scan_ssd_pipe.cu: the walk).
#pragma once

#include <cuda.h>            // CUtensorMap (types only)
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda/wgmma.cuh"

#include <cstddef>
#include <cstdint>

namespace ssmkit::cuda::ssd {

constexpr int kL = 64;            // tokens per chunk

// Per (sequence, head, chunk) decay tile written by ssd_prep (float offsets). Every exponential
// the walk needs is here, computed in parallel ahead of it, so the walk only multiplies.
namespace dct {
constexpr int kCum = 0;        // cum_t: inclusive in-chunk sum of dt*A
constexpr int kDelta = 64;     // delta_t = softplus(dt_t)
constexpr int kWs = 128;       // delta_t exp(cum_63 - cum_t): x weight of the state update
constexpr int kWt = 192;       // delta_t exp(cum_{t|15} - cum_t): x weight to its 16-block end
constexpr int kRowE = 256;     // exp(cum_t): C S_in row factor
constexpr int kRowF = 320;     // exp(cum_t - cum_{16 (t/16) - 1}), t >= 16: row factor below the diagonal
constexpr int kBlkF = 384;     // [j] = exp(cum_{16 j + 15} - cum_{16 j - 1}), [0] = 1
constexpr int kEl = 388;       // exp(cum_63): state decay over the chunk
constexpr int kDiag = 400;     // [t][16]: exp(cum_t - cum_s) delta_s for s = 16 (t/16) + j <= t, else 0
constexpr int kFloats = 1440;  // 5760 bytes (a multiple of 128)
}  // namespace dct
constexpr int kThreads = 512;     // 8 y warps + 8 state warps
constexpr int kMaxState = 128;
constexpr int kMaxSegs = 8;     // v11: most segments of one sequence walked side by side    // largest d_state handled (padded state sizes 32, 64, 128)

struct ssd_params {   // passed as a __grid_constant__ (the tensor map must stay in param space)
    CUtensorMap xmap;    // x as a 4-d tensor (p, h, t, q): one TMA copy per chunk, zero-filled
                         // past T and head_dim (valid when x_vec)
    // inputs (element strides, floats)
    const float* s;      // [N, P, H, slots] contiguous
    const float* x;      // row p contiguous
    long long x_h, x_t, x_q;
    const float* dt;     // [H, T, S] contiguous
    const float* A;      // A[h * a_h]
    long long a_h;
    const float* B;
    const float* C;
    long long b_g, b_t, b_q, c_g, c_t, c_q;
    const int32_t* ids;
    float* out;
    // sizes
    int N, P, H, G, T, S, K, nch;
    // workspace
    __half* bc16;   // [q][g][chunk][2][L][NS + 8]: padded B/C tiles
    float* dc;      // [q][h][chunk][dct::kFloats]: cum, delta and the decay tables (dct)
    __half* cb16;   // [q][g][chunk][L][L + 8]: C B^T of the chunk, no decay (blocks on and below
                    // the diagonal written), when cb_pre
    bool cb_pre;    // C B^T once per (group, chunk) in ssd_prep; the walk applies the decay
    bool x_vec;     // x goes through the TMA tensor map (aligned; else plain loads)
    bool bc_vec;    // B/C rows can be read as float4
    bool s_vec;     // input state rows can be read as float4
    bool so_vec;    // output state rows can be written as float4 (y's size can leave them unaligned)
    bool y_vec;     // y rows can be written as float2
    int prep_heads; // heads per ssd_prep block
    bool wg;        // v9 walk (wgmma, sm_90a): ssd_prep writes the B^T and C tiles swizzled (wgmma.cuh)
    bool wm;        // v10 walk (with wg): ssd_prep writes each head's masked C B^T (mh16), no cb16
    __half* mh16;   // [q][h][chunk][L][L] swizzled K-major (wgmma.cuh): M[t][s] =
                    // (C B^T)[t][s] exp(cum_t - cum_s) delta_s for s <= t, else 0 (when wm)
    bool wm_split;  // with wm: C B^T in ssd_prep (cbf32), the masks in ssd_mask (a third launch)
    int mask_heads; // heads per ssd_mask block (wm_split)
    float* cbf32;   // [q][g][chunk][10][32][8]: fp32 C B^T blocks on and below the diagonal in the
                    // mma accumulator layout (block blk, lane, the lane's 8 values) (wm_split)
    CUtensorMap ymap;   // v11: y as a 4-d tensor (p, h, t, q), boxes of 32 x 64 with the 128-byte
                        // swizzle, stored from shared memory (clipped past T and head_dim)
    bool mw_cb;     // with mw: from the fp32 C B^T fragments ssd_prep leaves in cbf32 (no product)
    bool mw;        // v11 computes each chunk's masked M^T itself: no ssd_mask, no mh16, ssd_prep
                    // writes only the swizzled B^T/C tiles and the tables
    // v11: the chunks split into nseg segments walked side by side, segment i = chunks
    // [seg_begin[i], seg_begin[i + 1]) (seg_begin[0] = 0, seg_begin[nseg] = nch)
    int nseg;
    int seg_begin[kMaxSegs + 1];
    bool cb_lo;     // v8: ssd_prep keeps the rounding error of C B^T's diagonal blocks (fp16
                    // lo halves in the tile's unused upper triangle and padding), the walk adds it
    bool cb_split;  // ssd_prep's C B^T from B and C split into fp16 hi and lo halves (three
                    // products), so that it is exact to ~2^-22 before it is stored
    bool beside_cb; // with prep_flags: each chunk's items are G C B^T items, then the parts
                    // (prep_flags [q][chunk][G + part]); the walk waits for both kinds (kept in
                    // the padding before the pointers below, so the other fields keep their offsets)
    // The overlap forms (the v11 walk beside the kernel that writes its inputs, on per-item
    // flags instead of griddepcontrol.wait). A flag holds the number of the call that set it:
    // flag_sync[0] is the number of calls completed (the walk's last block counts them, in
    // flag_sync[1]), so this call's items are done when their flag equals flag_sync[0] + 1; no
    // kernel has to clear flags between calls, and a graph replays correctly.
    unsigned* mask_flags;   // ssd_mask beside the walk: [q][h][chunk], the masked tile is written
    unsigned* prep_flags;   // the fused prep beside the walk: [q][chunk][part], the item is done
    unsigned* flag_sync;    // [0] calls completed, [1] walk blocks finished in this call
    bool flags_seq_major;   // items taken sequence by sequence (else chunk by chunk over all)
};

// One of the overlap forms is on (the walk waits on flags).
__host__ __device__ inline bool walk_on_flags(const ssd_params& p) { return p.mask_flags || p.prep_flags; }

// A group's heads in parts of at most hpb (ssd_mask's and the v10 prep's blocks): part z of the
// grid is part z % parts_per_group of group z / parts_per_group, heads [h0, h0 + nh).
struct head_part {
    int g, part, h0, nh;
};
__host__ __device__ inline int parts_per_group(int H, int G, int hpb) {
    const int hpg = H / G, b = hpb < hpg ? hpb : hpg;
    return (hpg + b - 1) / b;
}
__device__ __forceinline__ head_part group_part(const ssd_params& p, int z, int hpb) {
    const int hpg = p.H / p.G, b = min(hpb, hpg);
    const int ppg = parts_per_group(p.H, p.G, hpb);
    const int g = z / ppg, part = z % ppg;
    return {g, part, g * hpg + part * b, min(b, hpg - part * b)};
}
// The part that holds head h.
__device__ __forceinline__ int part_of_head(const ssd_params& p, int h, int hpb) {
    const int hpg = p.H / p.G, b = min(hpb, hpg), g = h / hpg;
    return g * parts_per_group(p.H, p.G, hpb) + (h - g * hpg) / b;
}

// ns since an arbitrary epoch, the same on every SM (diagnostic timelines: SSMKIT_SSD_TRACE)
__device__ __forceinline__ unsigned long long globaltimer_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
    return t;
}

// Diagnostic builds (SSMKIT_SSD_TRACE): the index of the running launch of a kernel, counted by
// its blocks in *counter (blocks started so far over the grid size); call from every thread.
__device__ __forceinline__ unsigned trace_launch_index(unsigned* counter) {
    __shared__ unsigned idx;
    if (threadIdx.x == 0) idx = atomicAdd(counter, 1u) / (gridDim.x * gridDim.y * gridDim.z);
    __syncthreads();
    return idx;
}

// keep ? exp(x) * w : 0 without a branch. Written as `keep ? __expf(x) * w : 0.f`, ptxas put each
// element in a branch region of its own (BSSY/BSYNC) around ex2.approx.f32 and its denormal
// fix-up (a predicated halving and squaring): ncu on v10's ssd_prep showed those at the top of
// its stall samples. Here the exponent is selected first (0 where the element is dropped, so
// nothing overflows there), one flush-to-zero MUFU.EX2 runs unconditionally and a select
// follows. Flushing changes only results below 2^-126, which every caller rounds to fp16 (zero).
// Measured (H200, same call, against the branchy form): v10 4096 x 1 100.4 -> 97.9 us, Nemotron-H
// (the v6 walk's masked C B^T blocks) 37.1 -> 36.2; v8's diagonal-row loop in ssd_prep was 0.6-0.8
// us slower with it at 4096 x 1 and 512 x 8, so that loop keeps the branchy form.
__device__ __forceinline__ float masked_exp(bool keep, float x, float w) {
    float e;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"((keep ? x : 0.f) * 1.4426950408889634f));
    return keep ? e * w : 0.f;
}

// exp(x) as one flush-to-zero MUFU.EX2 (no denormal fix-up); for factors <= 1 whose tiny values
// are rounded to fp16 anyway.
__device__ __forceinline__ float exp_ftz(float x) {
    float e;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(x * 1.4426950408889634f));
    return e;
}

__device__ __forceinline__ float softplus_f(float v) { return v > 20.f ? v : log1pf(expf(v)); }

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Flags between kernels that run side by side (the overlap form of ssd_mask and the v11 walk)
__device__ __forceinline__ void st_release_gpu(unsigned* p, unsigned v) {
    asm volatile("st.release.gpu.global.u32 [%0], %1;\n" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ unsigned ld_acquire_gpu(const unsigned* p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
    return v;
}
// Orders this thread's earlier generic-proxy accesses (an acquire) before its later async-proxy
// ones (TMA and bulk copies reading what the other kernel wrote)
__device__ __forceinline__ void fence_proxy_async_global() { asm volatile("fence.proxy.async.global;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x2_t(uint32_t& r0, uint32_t& r1, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r0), "=r"(r1) : "r"(smem_u32(p)));
}

// Four 8x8 fp16 blocks stored transposed: register r_m of lane i holds row i/4, columns
// 2 (i%4) (+1) of block m; lane i gives the address of row i%8 of block i/8 of the destination.
__device__ __forceinline__ void stsm_x4_t(const void* p, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(smem_u32(p)), "r"(r0),
                 "r"(r1), "r"(r2), "r"(r3)
                 : "memory");
}
__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void mbar_init(uint64_t* bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count));
}
__device__ __forceinline__ void mbar_expect_arrive(uint64_t* bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}
// Barrier `id` (1..15) among the `threads` threads (a multiple of 32) that reach it.
__device__ __forceinline__ void named_sync(int id, int threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, unsigned parity) {
    asm volatile(
        "{\n .reg .pred P;\n WAIT_%=:\n"
        " mbarrier.try_wait.parity.shared::cta.b64 P, [%0], %1;\n"
        " @!P bra WAIT_%=;\n}\n" ::"r"(smem_u32(bar)), "r"(parity)
        : "memory");
}
// Bulk (TMA-engine) copy global -> shared, completing on an mbarrier. size % 16 == 0.
__device__ __forceinline__ void bulk_g2s(void* dst, const void* src, unsigned bytes, uint64_t* bar) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
            smem_u32(dst)),
        "l"(src), "r"(bytes), "r"(smem_u32(bar))
        : "memory");
}
// Tensor (TMA) store shared -> global of one box, in the thread's bulk async-group.
__device__ __forceinline__ void tma_store(const CUtensorMap* map, const void* src, int c0, int c1, int c2, int c3) {
    asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(
                     reinterpret_cast<uint64_t>(map)),
                 "r"(smem_u32(src)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
                 : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// Until at most N of this thread's bulk groups still read their shared-memory source.
template <int N>
__device__ __forceinline__ void bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory"); }
// Until all of this thread's bulk groups are complete (their writes done).
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
__device__ __forceinline__ void tma_x(void* dst, const CUtensorMap* map, int c0, int c1, int c2, int c3, uint64_t* bar) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(
            smem_u32(dst)),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_u32(bar))
        : "memory");
}


// B fragments (K = 16 rows starting at k0, N = PT columns) of a row-major [k][n] fp16 tile with
// row stride ld: b[j][0..1] for each n8 column tile j.
template <int NJ>
__device__ __forceinline__ void load_b_kn(uint32_t (&b)[NJ][2], const __half* base, int ld, int k0, int lane) {
#pragma unroll
    for (int j = 0; j + 1 < NJ; j += 2) {
        const __half* p = base + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + j * 8 + (lane >> 4) * 8;
        ldsm_x4_t(b[j][0], b[j][1], b[j + 1][0], b[j + 1][1], p);
    }
    if constexpr (NJ % 2) {
        constexpr int j = NJ - 1;
        const __half* p = base + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + j * 8;
        ldsm_x2_t(b[j][0], b[j][1], p);
    }
}

// One 16x16 block of C B^T (rows = tokens 16 rg.., columns = tokens 16 jj..) of a chunk's fp16
// B and C tiles (row stride ld halves, NS columns), fp32 accumulation: acc[half] holds columns
// 16 jj + 8 half + 2 qd (+1) of rows gr and gr + 8 in the mma accumulator layout.
template <int NS>
__device__ __forceinline__ void cb_block(float (&acc)[2][4], const __half* Bc, const __half* Cc, int ld, int rg, int jj,
                                         int lane) {
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) acc[hf][0] = acc[hf][1] = acc[hf][2] = acc[hf][3] = 0.f;
#pragma unroll
    for (int k = 0; k < NS / 16; ++k) {
        uint32_t a[4], b0, b1, b2, b3;
        ldsm_x4(a[0], a[1], a[2], a[3], Cc + (rg * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + k * 16 + (lane >> 4) * 8);
        ldsm_x4(b0, b1, b2, b3, Bc + (jj * 16 + (lane & 7) + (lane >> 4) * 8) * ld + k * 16 + ((lane >> 3) & 1) * 8);
        mma16816(acc[0], a, b0, b1);
        mma16816(acc[1], a, b2, b3);
    }
}
// cb_block with B and C each split as hi + lo / kCbSplitScale (Bl, Cl: the lo tiles, same
// layout): hi hi + (lo hi + hi lo) / kCbSplitScale, the lo lo term (~2^-22 of the product)
// dropped. With fp16 operands alone, rounding B and C was the largest error of the path where
// C B^T cancels (ops_property_test, K = 4, model-like data: NMSE 5.85e-7 on the H200, modelled
// 5.85e-7; 8.9e-8 modelled with this). lo is stored scaled so that it stays a normal fp16.
constexpr float kCbSplitScale = 2048.f;
template <int NS>
__device__ __forceinline__ void cb_block_split(float (&acc)[2][4], const __half* Bc, const __half* Cc, const __half* Bl,
                                               const __half* Cl, int ld, int rg, int jj, int lane) {
    float lc[2][4], lb[2][4];   // C lo B hi and C hi B lo apart: three chains of NS / 16 mma, not 8 + 16
#pragma unroll
    for (int hf = 0; hf < 2; ++hf)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[hf][e] = lc[hf][e] = lb[hf][e] = 0.f;
    const int a_off = (rg * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + (lane >> 4) * 8;
    const int b_off = (jj * 16 + (lane & 7) + (lane >> 4) * 8) * ld + ((lane >> 3) & 1) * 8;
#pragma unroll
    for (int k = 0; k < NS / 16; ++k) {
        uint32_t a[4], al[4], b0, b1, b2, b3, l0, l1, l2, l3;
        ldsm_x4(a[0], a[1], a[2], a[3], Cc + a_off + k * 16);
        ldsm_x4(b0, b1, b2, b3, Bc + b_off + k * 16);
        ldsm_x4(al[0], al[1], al[2], al[3], Cl + a_off + k * 16);
        ldsm_x4(l0, l1, l2, l3, Bl + b_off + k * 16);
        mma16816(acc[0], a, b0, b1);
        mma16816(acc[1], a, b2, b3);
        mma16816(lc[0], al, b0, b1);
        mma16816(lc[1], al, b2, b3);
        mma16816(lb[0], a, l0, l1);
        mma16816(lb[1], a, l2, l3);
    }
#pragma unroll
    for (int hf = 0; hf < 2; ++hf)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[hf][e] += (lc[hf][e] + lb[hf][e]) * (1.f / kCbSplitScale);
}
// Block index 0..9 (on and below the diagonal, row-major) -> (row group, column block).
__device__ __forceinline__ void cb_block_pos(int blk, int& rg, int& jj) {
    rg = blk >= 6 ? 3 : blk >= 3 ? 2 : blk >= 1 ? 1 : 0;
    jj = blk - rg * (rg + 1) / 2;
}

// v10: the masked C B^T of one (sequence, head, chunk), 64 x 64 fp16, swizzled (8 KB)
constexpr size_t kMhHalves = size_t(kL) * kL;

// One 16 x 16 block (rg, jj) of a head's masked C B^T, M[t][s] = (C B^T)[t][s] exp(cum_t - cum_s)
// delta_s (s <= t), from the C B^T block in mma fragments (rows rg*16 + gr and +8, columns
// jj*16 + hf*8 + 2 qd and +1) into the swizzled tile at dst (global or shared memory), as half2
// (the four threads of a row group fill one 16-byte piece). Below the diagonal block the decay
// factors through the end e of the column block, exp(cum_t - cum_s) delta_s = exp(cum_t - cum_e)
// * kWt_s, both factors <= 1 (nothing overflows): two exponentials per thread instead of eight.
// The diagonal block keeps the direct form (there exp(cum_t - cum_e) can overflow while kWt_s
// underflows). cum, delta and wt: the head's 64-float rows of those tables.
__device__ __forceinline__ void mask_block(const float* cum, const float* delta, const float* wt, const float (&acc)[2][4],
                                           int rg, int jj, int lane, unsigned char* dst) {
    const int gr = lane >> 2, qd = lane & 3;
    const int r0 = rg * 16 + gr, r1 = r0 + 8;
    const int s_[2] = {jj * 16 + 2 * qd, jj * 16 + 8 + 2 * qd};
    const float c0 = cum[r0], c1 = cum[r1];
    float m[2][4];
    if (rg != jj) {
        const float ce = cum[jj * 16 + 15];
        const float u0 = exp_ftz(c0 - ce), u1 = exp_ftz(c1 - ce);
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const float2 w = *reinterpret_cast<const float2*>(&wt[s_[hf]]);
            m[hf][0] = acc[hf][0] * u0 * w.x;
            m[hf][1] = acc[hf][1] * u0 * w.y;
            m[hf][2] = acc[hf][2] * u1 * w.x;
            m[hf][3] = acc[hf][3] * u1 * w.y;
        }
    } else {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int s = s_[hf];
            const float2 cs = *reinterpret_cast<const float2*>(&cum[s]);
            const float2 d = *reinterpret_cast<const float2*>(&delta[s]);
            m[hf][0] = masked_exp(s <= r0, c0 - cs.x, acc[hf][0] * d.x);
            m[hf][1] = masked_exp(s + 1 <= r0, c0 - cs.y, acc[hf][1] * d.y);
            m[hf][2] = masked_exp(s <= r1, c1 - cs.x, acc[hf][2] * d.x);
            m[hf][3] = masked_exp(s + 1 <= r1, c1 - cs.y, acc[hf][3] * d.y);
        }
    }
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
        *reinterpret_cast<uint32_t*>(dst + wg::sw128_offset_k64(r0, s_[hf])) = pack_half2(m[hf][0], m[hf][1]);
        *reinterpret_cast<uint32_t*>(dst + wg::sw128_offset_k64(r1, s_[hf])) = pack_half2(m[hf][2], m[hf][3]);
    }
}

constexpr int kCbLd = kL + 8;   // halves per row of a C B^T tile (padding against bank conflicts)
__host__ __device__ constexpr size_t cb_tile_halves() { return size_t(kL) * kCbLd; }
// ssd_prep's C B^T output per (sequence, group, chunk): the fp16 tile, or with wm_split the fp32
// fragments of the ten blocks (10 x 32 lanes x 8 floats)
constexpr size_t kCbfFloats = size_t(10) * 32 * 8;
// Where lane `lane` of C B^T block `blk` keeps its fragment (two float4) among those fp32 fragments
__device__ __forceinline__ float4* cb_fragment(const ssd_params& p, int q, int g, int c, int blk, int lane) {
    return reinterpret_cast<float4*>(p.cbf32 + (((size_t)q * p.G + g) * p.nch + c) * kCbfFloats) + (blk * 32 + lane) * 2;
}
__host__ __device__ constexpr size_t cb_region_bytes() {
    return cb_tile_halves() * 2 > kCbfFloats * 4 ? cb_tile_halves() * 2 : kCbfFloats * 4;
}
constexpr int kMaskThreads = 320;   // ssd_mask: one warp per C B^T block

constexpr int kPrepThreads = 512;
constexpr int kPrepBatch = 8;
// Heads per ssd_prep block (p.prep_heads, 2 to kPrepHeads): one warp each for the scan of
// cum/delta; the decay tables of all of them are then spread over the block's threads.
constexpr int kPrepHeads = kPrepThreads / 32;
__host__ __device__ inline int prep_head_blocks(int H, int heads_per_block) { return (H + heads_per_block - 1) / heads_per_block; }

// ssd_prep blocks per chunk that compute C B^T (one per group; they also write the B/C tiles), and
// that only round B/C to fp16 (without cb_pre).
__host__ __device__ inline int prep_cb_blocks(int G, bool cb_pre) { return cb_pre ? G : 0; }
__host__ __device__ inline int prep_bc_blocks(int G, int NS, bool cb_pre) {
    if (cb_pre) return 0;
    const int quads = G * 2 * kL * (NS / 4);
    return (quads + kPrepThreads * kPrepBatch - 1) / (kPrepThreads * kPrepBatch);
}

// B/C tile of one (sequence, group, chunk) in the workspace: B rows then C rows, each row NS
// halves plus 8 of padding, exactly the shared-memory image the main kernel's ldmatrix wants.
template <int NS> __host__ __device__ constexpr int bc_ld() { return NS + 8; }
template <int NS> __host__ __device__ constexpr size_t bc_tile_halves() { return size_t(2) * kL * bc_ld<NS>(); }

// Raises Kernel's dynamic shared memory limit to bytes, once per device (static + dynamic pass
// 48 KB only so; every caller of one instance asks for the same bytes). False when refused.
template <auto Kernel>
bool raise_smem_limit(size_t bytes) {
    static unsigned long long prepared = 0;   // bit per device ordinal
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    if (dev < 64 && ((prepared >> dev) & 1ull)) return true;
    if (cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    if (dev < 64) prepared |= 1ull << dev;
    return true;
}

// The walk (scan_ssd_pipe.cu), for head_dim tiles of 32, 64 and 80 (p.cb_pre: 32 and 64 only):
// queues it and returns true, or returns false (nothing queued) when it does not handle (NS, PT).
bool launch_main_pipe(const ssd_params& p, int NS, int PT, cudaStream_t stream);

// The v11 walk (scan_ssd_wg1.cu): one warpgroup per (sequence, head, head_dim tile of 64), d_state
// 128, K = 1, after ssd_prep in its v10 form (p.wg, p.wm) and with p.xmap encoded for boxes of 32
// columns with the 128-byte swizzle. Queues it and returns true, or returns false.
bool launch_walk_wg1(const ssd_params& p, cudaStream_t stream);

}  // namespace ssmkit::cuda::ssd
