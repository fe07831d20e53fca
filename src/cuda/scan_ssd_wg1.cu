// The v11 walk of the chunked (SSD) scan: one warpgroup (128 threads) per (sequence, head,
// head_dim tile of 64) walks the chunks in order, with every product on wgmma and the running
// state in the accumulator registers of that one warpgroup.
//
// The earlier walks (scan_ssd_pipe.cu) keep the state S [n][p] in the registers of the state
// warps and give y to other warps: each chunk, S goes to shared memory as fp16 for C S_in, x is
// converted into shared memory, and several warps reload the same operands (ncu: the walk is
// bound by shared-memory traffic, ~210 KB per chunk for tiles of 32). Here the problem is
// transposed, head_dim p as the M dimension of every product:
//   y^T [p][t]  = (S_in^T C^T) [p][t] * exp(cum_t)  +  (x^T M^T) [p][t]
//   S^T [p][n]  = exp(cum_last) S^T + (x w)^T B      (w_t = delta_t exp(cum_last - cum_t))
// S^T is the accumulator of the state update's wgmma (m64n128); its fp16 copy is, register for
// register, the A fragment of the next chunk's S_in^T C^T (the accumulator layout of m64nN equals
// the A-fragment layout of m64k16), so the state never leaves the registers. x^T and (x w)^T are
// A fragments too, read from the TMA-swizzled x tile (conflict-free). Only B^T, C and M (the
// per-head masked C B^T that ssd_prep writes for the v10 walk) are read by the tensor cores from
// shared memory: 40 KB per chunk and head, against ~420 KB for two v8 blocks of 32 columns.
//
// y goes out through shared memory and TMA stores (the accumulator holds y^T; 32 scalar stores
// per thread and chunk with their address arithmetic would sit on the walk's serial path).
// Per chunk: S_in^T C^T (8 k-steps) and the state update (4, on the state already scaled by
// exp(cum_last)) are issued back to back and run together; after the first completes, its columns are scaled by exp(cum_t) and x^T M^T (4)
// accumulates on top. Three stages of copies (B^T/C 32 KB, M 8 KB, x 16 KB, tables 1.6 KB).
// Handles d_state 128 (ssd_prep pads 65..128), any head_dim (partial tiles masked), K = 1 (the
// final state only; kept states need the other walks), x through TMA; sm_90a only.
// M comes from ssd_mask's tiles (kMw = false) or from a second warpgroup of this block that
// computes it in shared memory ahead of the walk (kMw = true, the producer below). Optionally
// (kMw = false) a sequence's chunks are split into segments walked side by side (look-ahead).
// Measurements of every form: docs/perf-ssd-notes.md, tenth session.
#include "cuda/scan_ssd.h"
#include "cuda/pdl.cuh"
#include "cuda/ssd_device.cuh"
#include "cuda/wgmma.cuh"

#include <cuda_fp16.h>

#include <cstdint>

namespace ssmkit::cuda::ssd {
namespace {

namespace wg = ssmkit::cuda::wg;

constexpr int kWgThreads = 128;
constexpr int kPt = 64;   // head_dim tile: the M of every product

struct wg1_layout {
    static constexpr size_t bc = size_t(2) * kL * 128 * 2;   // B^T [n][t], then C [t][n], swizzled
    static constexpr size_t mh = kMhHalves * 2;              // M [t][s], swizzled
    static constexpr size_t xh = size_t(kL) * 32 * 4;        // x, 32 columns [t][p]: one TMA box
    static constexpr size_t dc = size_t(dct::kDiag) * 4;     // the decay table without diagonal rows
    static constexpr size_t off_mh = bc, off_x = bc + mh, off_dc = bc + mh + 2 * xh;
    static constexpr size_t stage = (off_dc + dc + 1023) / 1024 * 1024;
    static constexpr int stages = 3;
    static constexpr size_t ybuf = 2 * xh;                      // y of a chunk, [t][p] as two TMA boxes
    static constexpr size_t off_y = stages * stage;             // two y buffers (chunk parity)
    static constexpr size_t off_bars = off_y + 2 * ybuf;
    static constexpr size_t total = off_bars + 64 + 1024;   // + mbarriers, + 1024-byte alignment
    static_assert(total <= 227 * 1024, "shared memory");
    static_assert(off_x % 1024 == 0 && xh % 1024 == 0 && off_mh % 1024 == 0, "swizzled tiles");
};

// Rejected variants, measured against this kernel in one call (H200, granite, us at 512 x 1 /
// 4096 x 1 / 512 x 8): y stored right after its chunk's products instead of under the next
// chunk's, 20.27 / 95.54 / 66.65 against 19.18 / 86.11 / 66.78; two warpgroups splitting d_state
// (the second adding its partial y through shared memory), 29.57 / 171.82 / 90.02; the masks
// computed by the walking warpgroup itself, 127.4 us at 4096 x 1 against 87.7.
// kMw: a second warpgroup computes each chunk's masked M^T in shared memory (below) ahead of the
// walk, instead of the walk reading ssd_mask's tiles. Only the first warpgroup walks.
// kOvl (with !kMw): an overlap form (walk_on_flags: ssd_mask or the fused prep runs beside the
// walk): a fifth warp issues every stage load, each once its chunk's flags are set and the walk
// has freed the stage (a second mbarrier per stage), so neither the flags' round trips nor a
// late chunk hold the walking warpgroup; the call's last block counts the call complete.
// kCbItems (with kOvl): the fused prep's chunks have their C B^T items apart (p.beside_cb).
template <bool kMw, bool kOvl, bool kCbItems = false>
__global__ void __launch_bounds__(kMw ? 2 * kWgThreads : kOvl ? kWgThreads + 32 : kWgThreads, 1)
    ssd_walk_wg1(const __grid_constant__ ssd_params p) {
    static_assert(!(kMw && kOvl), "the overlap form reads ssd_mask's tiles");
    static_assert(!kCbItems || kOvl, "C B^T items are a form of the fused prep beside the walk");
    using LY = wg1_layout;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    unsigned char* const smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);
    uint64_t* const bars = reinterpret_cast<uint64_t*>(smem + LY::off_bars);

    const int n_pt = (p.P + kPt - 1) / kPt;
    const int pt = blockIdx.x % n_pt, h = blockIdx.x / n_pt, q = blockIdx.y, sg = blockIdx.z;
    // this block's segment of chunks [cb, ce); a segment after the first first sums the state
    // its start (nl look-ahead loads, chunks cb - 1 down to 0), then walks like the first
    const int cb = p.seg_begin[sg], ce = p.seg_begin[sg + 1];
    const int nl = sg > 0 ? cb : 0, nu = nl + (ce - cb);
    const int p0 = pt * kPt, pvalid = min(kPt, p.P - p0);
    const int g = h / (p.H / p.G);
    // visibly uniform (a shuffle), so ptxas keeps the wgmma asynchronous
    const int wgi = __shfl_sync(0xffffffffu, int(threadIdx.x >> 7), 0);   // warpgroup
    const int warp = __shfl_sync(0xffffffffu, int(threadIdx.x >> 5) & 3, 0), lane = threadIdx.x & 31;
    const int gr = lane >> 2, qd = lane & 3;
    const int pr0 = 16 * warp + gr;   // this thread's rows p (tile-relative): pr0 and pr0 + 8

    const __half* bcq = p.bc16 + ((size_t)q * p.G + g) * p.nch * bc_tile_halves<128>();
    const __half* mhq = p.mh16 + ((size_t)q * p.H + h) * p.nch * kMhHalves;
    const float* dcq = p.dc + ((size_t)q * p.H + h) * p.nch * dct::kFloats;
    // Loads are numbered u = 0 .. nu - 1 (stage u % 3, phase u / 3): the look-ahead's chunks
    // first, then the walk's (u = nl + c - cb).
    auto stage = [&](int u) { return smem + (u % LY::stages) * LY::stage; };
    auto chunk_of = [&](int u) { return u < nl ? cb - 1 - u : cb + (u - nl); };

    if (threadIdx.x == 0) {
        for (int i = 0; i < 2 * LY::stages; ++i) mbar_init(&bars[i], 1);   // loads, then masks (kMw) or free stages (kOvl)
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    // x is an input (its copies may start before ssd_prep is done); the byte count covers the
    // stage (a look-ahead load leaves out C and M)
    const unsigned issuer = kOvl ? kWgThreads : 0;   // the thread that issues the stage loads
    auto issue_x = [&](int u) {
        if (u >= nu || threadIdx.x != issuer) return;
        const int c = chunk_of(u);
        uint64_t* bar = &bars[u % LY::stages];
        mbar_expect_arrive(bar, u < nl ? unsigned(LY::bc / 2 + 2 * LY::xh + LY::dc)
                                       : unsigned(LY::bc + (kMw ? 0 : LY::mh) + 2 * LY::xh + LY::dc));
        unsigned char* st = stage(u);
        tma_x(st + LY::off_x, &p.xmap, p0, h, c * kL, q, bar);
        tma_x(st + LY::off_x + LY::xh, &p.xmap, p0 + 32, h, c * kL, q, bar);
    };
    auto issue_dep = [&](int u) {
        if (u >= nu || threadIdx.x != issuer) return;
        const int c = chunk_of(u);
        unsigned char* st = stage(u);
        uint64_t* bar = &bars[u % LY::stages];
        if (u < nl) {
            bulk_g2s(st, bcq + (size_t)c * bc_tile_halves<128>(), unsigned(LY::bc / 2), bar);   // B^T only
        } else {
            bulk_g2s(st, bcq + (size_t)c * bc_tile_halves<128>(), unsigned(LY::bc), bar);
            if (!kMw) bulk_g2s(st + LY::off_mh, mhq + (size_t)c * kMhHalves, unsigned(LY::mh), bar);
        }
        bulk_g2s(st + LY::off_dc, dcq + (size_t)c * dct::kFloats, unsigned(LY::dc), bar);
    };

    // ---- prologue (overlaps ssd_prep): S^T in the accumulator layout, S[4 j + e] = S^T[pr0 + 8 (e / 2)]
    // [8 j + 2 qd + e % 2]; add_slot_state adds scale times the initial state from slot ids[q]
    float S[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) S[i] = 0.f;
    auto add_slot_state = [&](float scale) {
        const int slot = p.ids[q];
        const float* s0 = p.s + (size_t)p.N * (p0 + (size_t)p.P * ((size_t)h + (size_t)p.H * slot));
#pragma unroll
        for (int j = 0; j < 16; ++j)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int pp = pr0 + 8 * r, n = 8 * j + 2 * qd;
                float2 v = make_float2(0.f, 0.f);
                if (pp < pvalid) {
                    const float* src = s0 + (size_t)p.N * pp + n;
                    if (p.s_vec && n + 1 < p.N) v = __ldg(reinterpret_cast<const float2*>(src));
                    else {
                        if (n < p.N) v.x = __ldg(src);
                        if (n + 1 < p.N) v.y = __ldg(src + 1);
                    }
                }
                S[4 * j + 2 * r] += scale * v.x;
                S[4 * j + 2 * r + 1] += scale * v.y;
            }
    };
    if (sg == 0 && wgi == 0) add_slot_state(1.f);
    __syncthreads();   // mbarriers initialised (the last barrier of the whole block: then the
                       // warpgroups part, and the walk synchronizes with wg_sync)
    // kOvl: this call's number, which the flags of its items hold once they are written
    const unsigned call = kOvl ? ld_acquire_gpu(p.flag_sync) + 1 : 0u;
    if constexpr (kOvl) {
        if (wgi == 1) {   // the loader warp: nothing of what it loads is waited for otherwise
            if (threadIdx.x == issuer) {
                auto wait_flag = [&](const unsigned* fl) {
                    while (ld_acquire_gpu(fl) != call) __nanosleep(64);
                };
                // the fused prep's items: this head's part (tables, masks) and the group's first
                // part (the B^T/C tile); kCbItems: the head's part after the G C B^T items, and
                // the group's C B^T item (the B^T/C tile)
                const int cbi = kCbItems ? p.G : 0;
                const int zh = cbi + part_of_head(p, h, p.prep_heads), z0 = kCbItems ? g : g * parts_per_group(p.H, p.G, p.prep_heads);
                const int parts = p.G * parts_per_group(p.H, p.G, p.prep_heads) + cbi;
                for (int u = 0; u < nu; ++u) {
                    if (u >= LY::stages) mbar_wait(&bars[LY::stages + u % LY::stages], unsigned(u / LY::stages - 1) & 1u);
                    issue_x(u);
                    const int c = chunk_of(u);
                    if (p.mask_flags) {
                        wait_flag(p.mask_flags + ((size_t)q * p.H + h) * p.nch + c);
                    } else {
                        const unsigned* fl = p.prep_flags + ((size_t)q * p.nch + c) * parts;
                        wait_flag(fl + zh);
                        if (z0 != zh) wait_flag(fl + z0);
                    }
                    fence_proxy_async_global();   // the bulk copies below read what the flags cover
                    issue_dep(u);
                }
            }
            return;
        }
    } else {
        for (int u = 0; u < LY::stages; ++u) issue_x(u);
        ssmkit::cuda::pdl_wait_previous();   // ssd_prep's tiles and tables are complete and visible
        for (int u = 0; u < LY::stages; ++u) issue_dep(u);
    }

    // Element (t, p) of a 64 x 32 box under the TMA's 128-byte swizzle (x as loaded, y as stored):
    // t * 128 + ((p / 4 ^ t % 8) * 16) + (p % 4) * 4. For this thread's rows p = pr0 (+8) and tokens
    // t = 8 i + 2 qd (+1) the swizzle term does not depend on i: xo[r][par] is the offset of
    // (2 qd + par, pr0 % 32 + 8 r), and (8 i + 2 qd + par, same p) lies i * 1024 bytes further.
    uint32_t xo[2][2];
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int par = 0; par < 2; ++par) {
            const int pc = (pr0 & 31) + 8 * r, tt = 2 * qd + par;
            xo[r][par] = tt * 128 + ((((pc >> 2) ^ tt) & 7) << 4) + (pc & 3) * 4;
        }
    const uint32_t xhalf = (pr0 >> 5) * uint32_t(LY::xh);   // the box of this thread's columns

    // x^T and (x w)^T of load u as A fragments (K = tokens): rows pr0 (+8), tokens 16 kk + 2 qd (+1)
    // and +8 (+9), read from the swizzled boxes with the offsets above
    auto load_x = [&](int u, uint32_t (&xa)[4][4], uint32_t (&xw)[4][4]) {
        const unsigned char* st = stage(u);
        const float* tab = reinterpret_cast<const float*>(st + LY::off_dc);
        const unsigned char* xb = st + LY::off_x + xhalf;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
#pragma unroll
            for (int tk = 0; tk < 2; ++tk) {
                const int i = 2 * kk + tk;   // tokens 8 i + 2 qd (+1)
                const float2 w = *reinterpret_cast<const float2*>(tab + dct::kWs + 8 * i + 2 * qd);
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    const float x0 = *reinterpret_cast<const float*>(xb + i * 1024 + xo[r][0]);
                    const float x1 = *reinterpret_cast<const float*>(xb + i * 1024 + xo[r][1]);
                    xa[kk][r + 2 * tk] = pack_half2(x0, x1);
                    xw[kk][r + 2 * tk] = pack_half2(x0 * w.x, x1 * w.y);
                }
            }
    };
    // S^T as fp16 A fragments (K = n): k-step kk is accumulator tiles j = 2 kk and 2 kk + 1
    auto pack_state = [&](uint32_t (&sa)[8][4]) {
#pragma unroll
        for (int kk = 0; kk < 8; ++kk) {
            sa[kk][0] = pack_half2(S[8 * kk + 0], S[8 * kk + 1]);
            sa[kk][1] = pack_half2(S[8 * kk + 2], S[8 * kk + 3]);
            sa[kk][2] = pack_half2(S[8 * kk + 4], S[8 * kk + 5]);
            sa[kk][3] = pack_half2(S[8 * kk + 6], S[8 * kk + 7]);
        }
    };
    auto wg_sync = [&]() { named_sync(1, kWgThreads); };   // the walking warpgroup only
    auto wait_stage = [&](int u) { mbar_wait(&bars[u % LY::stages], unsigned(u / LY::stages) & 1u); };
    const int ub = nl - cb;   // load index of walk chunk c: c + ub

    // Software pipelined: only the state carries a dependency from chunk to chunk, so chunk c+1's
    // x fragments are read while chunk c's state update and x^T M^T run on the tensor cores.
    // y of chunk cc out: the previous store from its buffer has read it, stage cc's slot is refilled
    // (every read of stage cc is done: its wgmma have completed), y[t][p] = y^T[p][t] (accumulator
    // 4 j + e: row pr0 + 8 (e / 2), token 8 j + 2 qd + e % 2) goes into the buffer as the TMA boxes'
    // image (conflict-free: the x layout), and one thread issues two tensor stores (clipped past T
    // and head_dim)
    auto flush_y = [&](int cc, const float (&v)[32]) {
        if (threadIdx.x == 0) bulk_wait_read<1>();   // chunk cc - 2's store has read the buffer
        wg_sync();
        if constexpr (kOvl) {   // the loader refills the stage
            if (threadIdx.x == 0) mbar_arrive(&bars[LY::stages + (cc + ub) % LY::stages]);
        } else {
            issue_x(cc + ub + LY::stages);
            issue_dep(cc + ub + LY::stages);
        }
        unsigned char* const yb = smem + LY::off_y + (cc & 1) * LY::ybuf;
#pragma unroll
        for (int j = 0; j < 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) *reinterpret_cast<float*>(yb + xhalf + j * 1024 + xo[e >> 1][e & 1]) = v[4 * j + e];
        wg::fence_smem_for_async();
        wg_sync();
        if (threadIdx.x == 0) {
            tma_store(&p.ymap, yb, p0, h, cc * kL, q);
            tma_store(&p.ymap, yb + LY::xh, p0 + 32, h, cc * kL, q);
            bulk_commit();
        }
    };

    // kMw: M^T[s][t] = (B C^T)[s][t] exp(cum_t - cum_s) delta_s for s <= t, else 0, of load u.
    // The raw product is one more wgmma (A = the B^T tile read MN-major, B = the C tile); the
    // mask is applied to its accumulator (rows s = pr0 (+8), all in warp w's 16-token block;
    // columns t = 8 j + 2 qd (+1)): zero for t-blocks before w, on the diagonal block the direct
    // exponential, after it exp(cum_t - cum_e) kWt_s with e = 16 w + 15 (both factors <= 1; on the
    // diagonal exp(cum_t - cum_e) could overflow). It goes to the stage's M region as fp16, [s][t]
    // with the 128-byte swizzle (N contiguous: the x^T M^T product reads it MN-major), half2
    // stores, conflict-free.
    auto issue_raw_mt = [&](int u, float (&mt)[32]) {
        const uint32_t sbase = smem_u32(stage(u));
        const uint32_t c_tile = sbase + uint32_t(kL * 128 * 2);
#pragma unroll
        for (int kk = 0; kk < 8; ++kk)
            wg::mma_m64n64_mn_a(mt, wg::sw128_desc(sbase, 128, 16 * kk, 0), wg::sw128_desc(c_tile, kL, 0, 16 * kk), kk > 0);
    };
    auto mask_mt = [&](int u, const float (&mt)[32]) {
        unsigned char* const st = stage(u);
        const float* tab = reinterpret_cast<const float*>(st + LY::off_dc);
        const int s0 = pr0, s1 = pr0 + 8;
        const float cs0 = tab[dct::kCum + s0], cs1 = tab[dct::kCum + s1], cend = tab[dct::kCum + 16 * warp + 15];
        const float wt0 = tab[dct::kWt + s0], wt1 = tab[dct::kWt + s1];
        const float d0 = tab[dct::kDelta + s0], d1 = tab[dct::kDelta + s1];
        unsigned char* const m0 = st + LY::off_mh + s0 * 128 + qd * 4;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int tb = j >> 1, t = 8 * j + 2 * qd;
            float v[4];
            if (tb < warp) {
                v[0] = v[1] = v[2] = v[3] = 0.f;
            } else if (tb > warp) {
                const float2 ct = *reinterpret_cast<const float2*>(tab + dct::kCum + t);
                const float u0 = exp_ftz(ct.x - cend), u1 = exp_ftz(ct.y - cend);
                v[0] = mt[4 * j] * u0 * wt0;
                v[1] = mt[4 * j + 1] * u1 * wt0;
                v[2] = mt[4 * j + 2] * u0 * wt1;
                v[3] = mt[4 * j + 3] * u1 * wt1;
            } else {
                const float2 ct = *reinterpret_cast<const float2*>(tab + dct::kCum + t);
                v[0] = masked_exp(s0 <= t, ct.x - cs0, mt[4 * j] * d0);
                v[1] = masked_exp(s0 <= t + 1, ct.y - cs0, mt[4 * j + 1] * d0);
                v[2] = masked_exp(s1 <= t, ct.x - cs1, mt[4 * j + 2] * d1);
                v[3] = masked_exp(s1 <= t + 1, ct.y - cs1, mt[4 * j + 3] * d1);
            }
            const uint32_t sw = uint32_t((j ^ gr) & 7) << 4;   // s % 8 = gr for both rows
            *reinterpret_cast<uint32_t*>(m0 + sw) = pack_half2(v[0], v[1]);
            *reinterpret_cast<uint32_t*>(m0 + 8 * 128 + sw) = pack_half2(v[2], v[3]);
        }
    };
    if constexpr (kMw) {
        if (wgi == 1) {   // the mask producer, up to three chunks ahead of the walk (nl = 0:
                          // the host gives kMw one segment)
            if (p.mw_cb) {   // the masks from ssd_prep's fp32 C B^T blocks: warp w takes blocks w, w+4, w+8
                // blocks above the diagonal are never written: zero the three M regions once
                for (int i = threadIdx.x - kWgThreads; i < LY::stages * int(LY::mh / 16); i += kWgThreads)
                    *reinterpret_cast<uint4*>(stage(i / int(LY::mh / 16)) + LY::off_mh + (i % int(LY::mh / 16)) * 16) = make_uint4(0, 0, 0, 0);
                named_sync(2, kWgThreads);   // the zeros before any block is written over them
                const float* cbq = p.cbf32 + ((size_t)q * p.G + g) * p.nch * kCbfFloats;
                for (int c = cb; c < ce; ++c) {
                    const int u = c + ub;
                    float4 f[3][2];
#pragma unroll
                    for (int i = 0; i < 3; ++i) {
                        const int blk = warp + 4 * i;
                        if (blk < 10) {
                            const float4* src = reinterpret_cast<const float4*>(cbq + (size_t)c * kCbfFloats) + (blk * 32 + lane) * 2;
                            f[i][0] = src[0];
                            f[i][1] = src[1];
                        }
                    }
                    wait_stage(u);
                    unsigned char* const st = stage(u);
                    const float* tab = reinterpret_cast<const float*>(st + LY::off_dc);
#pragma unroll
                    for (int i = 0; i < 3; ++i) {
                        const int blk = warp + 4 * i;
                        if (blk >= 10) continue;
                        int rg, jj;
                        cb_block_pos(blk, rg, jj);
                        const float acc[2][4] = {{f[i][0].x, f[i][0].y, f[i][0].z, f[i][0].w}, {f[i][1].x, f[i][1].y, f[i][1].z, f[i][1].w}};
                        mask_block(tab + dct::kCum, tab + dct::kDelta, tab + dct::kWt, acc, rg, jj, lane, st + LY::off_mh);
                    }
                    wg::fence_smem_for_async();
                    named_sync(2, kWgThreads);
                    if (threadIdx.x == kWgThreads) mbar_arrive(&bars[LY::stages + u % LY::stages]);
                }
                return;
            }
            float mt[32];
            for (int c = cb; c < ce; ++c) {
                const int u = c + ub;
                wait_stage(u);
                wg::fence();
                issue_raw_mt(u, mt);
                wg::commit();
                wg::wait<0>();
                wg::pin(mt);
                mask_mt(u, mt);
                wg::fence_smem_for_async();   // the walk's wgmma read M^T through the async proxy
                named_sync(2, kWgThreads);
                if (threadIdx.x == kWgThreads) mbar_arrive(&bars[LY::stages + u % LY::stages]);
            }
            return;
        }
    }

    // ---- look-ahead (segments after the first): the state at chunk cb without a chain,
    //   S^T(cb) = exp(cum over chunks 0..cb-1) S_0^T + sum_c f_c (x w)_c^T B_c,
    // f_c = exp(cum_last of the chunks c+1 .. cb-1): each chunk's state update, scaled into its
    // weights, accumulates into S with no wait between chunks (the walk needs one per chunk).
    // Chunks go from cb - 1 down to 0, so f is a running product of the chunks' exp(cum_last).
    // Two fragment buffers: chunk k+1's are read while chunk k's products run.
    if (nl > 0) {   // block-uniform
        float f = 1.f;
        auto look = [&](int k, uint32_t (&xwk)[4][4]) {
            wait_stage(k);
            const unsigned char* st = stage(k);
            const float* tab = reinterpret_cast<const float*>(st + LY::off_dc);
            const unsigned char* xb = st + LY::off_x + xhalf;
#pragma unroll
            for (int kk = 0; kk < 4; ++kk)
#pragma unroll
                for (int tk = 0; tk < 2; ++tk) {
                    const int i = 2 * kk + tk;
                    const float2 w = *reinterpret_cast<const float2*>(tab + dct::kWs + 8 * i + 2 * qd);
                    const float w0 = w.x * f, w1 = w.y * f;
#pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        const float x0 = *reinterpret_cast<const float*>(xb + i * 1024 + xo[r][0]);
                        const float x1 = *reinterpret_cast<const float*>(xb + i * 1024 + xo[r][1]);
                        xwk[kk][r + 2 * tk] = pack_half2(x0 * w0, x1 * w1);
                    }
                }
            f *= tab[dct::kEl];
            wg::pin(S);
            wg::fence();
            const uint32_t sbase = smem_u32(st);
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) wg::mma_rs_m64n128(S, xwk[kk], wg::sw128_desc(sbase, 128, 0, 16 * kk));
            wg::commit();
            wg::wait<1>();   // chunk k-1's products are done: its stage and fragments are free
            wg::pin(S);
            if (k >= 1) {
                wg_sync();
                issue_x(k + 2);
                issue_dep(k + 2);
            }
        };
        uint32_t xw0[4][4], xw1[4][4];
        for (int k = 0; k < nl; k += 2) {
            look(k, xw0);
            wg::pin(xw1);
            if (k + 1 < nl) look(k + 1, xw1);
            wg::pin(xw0);
        }
        wg::wait<0>();
        wg::pin(S);
        wg::pin(xw0);
        wg::pin(xw1);
        add_slot_state(f);
        wg_sync();   // every read of load nl - 1 is done: its stage takes load nl + 2
        issue_x(nl + 2);
        issue_dep(nl + 2);
    }

    uint32_t xa[4][4], xw[4][4], sa[8][4];
    float y[32], yp[32];   // y of the chunk, and the previous chunk's (stored under this one's products)
#pragma unroll
    for (int i = 0; i < 32; ++i) y[i] = 0.f;
    if (ce > cb) {   // block-uniform
        wait_stage(nl);
        load_x(nl, xa, xw);
    }
    pack_state(sa);
    for (int c = cb; c < ce; ++c) {
        unsigned char* const st = stage(c + ub);
        const float* tab = reinterpret_cast<const float*>(st + LY::off_dc);
        const uint32_t sbase = smem_u32(st);

        // the state update runs on the decayed state
        const float el = tab[dct::kEl];
#pragma unroll
        for (int i = 0; i < 64; ++i) S[i] *= el;
        // (the first k-step overwrites y; y is not zeroed per chunk, so that its registers stay
        // live into the wgmma and are never shared with yp: ptxas would then wait for the wgmma
        // before flush_y reads yp)
        wg::pin(y);
        wg::pin(S);
        wg::fence();
        const uint32_t c_tile = sbase + uint32_t(kL * 128 * 2);   // C after B^T
#pragma unroll
        for (int kk = 0; kk < 8; ++kk) wg::mma_rs_m64n64(y, sa[kk], wg::sw128_desc(c_tile, kL, 0, 16 * kk), kk > 0);
        wg::commit();
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wg::mma_rs_m64n128(S, xw[kk], wg::sw128_desc(sbase, 128, 0, 16 * kk));
        wg::commit();
        if (c > cb) flush_y(c - 1, yp);
        wg::wait<1>();   // S_in^T C^T done
        wg::pin(y);
        wg::pin(sa);
        if constexpr (kMw)   // the producer's M^T of this chunk is in the stage
            mbar_wait(&bars[LY::stages + (c + ub) % LY::stages], unsigned((c + ub) / LY::stages) & 1u);
        // y^T columns t = 8 j + 2 qd (+1) times exp(cum_t), then + x^T M^T
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float2 e = *reinterpret_cast<const float2*>(tab + dct::kRowE + 8 * j + 2 * qd);
            y[4 * j] *= e.x;
            y[4 * j + 1] *= e.y;
            y[4 * j + 2] *= e.x;
            y[4 * j + 3] *= e.y;
        }
        wg::pin(y);
        wg::fence();
        const uint32_t m_tile = sbase + uint32_t(LY::off_mh);
        if (kMw && !p.mw_cb) {   // M^T [s][t] from the producer's product
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) wg::mma_rs_m64n64_mn_b(y, xa[kk], wg::sw128_desc(m_tile, 64, 16 * kk, 0), true);
        } else {   // M [t][s]
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) wg::mma_rs_m64n64(y, xa[kk], wg::sw128_desc(m_tile, kL, 0, 16 * kk), true);
        }
        wg::commit();
        uint32_t xa_n[4][4] = {}, xw_n[4][4] = {};
        if (c + 1 < ce) {   // block-uniform
            wait_stage(c + 1 + ub);
            load_x(c + 1 + ub, xa_n, xw_n);
        }
        wg::wait<0>();
        wg::pin(y);
        wg::pin(S);
        wg::pin(xa);
        wg::pin(xw);
        pack_state(sa);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                xa[kk][e] = xa_n[kk][e];
                xw[kk][e] = xw_n[kk][e];
            }
#pragma unroll
        for (int i = 0; i < 32; ++i) yp[i] = y[i];
    }
    if (ce > cb) flush_y(ce - 1, yp);

    // ---- epilogue: the final state (K = 1), from the last segment
    if (sg != p.nseg - 1) {
        if (threadIdx.x == 0) bulk_wait_all();
        return;
    }
    const size_t ysz = (size_t)p.P * p.H * p.T * p.S;
    float* const sq = p.out + ysz + (size_t)p.N * (p0 + (size_t)p.P * (h + (size_t)p.H * q));
#pragma unroll
    for (int j = 0; j < 16; ++j)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int pp = pr0 + 8 * r, n = 8 * j + 2 * qd;
            if (pp >= pvalid) continue;
            float* d = sq + (size_t)p.N * pp + n;
            if (p.so_vec && n + 1 < p.N) *reinterpret_cast<float2*>(d) = make_float2(S[4 * j + 2 * r], S[4 * j + 2 * r + 1]);
            else {
                if (n < p.N) d[0] = S[4 * j + 2 * r];
                if (n + 1 < p.N) d[1] = S[4 * j + 2 * r + 1];
            }
        }
    if (threadIdx.x == 0) bulk_wait_all();   // the y stores are done before the block (and its shared memory) ends
    if constexpr (kOvl) {   // the call's last block counts it complete (ssd_params::flag_sync)
        if (threadIdx.x == 0) {
            __threadfence();
            if (atomicAdd(p.flag_sync + 1, 1u) == gridDim.x * gridDim.y * gridDim.z - 1) {
                p.flag_sync[1] = 0;
                __threadfence();
                st_release_gpu(p.flag_sync, call);
            }
        }
    }
}

template <bool kMw, bool kOvl, bool kCbItems = false>
bool launch_wg1(const ssd_params& p, cudaStream_t stream) {
    if (!raise_smem_limit<ssd_walk_wg1<kMw, kOvl, kCbItems>>(wg1_layout::total)) return false;
    const int n_pt = (p.P + kPt - 1) / kPt;
    cudaLaunchAttribute attr;
    const cudaLaunchConfig_t cfg = ssmkit::cuda::pdl_config(dim3(unsigned(n_pt * p.H), unsigned(p.S), unsigned(p.nseg)),
                                                            dim3(kMw ? 2 * kWgThreads : kOvl ? kWgThreads + 32 : kWgThreads),
                                                            wg1_layout::total, stream, &attr);
    if (cudaLaunchKernelEx(&cfg, ssd_walk_wg1<kMw, kOvl, kCbItems>, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return true;
}

}  // namespace

bool launch_walk_wg1(const ssd_params& p, cudaStream_t stream) {
    if (p.mw) return launch_wg1<true, false>(p, stream);
    if (p.prep_flags && p.beside_cb) return launch_wg1<false, true, true>(p, stream);
    return walk_on_flags(p) ? launch_wg1<false, true>(p, stream) : launch_wg1<false, false>(p, stream);
}

}  // namespace ssmkit::cuda::ssd
