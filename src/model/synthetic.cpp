// Built-in models with random weights, for benchmarking and tests without a model file.
//
// granite-4.0-h-1b's shapes, from the published config.json of ibm-granite/granite-4.0-h-1b
// (copies found with the code search; the HF page itself was not reachable): hidden_size 1536,
// num_hidden_layers 40 with layer_types "attention" at layers 5, 15, 25 and 35 (the others
// "mamba"), num_attention_heads 12, num_key_value_heads 4 (head dim 1536/12 = 128),
// intermediate_size = shared_intermediate_size 4096, no experts (dense SwiGLU), vocab_size
// 100352, mamba_n_heads 48, mamba_d_head 64 (d_inner 3072), mamba_d_state 128, mamba_n_groups 1,
// mamba_d_conv 4, tie_word_embeddings true, position_embedding_type "nope".
// Its four multipliers were NOT found; the values below are those of other Granite-4 configs of
// this width class (embedding 12, residual 0.22, attention 1/head_dim, logits_scaling 6) and
// only affect scaling, not cost.
// granite-4.0-h-350m's shapes (hidden 768, 32 layers, attention at 10, 13, 17, 27, 48 SSM heads
// x 32, FFN 2048, multipliers 12 / 0.246 / 0.015625 / 3) come from a copy of its config.json.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "internal.h"

namespace ssmkit::model {
namespace {

struct preset {
    const char* name;
    const char* note;
    hparams hp;
    bool tied;  // output tied to token_embd (the Granite-4.0-H checkpoints are)
};

hparams mamba2(int64_t n_embd, int64_t n_layer, int64_t n_ssm_head, int64_t d_state, int64_t n_group,
               int64_t n_vocab) {
    hparams hp;
    hp.architecture = arch::mamba2;
    hp.n_embd = n_embd;
    hp.n_layer = n_layer;
    hp.n_vocab = n_vocab;
    hp.rms_eps = 1e-5f;
    hp.d_conv = 4;
    hp.d_inner = 2 * n_embd;
    hp.d_state = d_state;
    hp.n_ssm_head = n_ssm_head;
    hp.n_group = n_group;
    return hp;
}

hparams granite(int64_t n_embd, int64_t n_layer, std::vector<int64_t> attn_layers, int64_t n_head,
                int64_t n_kv, int64_t n_ssm_head, int64_t d_state, int64_t n_group, int64_t n_ff,
                int64_t n_vocab, float emb, float res, float logit) {
    // The SSM part is Mamba-2's; Granite adds attention layers, an MLP and its multipliers.
    hparams hp = mamba2(n_embd, n_layer, n_ssm_head, d_state, n_group, n_vocab);
    hp.architecture = arch::granite_hybrid;
    hp.n_head = n_head;
    hp.n_embd_head = n_embd / n_head;
    hp.n_head_kv.assign(size_t(n_layer), 0);
    for (int64_t il : attn_layers) hp.n_head_kv[size_t(il)] = n_kv;
    hp.n_ff = n_ff;
    hp.embedding_scale = emb;
    hp.residual_scale = res;
    hp.attention_scale = 1.0f / float(hp.n_embd_head);
    hp.logit_scale = logit;
    return hp;
}


const std::vector<preset>& presets() {
    static const std::vector<preset> p = {
        {"granite-4.0-h-1b", "granite-4.0-h-1b's shapes (the default)",
         granite(1536, 40, {5, 15, 25, 35}, 12, 4, 48, 128, 1, 4096, 100352, 12.0f, 0.22f, 6.0f), true},
        {"granite-4.0-h-350m", "granite-4.0-h-350m's shapes",
         granite(768, 32, {10, 13, 17, 27}, 12, 4, 48, 128, 1, 2048, 100352, 12.0f, 0.246f, 3.0f), true},
        {"tiny", "6 layers (attention at 2 and 5), n_embd 64, 2 SSM groups, untied output, for tests",
         granite(64, 6, {2, 5}, 4, 2, 8, 16, 2, 96, 256, 12.0f, 0.25f, 2.0f), false},
        {"mamba2-tiny", "pure Mamba-2, 4 layers, n_embd 64, for tests", mamba2(64, 4, 8, 16, 2, 256), true},
    };
    return p;
}

// splitmix64: small, fast, and good enough to seed and to draw weights.
inline uint64_t mix(uint64_t& s) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
inline float uniform01(uint64_t& s) { return float(mix(s) >> 40) * (1.0f / 16777216.0f); }
// Sum of four 16-bit uniforms, scaled to unit variance: close enough to a normal for weights,
// and several times cheaper than Box-Muller for the 1.5 billion values of the 1b preset.
inline float approx_normal(uint64_t& s) {
    const uint64_t r = mix(s);
    const float sum = float(r & 0xFFFF) + float((r >> 16) & 0xFFFF) + float((r >> 32) & 0xFFFF) + float(r >> 48);
    return (sum * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

void fill(const detail::tensor_spec& spec, uint64_t seed, int64_t begin, int64_t end) {
    float* d = spec.dst->data<float>();
    uint64_t s = seed;
    using init = detail::tensor_spec::init;
    for (int64_t i = begin; i < end; ++i) {
        switch (spec.how) {
            case init::normal: d[i] = spec.scale * approx_normal(s); break;
            case init::ones: d[i] = 1.0f + 0.05f * approx_normal(s); break;
            case init::zeros: d[i] = 0.0f; break;
            case init::conv_bias: d[i] = 0.1f * approx_normal(s); break;
            case init::dt_bias: {
                // Mamba-2's initialization: dt log-uniform in [1e-3, 1e-1], bias = softplus^-1(dt).
                const float dt = std::exp(std::log(1e-3f) + uniform01(s) * (std::log(1e-1f) - std::log(1e-3f)));
                d[i] = dt + std::log(-std::expm1(-dt));
                break;
            }
            case init::a_neg: d[i] = -(1.0f + 15.0f * uniform01(s)); break;  // A in [1, 16], stored -A
            case init::d_skip: d[i] = 1.0f; break;
        }
    }
}

}  // namespace

std::vector<std::string> synthetic_presets() {
    std::vector<std::string> names;
    for (const auto& p : presets()) names.push_back(std::string(p.name) + ": " + p.note);
    return names;
}

model make_synthetic(const std::string& name, uint64_t seed, int threads) {
    const preset* found = nullptr;
    for (const auto& p : presets())
        if (name == p.name || (name == "1b" && std::string(p.name) == "granite-4.0-h-1b") ||
            (name == "350m" && std::string(p.name) == "granite-4.0-h-350m"))
            found = &p;
    if (!found) {
        std::string list;
        for (const auto& p : presets()) list += std::string(list.empty() ? "" : ", ") + p.name;
        throw model_error("unknown synthetic model '" + name + "' (presets: " + list + ")");
    }
    model m;
    m.name = "synthetic:" + std::string(found->name);
    m.hp = found->hp;

    auto table = detail::tensor_table(m);
    // Work items of at most 1M elements, each seeded from (seed, tensor, chunk), so the weights do
    // not depend on the thread count.
    struct item { size_t spec; int64_t begin, end; };
    std::vector<item> items;
    const int64_t chunk = 1 << 20;
    for (size_t i = 0; i < table.size(); ++i) {
        auto& spec = table[i];
        if (spec.name == "output.weight" && found->tied) continue;
        *spec.dst = host_tensor(dtype::f32, spec.shape);
        const int64_t n = spec.dst->nelements();
        for (int64_t b = 0; b < n; b += chunk) items.push_back({i, b, std::min(n, b + chunk)});
    }
    std::atomic<size_t> next{0};
    auto work = [&] {
        for (size_t k; (k = next.fetch_add(1)) < items.size();) {
            const item& it = items[k];
            uint64_t s = seed * 0x100000001B3ull + it.spec * 0x9E3779B97F4A7C15ull + uint64_t(it.begin);
            mix(s);
            fill(table[it.spec], s, it.begin, it.end);
        }
    };
    int n_threads = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    for (int t = 1; t < n_threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    return m;
}

}  // namespace ssmkit::model
