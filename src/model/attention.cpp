// Granite-4.0-H's attention: grouped-query, causal, no positional encoding (the converter sets
// rope.scaling.finetuned = false), scores scaled by attention.scale (llama.cpp's kq_scale), with
// a KV cache per slot.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "context_impl.h"

namespace ssmkit::model::detail {
namespace {

// Appends the micro-batch's K and V to each slot's cache, then writes softmax(q K^T * scale) V
// for every query row into c.o.
void attend(context_state& c, const ubatch& ub, layer_memory& mem, int64_t n_kv) {
    const hparams& hp = c.m.hp;
    const int64_t hd = hp.n_embd_head, n_head = hp.n_head, qdim = n_head * hd, kvdim = n_kv * hd;
    const int64_t group = n_head / n_kv, n_ctx = c.cp.n_ctx;
    const float scale = hp.kq_scale();
    scoped_timer timer(c.bucket(&profile::attention));

    for (int64_t s = 0; s < ub.n_s; ++s) {
        const int64_t slot = ub.slots[size_t(s)];
        float* K = mem.k.data() + slot * n_ctx * kvdim;
        float* V = mem.v.data() + slot * n_ctx * kvdim;
        for (int64_t t = 0; t < ub.n_t; ++t) {
            const int64_t row = s * ub.n_t + t, pos = ub.pos0[size_t(s)] + t;
            std::memcpy(K + pos * kvdim, c.k.data() + row * kvdim, size_t(kvdim) * 4);
            std::memcpy(V + pos * kvdim, c.v.data() + row * kvdim, size_t(kvdim) * 4);
        }
    }
    c.o.assign(size_t(ub.n_tokens() * qdim), 0.0f);
    for (int64_t s = 0; s < ub.n_s; ++s) {
        const int64_t slot = ub.slots[size_t(s)];
        const float* K = mem.k.data() + slot * n_ctx * kvdim;
        const float* V = mem.v.data() + slot * n_ctx * kvdim;
        for (int64_t t = 0; t < ub.n_t; ++t) {
            const int64_t row = s * ub.n_t + t, n = ub.pos0[size_t(s)] + t + 1;  // causal
            c.scores.resize(size_t(n));
            float* sc = c.scores.data();
            for (int64_t h = 0; h < n_head; ++h) {
                // Consecutive query heads share a KV head, as ggml's broadcast in mul_mat does.
                const int64_t g = h / group;
                const float* qv = c.q.data() + row * qdim + h * hd;
                float mx = -INFINITY;
                for (int64_t j = 0; j < n; ++j) {
                    const float* kv = K + j * kvdim + g * hd;
                    float d = 0;
                    for (int64_t e = 0; e < hd; ++e) d += qv[e] * kv[e];
                    sc[j] = d * scale;
                    mx = std::max(mx, sc[j]);
                }
                double sum = 0;
                for (int64_t j = 0; j < n; ++j) {
                    sc[j] = std::exp(sc[j] - mx);
                    sum += sc[j];
                }
                const float inv = float(1.0 / sum);
                float* ov = c.o.data() + row * qdim + h * hd;
                for (int64_t j = 0; j < n; ++j) {
                    const float w = sc[j] * inv;
                    const float* vv = V + j * kvdim + g * hd;
                    for (int64_t e = 0; e < hd; ++e) ov[e] += w * vv[e];
                }
            }
        }
    }
}

}  // namespace

void attention_block(context_state& c, const ubatch& ub, int64_t il, const float* in) {
    const layer_weights& L = c.m.layers[size_t(il)];
    gemm(c, in, ub.n_tokens(), L.wq, c.q);
    gemm(c, in, ub.n_tokens(), L.wk, c.k);
    gemm(c, in, ub.n_tokens(), L.wv, c.v);
    attend(c, ub, c.mem[size_t(il)], c.m.hp.n_head_kv[size_t(il)]);
    gemm(c, c.o.data(), ub.n_tokens(), L.wo, c.mix);
}

}  // namespace ssmkit::model::detail
