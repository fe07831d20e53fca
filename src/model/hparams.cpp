// Hyper-parameters and the tensor table.
//
// Verified against llama.cpp's public sources (ggml-org/llama.cpp, via the code search):
//  - src/llama-arch.cpp: keys "%s.ssm.conv_kernel", "%s.ssm.inner_size", "%s.ssm.state_size",
//    "%s.ssm.time_step_rank", "%s.ssm.group_count", "%s.embedding_scale", "%s.residual_scale",
//    "%s.logit_scale", "%s.attention.scale", "%s.attention.head_count(_kv)",
//    "%s.attention.layer_norm_rms_epsilon", "%s.rope.scaling.finetuned".
//  - src/models/granite-hybrid.cpp (load_arch_hparams / load_arch_tensors): a layer is recurrent
//    iff head_count_kv[il] == 0; d_in_proj = 2*d_inner + 2*n_group*d_state + n_ssm_head with
//    n_ssm_head = ssm.time_step_rank; tensor shapes ssm_in {n_embd, d_in_proj},
//    ssm_conv1d {d_conv, d_inner + 2*n_group*d_state} (+ optional bias), ssm_dt.bias {n_head},
//    ssm_a {1, n_head} and ssm_d {1, n_head} (no ".weight" suffix), ssm_norm
//    {d_inner/n_group, n_group}, ssm_out {d_inner, n_embd}; attn_q/k/v/output
//    {n_embd, head_dim*n_head(_kv)}; ffn_gate/up {n_embd, n_ff}, ffn_down {n_ff, n_embd};
//    "output" optional (absent: tied to token_embd); llama.cpp asserts d_inner == 2*n_embd.
//  - conversion/mamba.py (Mamba2Model): ssm_a is stored as -exp(A_log), A and D reshaped to
//    [1, n_head] in ggml order, ssm_norm reshaped to (n_group, d_inner/n_group), conv1d
//    squeezed to {d_conv, channels}; mamba2 files write head_count 0 and feed_forward_length 0.
//  - convert_hf_to_gguf.py GraniteHybridModel: head_count_kv written as a per-layer array with 0
//    on SSM layers; rope.scaling.finetuned = false for Granite-4.0-H (no positional encoding);
//    embedding/residual/attention multipliers and logits_scaling become the *_scale keys.
#include <algorithm>
#include <iomanip>
#include <sstream>

#include "internal.h"

namespace ssmkit::model {

const char* arch_name(arch a) { return a == arch::mamba2 ? "mamba2" : "granitehybrid"; }

int64_t hparams::n_attn_layers() const {
    int64_t n = 0;
    for (int64_t il = 0; il < n_layer; ++il) n += is_recurrent(il) ? 0 : 1;
    return n;
}

float hparams::kq_scale() const {
    return attention_scale != 0.0f ? attention_scale : 1.0f / std::sqrt(float(n_embd_head));
}

int64_t model::n_params() const {
    int64_t n = tok_embd.nelements() + output_norm.nelements() + (tied_output() ? 0 : output.nelements());
    for (auto& spec : detail::tensor_table(const_cast<model&>(*this)))
        if (spec.dst->nbytes() > 0 && spec.name.rfind("blk.", 0) == 0) n += spec.dst->nelements();
    return n;
}

std::string model::describe() const {
    std::ostringstream os;
    os << arch_name(hp.architecture) << ": n_embd " << hp.n_embd << ", " << hp.n_layer << " layers ("
       << hp.n_layer - hp.n_attn_layers() << " Mamba-2, " << hp.n_attn_layers() << " attention";
    if (hp.n_attn_layers() > 0) {
        os << " at";
        for (int64_t il = 0; il < hp.n_layer; ++il)
            if (!hp.is_recurrent(il)) os << ' ' << il;
    }
    os << "), vocab " << hp.n_vocab << ", " << std::fixed << std::setprecision(n_params() >= 1000000000 ? 2 : 3)
       << (n_params() >= 1000000000 ? double(n_params()) / 1e9 : double(n_params()) / 1e6)
       << (n_params() >= 1000000000 ? " B" : " M") << " params" << std::defaultfloat
       << (tied_output() ? " (tied output)" : "") << "\n";
    os << "  SSM: " << hp.n_ssm_head << " heads x " << hp.ssm_head_dim() << ", d_state "
       << hp.d_state << ", " << hp.n_group << " group(s), d_conv " << hp.d_conv << " ("
       << hp.conv_channels() << " conv channels)";
    if (hp.n_attn_layers() > 0) {
        int64_t kv = 0;
        for (int64_t il = 0; il < hp.n_layer; ++il) kv = std::max(kv, hp.n_head_kv[size_t(il)]);
        os << "; attention: " << hp.n_head << " heads (" << kv << " KV) x " << hp.n_embd_head;
    }
    if (hp.n_ff > 0) os << "; SwiGLU FFN " << hp.n_ff;
    return os.str();
}

namespace detail {

std::string key(const hparams& hp, const std::string& suffix) {
    return std::string(arch_name(hp.architecture)) + "." + suffix;
}

std::vector<tensor_spec> tensor_table(model& m) {
    const hparams& hp = m.hp;
    using init = tensor_spec::init;
    std::vector<tensor_spec> t;
    auto add = [&](std::string name, std::vector<int64_t> shape, host_tensor* dst, bool matrix,
                   init how, float scale = 1.0f, bool required = true) {
        tensor_spec s;
        s.name = std::move(name);
        s.shape = std::move(shape);
        s.dst = dst;
        s.matrix = matrix;
        s.how = how;
        s.scale = scale;
        s.required = required;
        t.push_back(std::move(s));
    };
    const float emb_sd = hp.embedding_scale != 0.0f ? 1.0f / hp.embedding_scale : 1.0f;
    auto fan_in = [](int64_t n) { return 1.0f / std::sqrt(float(n)); };

    add("token_embd.weight", {hp.n_embd, hp.n_vocab}, &m.tok_embd, true, init::normal, emb_sd);
    m.layers.resize(size_t(hp.n_layer));
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        layer_weights& L = m.layers[size_t(il)];
        const std::string b = "blk." + std::to_string(il) + ".";
        add(b + "attn_norm.weight", {hp.n_embd}, &L.attn_norm, false, init::ones);
        if (hp.is_recurrent(il)) {
            const int64_t ch = hp.conv_channels();
            add(b + "ssm_in.weight", {hp.n_embd, hp.d_in_proj()}, &L.ssm_in, true, init::normal, fan_in(hp.n_embd));
            add(b + "ssm_conv1d.weight", {hp.d_conv, ch}, &L.ssm_conv1d, false, init::normal, fan_in(hp.d_conv));
            add(b + "ssm_conv1d.bias", {ch}, &L.ssm_conv1d_b, false, init::conv_bias, 1.0f, false);
            add(b + "ssm_dt.bias", {hp.n_ssm_head}, &L.ssm_dt_b, false, init::dt_bias);
            add(b + "ssm_a", {1, hp.n_ssm_head}, &L.ssm_a, false, init::a_neg);
            add(b + "ssm_d", {1, hp.n_ssm_head}, &L.ssm_d, false, init::d_skip);
            add(b + "ssm_norm.weight", {hp.d_inner / hp.n_group, hp.n_group}, &L.ssm_norm, false, init::ones);
            add(b + "ssm_out.weight", {hp.d_inner, hp.n_embd}, &L.ssm_out, true, init::normal, fan_in(hp.d_inner));
        } else {
            const int64_t hd = hp.n_embd_head, nq = hd * hp.n_head, nkv = hd * hp.n_head_kv[size_t(il)];
            add(b + "attn_q.weight", {hp.n_embd, nq}, &L.wq, true, init::normal, fan_in(hp.n_embd));
            add(b + "attn_k.weight", {hp.n_embd, nkv}, &L.wk, true, init::normal, fan_in(hp.n_embd));
            add(b + "attn_v.weight", {hp.n_embd, nkv}, &L.wv, true, init::normal, fan_in(hp.n_embd));
            add(b + "attn_output.weight", {nq, hp.n_embd}, &L.wo, true, init::normal, fan_in(nq));
        }
        if (hp.n_ff > 0) {
            add(b + "ffn_norm.weight", {hp.n_embd}, &L.ffn_norm, false, init::ones);
            add(b + "ffn_gate.weight", {hp.n_embd, hp.n_ff}, &L.ffn_gate, true, init::normal, fan_in(hp.n_embd));
            add(b + "ffn_up.weight", {hp.n_embd, hp.n_ff}, &L.ffn_up, true, init::normal, fan_in(hp.n_embd));
            add(b + "ffn_down.weight", {hp.n_ff, hp.n_embd}, &L.ffn_down, true, init::normal, fan_in(hp.n_ff));
        }
    }
    add("output_norm.weight", {hp.n_embd}, &m.output_norm, false, init::ones);
    add("output.weight", {hp.n_embd, hp.n_vocab}, &m.output, true, init::normal, fan_in(hp.n_embd), false);
    return t;
}

}  // namespace detail
}  // namespace ssmkit::model
