// model -> GGUF, in the layout llama.cpp's converter writes (see hparams.cpp for the sources).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "internal.h"

namespace ssmkit::model {
namespace {

// q8_0: blocks of 32 values as an f16 scale and 32 int8, the scale being max|x| / 127.
std::vector<unsigned char> quantize_q8_0(const float* x, int64_t n) {
    const int64_t nb = n / 32;
    std::vector<unsigned char> out(size_t(nb) * 34);
    for (int64_t b = 0; b < nb; ++b) {
        const float* v = x + b * 32;
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[i]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = gguf::f32_to_f16(d);
        unsigned char* blk = out.data() + b * 34;
        std::memcpy(blk, &dh, 2);
        for (int i = 0; i < 32; ++i) {
            const int q = int(std::lround(v[i] * id));
            blk[2 + i] = static_cast<unsigned char>(static_cast<int8_t>(std::clamp(q, -127, 127)));
        }
    }
    return out;
}

void add(gguf::writer& w, const std::string& name, const host_tensor& t, gguf::tensor_type type) {
    std::vector<int64_t> ne(t.ne(), t.ne() + 4);
    while (ne.size() > 1 && ne.back() == 1) ne.pop_back();
    const float* x = t.data<float>();
    const int64_t n = t.nelements();
    if (type == gguf::tensor_type::q8_0 && ne[0] % 32 != 0) type = gguf::tensor_type::f16;
    switch (type) {
        case gguf::tensor_type::f16:
        case gguf::tensor_type::bf16: {
            std::vector<uint16_t> h(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i)
                h[size_t(i)] = type == gguf::tensor_type::f16 ? gguf::f32_to_f16(x[i]) : gguf::f32_to_bf16(x[i]);
            w.add_tensor(name, type, ne, h.data(), h.size() * 2);
            return;
        }
        case gguf::tensor_type::q8_0: {
            auto q = quantize_q8_0(x, n);
            w.add_tensor(name, type, ne, q.data(), q.size());
            return;
        }
        default: w.add_tensor(name, gguf::tensor_type::f32, ne, x, size_t(n) * 4); return;
    }
}

}  // namespace

void save_gguf(const model& m, const std::string& path, gguf::tensor_type type) {
    if (type != gguf::tensor_type::f32 && type != gguf::tensor_type::f16 && type != gguf::tensor_type::bf16 &&
        type != gguf::tensor_type::q8_0)
        throw model_error(std::string("save_gguf: cannot store weights as ") + gguf::tensor_type_name(type));
    const hparams& hp = m.hp;
    auto k = [&](const char* s) { return detail::key(hp, s); };
    gguf::writer w;
    w.set_string("general.architecture", arch_name(hp.architecture));
    w.set_string("general.name", m.name);
    w.set_u32(k("context_length"), 1u << 20);
    w.set_u32(k("embedding_length"), uint32_t(hp.n_embd));
    w.set_u32(k("block_count"), uint32_t(hp.n_layer));
    w.set_u32(k("vocab_size"), uint32_t(hp.n_vocab));
    w.set_u32(k("ssm.conv_kernel"), uint32_t(hp.d_conv));
    w.set_u32(k("ssm.inner_size"), uint32_t(hp.d_inner));
    w.set_u32(k("ssm.state_size"), uint32_t(hp.d_state));
    w.set_u32(k("ssm.time_step_rank"), uint32_t(hp.n_ssm_head));
    w.set_u32(k("ssm.group_count"), uint32_t(hp.n_group));
    w.set_f32(k("attention.layer_norm_rms_epsilon"), hp.rms_eps);
    if (hp.architecture == arch::granite_hybrid) {
        w.set_u32(k("attention.head_count"), uint32_t(hp.n_head));
        std::vector<int32_t> kv(hp.n_head_kv.begin(), hp.n_head_kv.end());
        w.set_i32_array(k("attention.head_count_kv"), kv);
        if (hp.n_head > 0 && hp.n_embd_head != hp.n_embd / hp.n_head) {
            w.set_u32(k("attention.key_length"), uint32_t(hp.n_embd_head));
            w.set_u32(k("attention.value_length"), uint32_t(hp.n_embd_head));
        }
        w.set_u32(k("feed_forward_length"), uint32_t(hp.n_ff));
        if (hp.embedding_scale != 0) w.set_f32(k("embedding_scale"), hp.embedding_scale);
        if (hp.residual_scale != 0) w.set_f32(k("residual_scale"), hp.residual_scale);
        if (hp.attention_scale != 0) w.set_f32(k("attention.scale"), hp.attention_scale);
        if (hp.logit_scale != 0) w.set_f32(k("logit_scale"), hp.logit_scale);
        w.set_bool(k("rope.scaling.finetuned"), false);
    } else {
        // What the Mamba2 converter writes: "unused, but seemingly required when loading".
        w.set_u32(k("attention.head_count"), 0);
        w.set_u32(k("feed_forward_length"), 0);
    }
    for (auto& spec : detail::tensor_table(const_cast<model&>(m))) {
        if (spec.dst->nbytes() == 0) continue;  // optional and absent (tied output, no conv bias)
        add(w, spec.name, *spec.dst, spec.matrix ? type : gguf::tensor_type::f32);
    }
    w.write(path);
}

}  // namespace ssmkit::model
