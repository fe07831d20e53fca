// The SIMD kernels, compiled once per instruction set by Highway and picked at run time. The
// backend cuts an op into tasks; each call here computes one task.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ssmkit::cpu {

// SSM_CONV over one sequence, a range of channels and a range of tokens.
struct conv_geom {
    const float* sx;    // sx(0, 0, s): channel rows of `row` floats
    int64_t row;        // d_conv - 1 + n_t
    const float* c;     // [d_conv, d_inner]
    const float* bias;  // nullptr unless bias + SiLU is fused
    float* out;         // out(0, 0, s)
    int64_t d_conv, d_inner;
    // Write the output with non-temporal stores (it is larger than the caches and would only
    // evict the inputs); also skips the read-for-ownership of every output line.
    bool stream_out;
};
// Channels [ch0, ch1), tokens [t0, t1).
void conv_range(const conv_geom& g, int64_t ch0, int64_t ch1, int64_t t0, int64_t t1);
// Channels per tile of the conv kernel; the backend's channel blocks are multiples of it.
constexpr int64_t kConvTileChannels = 16;

struct scan_geom {
    int64_t N, P, H, T, K;
    int64_t heads_per_group;
    bool mamba1;
    const float* s;                   // state cache [N, P, H, slots]
    const char* x; size_t x_nb2, x_nb3;
    const float* dt;                  // [H, T, S] contiguous
    const float* A;                   // [1, H] or [N, H]
    const char* B; size_t B_nb2, B_nb3;
    const char* C; size_t C_nb2, C_nb3;
    const int32_t* ids;
    float* y;                         // [P, H, T, S]
    float* states;                    // K blocks of [N, P, H, S]
    int64_t state_elements;           // floats per block
    // Decode only (T = 1): write the new states with non-temporal stores (see conv_geom).
    bool stream_states;
};

// Rows [p0, p1) of heads [h0, h1) of sequence q.
//  direct:  the recurrence as written, vectorized over the state (decode, Mamba-1).
//  chunked: Mamba-2 only; blocks of kSsdBlock tokens in the SSD (state-space dual) form, all
//           small GEMMs: y = (C S) o decay + (G o decay-ratios) X, S = decay S + B^T (X o decay),
//           with G = C B^T per block from scan_gram (shared by the heads of a group).
void scan_direct(const scan_geom& g, int64_t q, int64_t h0, int64_t h1, int64_t p0, int64_t p1);
void scan_chunked(const scan_geom& g, int64_t q, int64_t h0, int64_t h1, int64_t p0, int64_t p1,
                  const float* gram);
constexpr int64_t kSsdBlock = 32;
// Token blocks of the chunked path, and floats of one block's G.
int64_t scan_gram_blocks(const scan_geom& g);
int64_t scan_gram_block_floats();
// G of block blk of group grp of sequence q, into gram laid out [q][grp][blk][block floats].
void scan_gram(const scan_geom& g, int64_t q, int64_t grp, int64_t blk, float* gram);
// Columns of the chunked kernel's register tile: p ranges should be multiples of it.
int64_t scan_chunked_rows();

// Name of the instruction set chosen at run time ("AVX2", "AVX3", "NEON", ...).
const char* simd_target_name();

}  // namespace ssmkit::cpu
