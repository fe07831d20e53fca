// Internal to ssmkit_model: the state of a context and the blocks of the forward pass.
#pragma once

#include <memory>
#include <vector>

#include "internal.h"
#include "ssmkit/backend.h"

namespace ssmkit::model::detail {

// Per-layer memory, one slot per sequence.
struct layer_memory {
    host_tensor conv;        // [d_conv-1, channels, n_slots]: the last inputs of the conv, per channel
    host_tensor ssm;         // [d_state, head_dim, n_head, n_slots]: the SSM state cache of ssm_scan
    host_tensor zero_bias;   // [channels] zeros, for files without ssm_conv1d.bias
    std::vector<float> k, v; // attention: [n_slots][n_ctx][n_head_kv * head_dim]
};

// One micro-batch: n_s sequences x n_t tokens, token-major rows (row = s * n_t + t).
struct ubatch {
    const int32_t* tokens = nullptr;
    int n_s = 0, n_t = 0;
    std::vector<int> slots;
    std::vector<int32_t> ids;    // slots as i32, for ssm_scan
    std::vector<int64_t> pos0;   // tokens already in each slot
    int64_t n_tokens() const { return int64_t(n_s) * n_t; }
};

enum class logits_mode { none, last, all };

struct context_state {
    const model& m;
    context_params cp;
    std::unique_ptr<backend> be;
    std::vector<layer_memory> mem;
    std::vector<int64_t> n_past;
    profile prof;

    // Scratch, reused across micro-batches.
    std::vector<float> x, cur, mix, zxbcdt, sx, xbc, dt, scan_out, q, k, v, o, scores, ff_gate, ff_up, h;

    context_state(const model& mdl, const context_params& p) : m(mdl), cp(p) {}
    double* bucket(double profile::*field) { return cp.profile ? &(prof.*field) : nullptr; }

    void decode(const int32_t* tokens, const int* slots, int n_s, int n_t, logits_mode mode,
                std::vector<float>& logits);
};

// The blocks: read n_tokens rows of n_embd from `in` (not c.mix), leave as many rows in c.mix.
void mamba2_block(context_state& c, const ubatch& ub, int64_t il, const float* in);
void attention_block(context_state& c, const ubatch& ub, int64_t il, const float* in);
void mlp_block(context_state& c, int64_t n_tokens, int64_t il, const float* in);

// GEMM through cblas_sgemm, timed into the GEMM bucket.
void gemm(context_state& c, const float* X, int64_t M, const host_tensor& W, std::vector<float>& Y);

}  // namespace ssmkit::model::detail
