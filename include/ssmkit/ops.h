// The two operators, with ggml's semantics (see docs/ssm-ops.md in the shared spec).
//
// Each entry point validates every argument first (throwing ssmkit::shape_error, nothing written),
// then hands the work to the backend. On an asynchronous backend (CUDA) the call returns once the
// work is queued on the backend's stream; backend::synchronize() waits for it.
#pragma once

#include <cstdint>

#include "ssmkit/tensor.h"

namespace ssmkit {

class backend;

// Sizes derived from validated SSM_CONV arguments.
struct conv_shape {
    int64_t d_conv = 0;   // filter width
    int64_t n_t = 0;      // new tokens per sequence
    int64_t d_inner = 0;  // channels
    int64_t n_s = 0;      // sequences
};

// Sizes derived from validated SSM_SCAN arguments.
struct scan_shape {
    int64_t d_state = 0;   // N
    int64_t head_dim = 0;  // P
    int64_t n_head = 0;    // H
    int64_t n_group = 0;   // G
    int64_t n_t = 0;       // T, tokens per sequence
    int64_t n_seqs = 0;    // S
    int64_t n_slots = 0;   // slots of the state cache
    int64_t n_keep = 1;    // K, kept states
    bool mamba1 = false;   // A is [N, H] (per-state decay), head_dim 1

    // Floats of the flat output: y, then K state blocks.
    int64_t y_elements() const { return head_dim * n_head * n_t * n_seqs; }
    int64_t state_elements() const { return d_state * head_dim * n_head * n_seqs; }
    int64_t out_elements() const { return y_elements() + n_keep * state_elements(); }
};

// out[i, t, s] = sum_k sx[t + k, i, s] * c[k, i]
//   sx  f32 [d_conv-1+n_t, d_inner, n_s], rows contiguous, nb[2] free
//   c   f32 [d_conv, d_inner], contiguous
//   out f32 [d_inner, n_t, n_s], contiguous
void ssm_conv(backend& be, const tensor_view& sx, const tensor_view& c, const tensor_view& out);

// silu(ssm_conv(...)[i, t, s] + bias[i]);  bias f32 [d_inner]
void ssm_conv_bias_silu(backend& be, const tensor_view& sx, const tensor_view& c,
                        const tensor_view& bias, const tensor_view& out);

// Selective scan, Mamba-1 (A [N, H], P = 1, K = 1) or Mamba-2 (A [1, H]).
//   s   f32 [N, P, H, n_slots] contiguous, the state cache (read only)
//   x   f32 [P, H, T, S]   rows contiguous, nb[2], nb[3] free
//   dt  f32 [H, T, S]      contiguous, before softplus
//   A   f32 [1, H] or [N, H]
//   B,C f32 [N, G, T, S]   rows contiguous, nb[2], nb[3] free
//   ids i32 [S]            sequence q starts from slot ids[q]
//   out f32 flat, scan_shape::out_elements() floats: y [P, H, T, S], then n_keep state blocks
//       [N, P, H, S]; block 0 is the state after the last token, block k the state after token
//       T-1-k. Blocks with k >= T hold the initial state (the state before token 0).
void ssm_scan(backend& be, const tensor_view& s, const tensor_view& x, const tensor_view& dt,
              const tensor_view& A, const tensor_view& B, const tensor_view& C,
              const tensor_view& ids, const tensor_view& out, int n_keep = 1);

// The checks the entry points run, exposed so callers can validate without running.
conv_shape validate_conv(const char* op, const tensor_view& sx, const tensor_view& c,
                         const tensor_view* bias, const tensor_view& out);
scan_shape validate_scan(const tensor_view& s, const tensor_view& x, const tensor_view& dt,
                         const tensor_view& A, const tensor_view& B, const tensor_view& C,
                         const tensor_view& ids, const tensor_view& out, int n_keep);

}  // namespace ssmkit
