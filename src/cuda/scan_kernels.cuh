// SSM_SCAN kernel templates. Instantiated in scan_decode.cu, scan_seq.cu (Mamba-2),
// scan_mamba1.cu and scan_generic.cu so the families compile in parallel.
//
// Layout used by the fast kernels: a state row is the N floats of one (p, h) (contiguous in s and
// in the output blocks). A row is split over LPR = N / E lanes of one warp; lane l holds the
// float4 chunks l, l + LPR, l + 2 LPR, ... of the row, so a warp's 16-byte loads and stores of
// state are contiguous, and its 16-byte shared-memory reads of B and C hit consecutive banks
// (lanes of other rows in the warp read the same addresses: broadcast). y is reduced across the
// LPR lanes with xor shuffles.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/device_common.cuh"
#include "cuda/pdl.cuh"

namespace ssmkit::cuda {

struct scan_params {
    const float* s;
    const float* x;
    const float* dt;
    const float* A;
    const float* B;
    const float* C;
    const int32_t* ids;
    float* out;
    int N, P, H, G, T, S, K;
    int mamba1;  // A is [N, H]
    int64_t n_slots;
    int64_t x_nb2, x_nb3, B_nb2, B_nb3, C_nb2, C_nb3;  // in floats
};

constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ bool slot_ok(int32_t slot, int64_t n_slots) { return slot >= 0 && slot < n_slots; }

__device__ __forceinline__ float4 ld4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }
__device__ __forceinline__ void st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ float get(const float4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

// ---------------------------------------------------------------------------------------------
// One token of one state row, as the decode kernels (v1 and v2) hold it: a lane owns one float4
// of the row. new = old * decay + B * (x delta); returns y = C . new summed over the row's LPR
// lanes (every lane of the warp must call it: the sum is a shuffle reduction).
template <int LPR>
__device__ __forceinline__ float decode_row(float4 h0, float4 decay, float4 b, float xdt, float4 c, float4& hn) {
    hn.x = fmaf(h0.x, decay.x, b.x * xdt);
    hn.y = fmaf(h0.y, decay.y, b.y * xdt);
    hn.z = fmaf(h0.z, decay.z, b.z * xdt);
    hn.w = fmaf(h0.w, decay.w, b.w * xdt);
    float y = fmaf(hn.w, c.w, fmaf(hn.z, c.z, fmaf(hn.y, c.y, hn.x * c.x)));
#pragma unroll
    for (int off = LPR / 2; off > 0; off /= 2) y += __shfl_xor_sync(0xffffffffu, y, off);
    return y;
}

// The stores of one decoded row: the new state into kept block 0, the initial state into blocks
// 1..K-1 (k >= T = 1 holds it), and y by the row's first lane. State is touched once, so the
// stores are evict-first and do not push B, C and x out of L2.
__device__ __forceinline__ void store_decode_row(float* dst, float4 hn, float4 h0, int K, int64_t block_stride,
                                                 float* y_dst, float y, bool first_lane) {
    __stcs(reinterpret_cast<float4*>(dst), hn);
    for (int k = 1; k < K; ++k) __stcs(reinterpret_cast<float4*>(dst + k * block_stride), h0);
    if (first_lane) *y_dst = y;
}

// ---------------------------------------------------------------------------------------------
// Decode (T = 1): pure streaming. Each state float is read once, updated, written once (plus the
// initial state again into blocks 1..K-1, which hold it since k >= T). All loads of a thread are
// independent of each other once ids[q] is known, so they are in flight together; RPT rows per
// thread put RPT 16-byte state loads in flight per lane when there are rows enough to fill the GPU.
template <int N, bool M1, int RPT>
__global__ void __launch_bounds__(256) scan_decode_kernel(scan_params p) {
    pdl_begin();
    constexpr int LPR = N / 4;             // lanes per row, one float4 each
    constexpr int ROWS_PER_PASS = 256 / LPR;
    const int lane_in_row = threadIdx.x % LPR;
    const int64_t PH = int64_t(p.P) * p.H;
    const int64_t total = PH * p.S;
    const int64_t row0 = int64_t(blockIdx.x) * ROWS_PER_PASS * RPT + threadIdx.x / LPR;
    const int hpg = p.H / p.G;
    float* states = p.out + PH * p.S;  // T = 1: y has PH * S floats
    const int64_t block_stride = PH * p.S * p.N;

    float4 h0[RPT], bv[RPT], cv[RPT], av[RPT];
    float xv[RPT], dtv[RPT], as[RPT];
    int64_t rows[RPT];
#pragma unroll
    for (int j = 0; j < RPT; ++j) {
        const int64_t row = row0 + int64_t(j) * ROWS_PER_PASS;
        rows[j] = row;
        const int64_t rr = row < total ? row : 0;
        const int q = int(rr / PH);
        const int64_t r = rr - int64_t(q) * PH;
        const int h = int(r / p.P), pp = int(r - int64_t(h) * p.P), g = h / hpg;
        const int32_t slot = __ldg(p.ids + q);
        const bool ok = slot_ok(slot, p.n_slots);
        // State is touched once: evict-first, so it does not push B, C, x out of L2.
        h0[j] = ok ? __ldcs(reinterpret_cast<const float4*>(p.s + (size_t(slot) * PH + r) * N + 4 * lane_in_row))
                   : make_float4(NAN, NAN, NAN, NAN);
        bv[j] = ld4(p.B + q * p.B_nb3 + g * N + 4 * lane_in_row);
        cv[j] = ld4(p.C + q * p.C_nb3 + g * N + 4 * lane_in_row);
        xv[j] = __ldg(p.x + q * p.x_nb3 + pp + int64_t(p.P) * h);
        dtv[j] = __ldg(p.dt + h + int64_t(p.H) * q);
        if constexpr (M1) av[j] = ld4(p.A + size_t(h) * N + 4 * lane_in_row);
        else as[j] = __ldg(p.A + h);
    }
#pragma unroll
    for (int j = 0; j < RPT; ++j) {
        const float d = softplus_f(dtv[j]);
        float4 decay;
        if constexpr (M1) {
            decay = make_float4(exp2f(d * av[j].x * kLog2e), exp2f(d * av[j].y * kLog2e), exp2f(d * av[j].z * kLog2e),
                                exp2f(d * av[j].w * kLog2e));
        } else {
            const float a = expf(d * as[j]);
            decay = make_float4(a, a, a, a);
        }
        float4 hn;
        const float y = decode_row<LPR>(h0[j], decay, bv[j], xv[j] * d, cv[j], hn);
        const int64_t row = rows[j];
        // y [P, H, 1, S]: row index = p + P*h + P*H*q
        if (row < total) store_decode_row(states + size_t(row) * N + 4 * lane_in_row, hn, h0[j], p.K, block_stride,
                                          p.out + row, y, lane_in_row == 0);
    }
}

// Mamba-2 decode with more 16-byte loads in flight per thread (v2). A block owns RPW passes of
// 256 / (N / 4) state rows of one (sequence, head), so ids[q], B, C, softplus(dt) and exp(dt A)
// are loaded and computed once per thread, and the RPW state loads of a thread are issued
// together before any arithmetic. Why: on an H200 a plain 16-byte copy kernel with the same
// ids -> state dependency reaches 101% of the cudaMemcpy line, while v1 (one row per thread, all
// of that per row) reached 68%: its per-thread chain (dependent load, then softplus, exp and the
// shuffles) leaves too few bytes in flight for this card's bandwidth.
template <int N, int RPW, int MINB>
__global__ void __launch_bounds__(256, MINB) scan_decode2_kernel(scan_params p, int blocks_per_head) {
    pdl_begin();
    constexpr int LPR = N / 4;
    constexpr int RPP = 256 / LPR;   // rows per pass
    const int lane_in_row = threadIdx.x % LPR;
    const int bi = blockIdx.x % blocks_per_head;
    const int qh = blockIdx.x / blocks_per_head;
    const int h = qh % p.H, q = qh / p.H;
    const int g = h / (p.H / p.G);
    const int64_t PH = int64_t(p.P) * p.H;
    const int pp0 = bi * RPP * RPW + int(threadIdx.x / LPR);
    // row pp0 of this head; pass j is RPP rows further (constant offsets from one base each)
    const int64_t row0 = int64_t(q) * PH + int64_t(h) * p.P + pp0;   // y index and output state row
    float* const dst = p.out + PH * p.S + row0 * N + 4 * lane_in_row;  // T = 1: y has PH * S floats
    const int64_t block_stride = PH * p.S * p.N;
    const float* const xp = p.x + q * p.x_nb3 + int64_t(p.P) * h + pp0;
    // Loads that do not depend on ids[q] first: their DRAM round trips overlap that of ids[q] and
    // of the state loads behind it, and softplus and exp run while the state is in flight.
    float xv[RPW];
#pragma unroll
    for (int j = 0; j < RPW; ++j) xv[j] = pp0 + j * RPP < p.P ? __ldg(xp + j * RPP) : 0.f;
    const float4 bv = ld4(p.B + q * p.B_nb3 + g * N + 4 * lane_in_row);
    const float4 cv = ld4(p.C + q * p.C_nb3 + g * N + 4 * lane_in_row);
    const float dt_raw = __ldg(p.dt + h + int64_t(p.H) * q);
    const float A_h = __ldg(p.A + h);
    const int32_t slot = __ldg(p.ids + q);
    const bool ok = slot_ok(slot, p.n_slots);
    const float* const src = p.s + ((int64_t(ok ? slot : 0) * p.H + h) * p.P + pp0) * N + 4 * lane_in_row;
    float4 h0[RPW];
#pragma unroll
    for (int j = 0; j < RPW; ++j)
        h0[j] = ok && pp0 + j * RPP < p.P ? __ldcs(reinterpret_cast<const float4*>(src + j * RPP * N))
                                          : make_float4(NAN, NAN, NAN, NAN);
    const float d = softplus_f(dt_raw);
    const float a = expf(d * A_h);
    const float4 decay = make_float4(a, a, a, a);
#pragma unroll
    for (int j = 0; j < RPW; ++j) {
        float4 hn;
        const float y = decode_row<LPR>(h0[j], decay, bv, xv[j] * d, cv, hn);
        if (pp0 + j * RPP < p.P)
            store_decode_row(dst + j * RPP * N, hn, h0[j], p.K, block_stride, p.out + row0 + j * RPP, y, lane_in_row == 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Sequential prefill. A block owns R rows of one sequence (one head for Mamba-2, R heads of one
// group for Mamba-1) and walks the tokens in tiles of TT: per tile, B, C, x and dt are copied
// into shared memory with cp.async (double-buffered: tile i+1 is in flight while tile i is
// computed), softplus and exp(delta*A) are computed once per (head, token) (Mamba-1: delta once per
// (row, token)), and y goes through shared memory so its stores are coalesced rows of R floats.
// The state never leaves registers between tokens.
struct seq_smem {
    int TT, R, DR, N;
    // Rounded to 4 floats so the second buffer's B/C stay 16-byte aligned for cp.async.
    __host__ __device__ int buf_floats() const { return (2 * TT * N + TT * R + TT * DR + 3) & ~3; }
    __host__ __device__ int total_floats() const { return 2 * buf_floats() + TT * DR + TT + TT * R; }
};

// Sums V partial values (V a power of two, V <= LPR) across the LPR lanes of a row. Halving steps
// exchange halves of the value list instead of whole lists (V/2 + V/4 + ... shuffles), so after
// log2(V) steps each lane carries one value; the rest is a plain butterfly. Returns the sum of
// value index k, where k's bits are the lane's bits LPR/2, LPR/4, ... (see value_index).
template <int LPR, int V>
__device__ __forceinline__ float reduce_transposed(float (&v)[V], int lane_in_row, unsigned mask) {
#pragma unroll
    for (int n = V, off = LPR / 2; n > 1; n /= 2, off /= 2) {
        const bool up = (lane_in_row & off) != 0;
#pragma unroll
        for (int i = 0; i < n / 2; ++i)
            v[i] = (up ? v[i + n / 2] : v[i]) + __shfl_xor_sync(mask, up ? v[i] : v[i + n / 2], off);
    }
    float u = v[0];
#pragma unroll
    for (int off = LPR / (2 * V); off > 0; off /= 2) u += __shfl_xor_sync(mask, u, off);
    return u;
}
template <int LPR, int V>
__device__ __forceinline__ int value_index(int lane_in_row) {
    int k = 0;
#pragma unroll
    for (int n = V, off = LPR / 2; n > 1; n /= 2, off /= 2) k += (lane_in_row & off) ? n / 2 : 0;
    return k;
}
template <int LPR, int V>
__device__ __forceinline__ bool value_owner(int lane_in_row) { return (lane_in_row & (LPR / V - 1)) == 0; }

// RT rows per thread (Mamba-2 only): the thread's rows are row, row + R/RT, ...; every B and C
// chunk read from shared memory then feeds RT state rows, which divides the shared-memory
// wavefronts per state element by RT (they, not issue, bound RT = 1 on granite: notes, run 2).
template <int N, int E, bool M1, int RT = 1>
__global__ void __launch_bounds__(256) scan_seq_kernel(scan_params p, int R, int TT, int vecBC) {
    pdl_wait_previous();   // long-running blocks: the successor is not released early (pdl.cuh)
    static_assert(!M1 || RT == 1, "Mamba-1 rows each have their own delta: one row per thread");
    constexpr int LPR = N / E;
    constexpr int CH = E / 4;  // float4 chunks per thread and row
    static_assert(4 * RT <= LPR, "the merged reduction needs a lane per value");
    extern __shared__ __align__(16) float sm[];
    const int DR = M1 ? R : 1;
    const seq_smem lay{TT, R, DR, N};
    float* bufs = sm;
    float* ds = sm + 2 * lay.buf_floats();  // delta [TT][DR]
    float* as = ds + TT * DR;               // Mamba-2: exp(delta*A) [TT]
    float* ys = as + TT;                    // [TT][R]

    const int tid = threadIdx.x, nthr = blockDim.x;
    const int lane_in_row = tid % LPR, row = tid / LPR;
    const int RS = R / RT;                  // distance between a thread's rows
    const int q = blockIdx.y;
    const int64_t PH = int64_t(p.P) * p.H;
    const int64_t r0 = int64_t(blockIdx.x) * R;
    const int h0 = int(r0 / p.P);           // head of the block's first row
    const int g = h0 / (p.H / p.G);         // whole block in one group
    const int T = p.T;
    const unsigned mask = nthr >= 32 ? 0xffffffffu : ((1u << nthr) - 1u);

    const int32_t slot = __ldg(p.ids + q);
    const bool ok = slot_ok(slot, p.n_slots);
    float4 st[RT][CH];
    size_t state_off[RT];
    float* states = p.out + PH * T * int64_t(p.S);
    const int64_t block_stride = PH * p.S * N;
#pragma unroll
    for (int i = 0; i < RT; ++i) {
        const int64_t r = r0 + row + i * RS;
        state_off[i] = (size_t(q) * PH + r) * N;
#pragma unroll
        for (int j = 0; j < CH; ++j) {
            const int n = 4 * (lane_in_row + LPR * j);
            st[i][j] = ok ? ld4(p.s + (size_t(slot) * PH + r) * N + n) : make_float4(NAN, NAN, NAN, NAN);
            for (int k = T; k < p.K; ++k) st4(states + k * block_stride + state_off[i] + n, st[i][j]);
        }
    }
    float a2[M1 ? E : 1];
    if constexpr (M1) {
        const int h = int((r0 + row) / p.P);
#pragma unroll
        for (int j = 0; j < CH; ++j) {
            const float4 av = ld4(p.A + size_t(h) * N + 4 * (lane_in_row + LPR * j));
            a2[4 * j + 0] = av.x * kLog2e;
            a2[4 * j + 1] = av.y * kLog2e;
            a2[4 * j + 2] = av.z * kLog2e;
            a2[4 * j + 3] = av.w * kLog2e;
        }
    }
    const float A_head = M1 ? 0.0f : __ldg(p.A + h0);

    const float* Bq = p.B + q * p.B_nb3 + int64_t(g) * N;
    const float* Cq = p.C + q * p.C_nb3 + int64_t(g) * N;
    const float* xq = p.x + q * p.x_nb3 + r0;  // row r = p + P*h is the float offset in x
    const float* dtq = p.dt + int64_t(p.H) * T * q;

    auto load_tile = [&](int t0, int buf) {
        const int nt = min(TT, T - t0);
        float* Bs = bufs + buf * lay.buf_floats();
        float* Cs = Bs + TT * N;
        float* xs = Cs + TT * N;
        float* dts = xs + TT * R;
        if (vecBC) {
            for (int i = tid; i < nt * (N / 4); i += nthr) {
                const int t = i / (N / 4), c = i - t * (N / 4);
                cp_async16(Bs + t * N + 4 * c, Bq + (t0 + t) * p.B_nb2 + 4 * c);
                cp_async16(Cs + t * N + 4 * c, Cq + (t0 + t) * p.C_nb2 + 4 * c);
            }
        } else {
            for (int i = tid; i < nt * N; i += nthr) {
                const int t = i / N, n = i - t * N;
                cp_async4(Bs + i, Bq + (t0 + t) * p.B_nb2 + n);
                cp_async4(Cs + i, Cq + (t0 + t) * p.C_nb2 + n);
            }
        }
        for (int i = tid; i < nt * R; i += nthr) {
            const int t = i / R, rr = i - t * R;
            cp_async4(xs + i, xq + (t0 + t) * p.x_nb2 + rr);
        }
        for (int i = tid; i < nt * DR; i += nthr) {
            const int t = i / DR, rr = i - t * DR;
            cp_async4(dts + i, dtq + int64_t(p.H) * (t0 + t) + h0 + rr);
        }
        cp_async_commit();
    };

    auto flush_y = [&](int t0) {
        const int nt = min(TT, T - t0);
        for (int i = tid; i < nt * R; i += nthr) {
            const int t = i / R, rr = i - t * R;
            p.out[r0 + rr + PH * (t0 + t + int64_t(T) * q)] = ys[i];
        }
    };

    const int ntiles = (T + TT - 1) / TT;
    load_tile(0, 0);
    for (int it = 0; it < ntiles; ++it) {
        const int t0 = it * TT, buf = it & 1;
        const int nt = min(TT, T - t0);
        const float* Bs = bufs + buf * lay.buf_floats();
        const float* Cs = Bs + TT * N;
        const float* xs = Cs + TT * N;
        const float* dts = xs + TT * R;
        cp_async_wait_all();
        __syncthreads();
        if (it > 0) flush_y(t0 - TT);
        for (int i = tid; i < nt * DR; i += nthr) {
            const float d = softplus_f(dts[i]);
            ds[i] = d;
            if constexpr (!M1) as[i] = expf(d * A_head);
        }
        __syncthreads();
        if (it + 1 < ntiles) load_tile(t0 + TT, buf ^ 1);

        // One token's update of this thread's states; writes its RT partial y (not yet reduced).
        auto step = [&](int t, float* yout) {
            const float d = M1 ? ds[t * DR + row] : ds[t];
            float xdt[RT];
#pragma unroll
            for (int i = 0; i < RT; ++i) xdt[i] = xs[t * R + row + i * RS] * d;
            const float a = M1 ? 0.0f : as[t];
            float y0[RT], y1[RT];
#pragma unroll
            for (int i = 0; i < RT; ++i) y0[i] = y1[i] = 0.0f;
#pragma unroll
            for (int j = 0; j < CH; ++j) {
                const int n = 4 * (lane_in_row + LPR * j);
                const float4 bv = *reinterpret_cast<const float4*>(Bs + t * N + n);
                const float4 cv = *reinterpret_cast<const float4*>(Cs + t * N + n);
#pragma unroll
                for (int i = 0; i < RT; ++i) {
                    float4& s4 = st[i][j];
                    if constexpr (M1) {
                        s4.x = fmaf(s4.x, exp2f(d * a2[4 * j + 0]), bv.x * xdt[i]);
                        s4.y = fmaf(s4.y, exp2f(d * a2[4 * j + 1]), bv.y * xdt[i]);
                        s4.z = fmaf(s4.z, exp2f(d * a2[4 * j + 2]), bv.z * xdt[i]);
                        s4.w = fmaf(s4.w, exp2f(d * a2[4 * j + 3]), bv.w * xdt[i]);
                    } else {
                        s4.x = fmaf(s4.x, a, bv.x * xdt[i]);
                        s4.y = fmaf(s4.y, a, bv.y * xdt[i]);
                        s4.z = fmaf(s4.z, a, bv.z * xdt[i]);
                        s4.w = fmaf(s4.w, a, bv.w * xdt[i]);
                    }
                    y0[i] = fmaf(s4.x, cv.x, y0[i]);
                    y1[i] = fmaf(s4.y, cv.y, y1[i]);
                    y0[i] = fmaf(s4.z, cv.z, y0[i]);
                    y1[i] = fmaf(s4.w, cv.w, y1[i]);
                }
            }
#pragma unroll
            for (int i = 0; i < RT; ++i) yout[i] = y0[i] + y1[i];
        };

        // Groups of 4 tokens, while none of them owes a kept-state store. Reducing each token's y
        // right after its update made every token wait for a 4-deep shuffle chain and its shared
        // store (the next token's shared loads cannot move above that store): measured ~455
        // cycles per token. Here the 4 updates run back to back and their 4 x RT partial sums
        // are reduced together (reduce_transposed).
        constexpr int V = 4 * RT;
        int t = 0;
        const int group_end = min(nt, T - p.K - t0);  // tokens from here on owe a kept store
        for (; t + 4 <= group_end; t += 4) {
            float yp[V];  // index = token * RT + row
#pragma unroll
            for (int i = 0; i < 4; ++i) step(t + i, yp + i * RT);
            const float u = reduce_transposed<LPR, V>(yp, lane_in_row, mask);
            if (value_owner<LPR, V>(lane_in_row)) {
                const int k = value_index<LPR, V>(lane_in_row);
                ys[(t + k / RT) * R + row + (k % RT) * RS] = u;
            }
        }
        for (; t < nt; ++t) {
            float yp[RT];
            step(t, yp);
            const float u = reduce_transposed<LPR, RT>(yp, lane_in_row, mask);
            if (value_owner<LPR, RT>(lane_in_row)) ys[t * R + row + value_index<LPR, RT>(lane_in_row) * RS] = u;
            const int k = T - 1 - (t0 + t);  // this token's state is kept in block k
            if (k < p.K) {
#pragma unroll
                for (int i = 0; i < RT; ++i)
#pragma unroll
                    for (int j = 0; j < CH; ++j)
                        st4(states + k * block_stride + state_off[i] + 4 * (lane_in_row + LPR * j), st[i][j]);
            }
        }
    }
    __syncthreads();
    flush_y((ntiles - 1) * TT);
}

// ---------------------------------------------------------------------------------------------
// Fallback for every shape and alignment the fast kernels decline (odd d_state, misaligned
// views, Mamba-1 with d_state != 16, ...): a thread per row, the row's state kept in block 0 of
// the output and updated there in place. Slow (state goes through L1/L2 each token), but exact.
__global__ void scan_generic_kernel(scan_params p);

}  // namespace ssmkit::cuda
