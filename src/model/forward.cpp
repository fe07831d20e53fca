// The forward pass over one micro-batch, following llama.cpp's granite-hybrid graph
// (src/models/granite-hybrid.cpp): embeddings * embedding_scale; per layer
// RMSNorm -> (Mamba-2 | attention) -> * residual_scale -> + residual, then for Granite
// RMSNorm -> SwiGLU -> * residual_scale -> + residual; final RMSNorm, lm_head, / logit_scale.
// The mamba2 architecture (src/models/mamba.cpp) is RMSNorm -> Mamba-2 -> + residual per layer,
// without MLP or multipliers. embedding_scale is applied in llama-graph.cpp's build_inp_embd.
// Inside the mixer (src/models/graph-context-mamba.cpp, build_mamba2_layer): conv + bias + SiLU,
// dt + dt_bias, y + D*x, silu(z) * y, grouped RMSNorm (d_inner/n_group per group), out_proj.
#include <chrono>
#include <cstring>
#include <set>

#include "context_impl.h"

namespace ssmkit::model::detail {

void context_state::decode(const int32_t* tokens, const int* slot_ids, int n_s, int n_t, logits_mode mode,
                           std::vector<float>& logits) {
    const hparams& hp = m.hp;
    const auto t_start = std::chrono::steady_clock::now();
    const profile before = prof;

    // Everything is checked before any state changes.
    if (n_s < 1 || n_t < 1) throw error("decode: empty micro-batch");
    ubatch ub;
    ub.tokens = tokens;
    ub.n_s = n_s;
    ub.n_t = n_t;
    std::set<int> seen;
    for (int s = 0; s < n_s; ++s) {
        const int slot = slot_ids[s];
        if (slot < 0 || slot >= cp.n_slots) throw error("decode: slot " + std::to_string(slot) + " out of range [0, " + std::to_string(cp.n_slots) + ")");
        if (!seen.insert(slot).second) throw error("decode: slot " + std::to_string(slot) + " appears twice in one micro-batch");
        if (hp.n_attn_layers() > 0 && n_past[size_t(slot)] + n_t > cp.n_ctx)
            throw error("decode: slot " + std::to_string(slot) + " would hold " + std::to_string(n_past[size_t(slot)] + n_t) +
                        " tokens, more than its KV capacity n_ctx = " + std::to_string(cp.n_ctx));
        ub.slots.push_back(slot);
        ub.ids.push_back(int32_t(slot));
        ub.pos0.push_back(n_past[size_t(slot)]);
    }
    const int64_t n_tok = ub.n_tokens(), E = hp.n_embd;
    for (int64_t k = 0; k < n_tok; ++k)
        if (tokens[k] < 0 || tokens[k] >= hp.n_vocab)
            throw error("decode: token id " + std::to_string(tokens[k]) + " outside the vocabulary [0, " + std::to_string(hp.n_vocab) + ")");

    x.resize(size_t(n_tok * E));
    const float es = hp.embedding_scale != 0.0f ? hp.embedding_scale : 1.0f;
    for (int64_t k = 0; k < n_tok; ++k) {
        const float* e = m.tok_embd.data<float>() + int64_t(tokens[k]) * E;
        for (int64_t i = 0; i < E; ++i) x[size_t(k * E + i)] = e[i] * es;
    }

    const float rs = hp.residual_scale != 0.0f ? hp.residual_scale : 1.0f;
    auto residual = [&] {
        for (size_t i = 0; i < x.size(); ++i) x[i] += mix[i] * rs;
    };
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        const layer_weights& L = m.layers[size_t(il)];
        cur = x;
        rms_norm(cur.data(), n_tok, E, E, L.attn_norm.data<float>(), hp.rms_eps);
        if (hp.is_recurrent(il))
            mamba2_block(*this, ub, il, cur.data());
        else
            attention_block(*this, ub, il, cur.data());
        residual();
        if (hp.n_ff > 0) {
            cur = x;
            rms_norm(cur.data(), n_tok, E, E, L.ffn_norm.data<float>(), hp.rms_eps);
            mlp_block(*this, n_tok, il, cur.data());
            residual();
        }
    }
    for (int s = 0; s < n_s; ++s) n_past[size_t(slot_ids[s])] += n_t;

    if (mode != logits_mode::none) {
        // Only the rows asked for go through the output norm and the (large) lm_head.
        const int64_t rows = mode == logits_mode::all ? n_tok : n_s;
        h.resize(size_t(rows * E));
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t k = mode == logits_mode::all ? r : r * n_t + (n_t - 1);
            std::memcpy(h.data() + r * E, x.data() + k * E, size_t(E) * 4);
        }
        rms_norm(h.data(), rows, E, E, m.output_norm.data<float>(), hp.rms_eps);
        gemm(*this, h.data(), rows, m.output_weight(), logits);
        if (hp.logit_scale != 0.0f) {
            const float inv = 1.0f / hp.logit_scale;
            for (float& v : logits) v *= inv;
        }
    } else {
        logits.clear();
    }

    if (cp.profile) {
        const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
        const double counted = (prof.total() - prof.other) - (before.total() - before.other);
        prof.other += std::max(0.0, total - counted);
    }
}

}  // namespace ssmkit::model::detail
