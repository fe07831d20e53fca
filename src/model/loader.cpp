// GGUF -> model. Every problem is reported as model_error naming the file and the key or tensor.
#include <algorithm>
#include <set>
#include <sstream>

#include "internal.h"

namespace ssmkit::model {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
    std::ostringstream os;
    os << '[';
    for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
    os << ']';
    return os.str();
}

class meta {
public:
    meta(const gguf::reader& r, const hparams& hp) : r_(r), hp_(hp) {}

    [[noreturn]] void fail(const std::string& what) const { throw model_error(r_.path() + ": " + what); }

    const gguf::value& need(const std::string& suffix) const {
        const std::string k = detail::key(hp_, suffix);
        const gguf::value* v = r_.find(k);
        if (!v) fail("missing metadata key '" + k + "'");
        return *v;
    }
    int64_t get_int(const std::string& suffix) const {
        need(suffix);
        try {
            return r_.get_int(detail::key(hp_, suffix));
        } catch (const gguf_error& e) {
            fail(e.what());
        }
    }
    int64_t get_positive(const std::string& suffix) const {
        const int64_t v = get_int(suffix);
        if (v <= 0) fail("metadata key '" + detail::key(hp_, suffix) + "' is " + std::to_string(v) + ", expected > 0");
        return v;
    }
    float get_float(const std::string& suffix, float def, bool required = false) const {
        const std::string k = detail::key(hp_, suffix);
        if (!r_.find(k)) {
            if (required) fail("missing metadata key '" + k + "'");
            return def;
        }
        try {
            return float(r_.get_float(k));
        } catch (const gguf_error& e) {
            fail(e.what());
        }
    }
    // A scalar, or an array with one value per layer (llama.cpp accepts both).
    std::vector<int64_t> get_per_layer(const std::string& suffix, int64_t n_layer) const {
        const gguf::value& v = need(suffix);
        const std::string k = detail::key(hp_, suffix);
        if (v.type != gguf::value_type::array) return std::vector<int64_t>(size_t(n_layer), get_int(suffix));
        std::vector<int64_t> a;
        try {
            a = r_.get_int_array(k);
        } catch (const gguf_error& e) {
            fail(e.what());
        }
        if (int64_t(a.size()) != n_layer)
            fail("metadata key '" + k + "' has " + std::to_string(a.size()) + " values, expected one per layer (" +
                 std::to_string(n_layer) + ")");
        return a;
    }

private:
    const gguf::reader& r_;
    const hparams& hp_;
};

void check_hparams(const meta& m, const hparams& hp) {
    auto rule = [&](bool ok, const std::string& what) {
        if (!ok) m.fail("inconsistent hyper-parameters: " + what);
    };
    rule(hp.d_inner % hp.n_ssm_head == 0, "ssm.inner_size " + std::to_string(hp.d_inner) +
                                              " is not a multiple of ssm.time_step_rank (SSM heads) " +
                                              std::to_string(hp.n_ssm_head));
    rule(hp.n_ssm_head % hp.n_group == 0, "ssm.time_step_rank " + std::to_string(hp.n_ssm_head) +
                                              " is not a multiple of ssm.group_count " + std::to_string(hp.n_group));
    if (hp.architecture == arch::granite_hybrid) {
        for (int64_t il = 0; il < hp.n_layer; ++il) {
            const int64_t kv = hp.n_head_kv[size_t(il)];
            rule(kv >= 0 && (kv == 0 || hp.n_head % kv == 0),
                 "attention.head_count " + std::to_string(hp.n_head) + " is not a multiple of head_count_kv[" +
                     std::to_string(il) + "] = " + std::to_string(kv));
        }
    }
}

}  // namespace

model load_gguf(const std::string& path) {
    gguf::reader r(path);  // throws gguf_error for a malformed or truncated file
    model mdl;
    mdl.name = path;
    hparams& hp = mdl.hp;

    const gguf::value* a = r.find("general.architecture");
    if (!a) throw model_error(path + ": not a model file: no 'general.architecture' key");
    if (a->type != gguf::value_type::string)
        throw model_error(path + ": 'general.architecture' is not a string");
    if (a->s == "mamba2")
        hp.architecture = arch::mamba2;
    else if (a->s == "granitehybrid")
        hp.architecture = arch::granite_hybrid;
    else
        throw model_error(path + ": general.architecture is '" + a->s +
                          "'; this runner supports 'mamba2' and 'granitehybrid'");

    meta m(r, hp);
    hp.n_embd = m.get_positive("embedding_length");
    hp.n_layer = m.get_positive("block_count");
    hp.d_conv = m.get_positive("ssm.conv_kernel");
    hp.d_inner = m.get_positive("ssm.inner_size");
    hp.d_state = m.get_positive("ssm.state_size");
    hp.n_ssm_head = m.get_positive("ssm.time_step_rank");
    hp.n_group = m.get_positive("ssm.group_count");
    hp.rms_eps = m.get_float("attention.layer_norm_rms_epsilon", 0.0f, true);

    if (hp.architecture == arch::granite_hybrid) {
        hp.n_head = m.get_int("attention.head_count");
        hp.n_head_kv = m.get_per_layer("attention.head_count_kv", hp.n_layer);
        const auto ff = m.get_per_layer("feed_forward_length", hp.n_layer);
        hp.n_ff = ff[0];
        for (int64_t v : ff)
            if (v != hp.n_ff || v <= 0)
                m.fail("feed_forward_length must be one positive width for every layer (MoE and per-layer widths are not supported)");
        if (r.find(detail::key(hp, "expert_count")) && r.get_int(detail::key(hp, "expert_count")) > 0)
            m.fail("mixture-of-experts Granite models are not supported (expert_count > 0)");
        if (hp.n_attn_layers() > 0 && hp.n_head <= 0)
            m.fail("attention.head_count must be > 0 when some head_count_kv is non-zero");
        hp.n_embd_head = hp.n_head > 0 ? hp.n_embd / hp.n_head : 0;
        if (r.find(detail::key(hp, "attention.key_length"))) hp.n_embd_head = m.get_int("attention.key_length");
        if (r.find(detail::key(hp, "attention.value_length")) &&
            m.get_int("attention.value_length") != hp.n_embd_head)
            m.fail("attention.value_length differs from key_length (not supported)");
        hp.embedding_scale = m.get_float("embedding_scale", 0.0f);
        hp.residual_scale = m.get_float("residual_scale", 0.0f);
        hp.attention_scale = m.get_float("attention.scale", 0.0f);
        hp.logit_scale = m.get_float("logit_scale", 0.0f);
        // llama.cpp defaults rope.scaling.finetuned to true for Granite and then applies RoPE;
        // Granite-4.0-H files set it false (no positional encoding). RoPE is not implemented.
        const std::string rk = detail::key(hp, "rope.scaling.finetuned");
        const bool rope = !r.find(rk) || r.get_bool(rk);
        if (rope && hp.n_attn_layers() > 0)
            m.fail("'" + rk + "' is " + (r.find(rk) ? "true" : "absent (llama.cpp then defaults to true)") +
                   ": attention with RoPE (Bamba-style) is not supported, only Granite-4.0-H's NoPE attention");
    }

    const gguf::tensor_info* te = r.find_tensor("token_embd.weight");
    if (!te) m.fail("missing tensor 'token_embd.weight'");
    hp.n_vocab = r.find(detail::key(hp, "vocab_size")) ? m.get_positive("vocab_size") : te->ne[1];
    check_hparams(m, hp);

    std::set<std::string> used;
    for (auto& spec : detail::tensor_table(mdl)) {
        const gguf::tensor_info* ti = r.find_tensor(spec.name);
        if (!ti) {
            if (spec.required) m.fail("missing tensor '" + spec.name + "' (expected shape " + shape_str(spec.shape) + ")");
            continue;
        }
        used.insert(spec.name);
        std::vector<int64_t> want = spec.shape, got(ti->ne, ti->ne + 4);
        want.resize(4, 1);
        if (want != got) {
            got.resize(size_t(std::max(ti->n_dims, 1)));
            m.fail("tensor '" + spec.name + "' has shape " + shape_str(got) + ", expected " + shape_str(spec.shape));
        }
        switch (ti->type) {
            case gguf::tensor_type::f32:
            case gguf::tensor_type::f16:
            case gguf::tensor_type::bf16:
            case gguf::tensor_type::q8_0: break;
            default:
                m.fail("tensor '" + spec.name + "' has type " + gguf::tensor_type_name(ti->type) +
                       " (supported: f32, f16, bf16, q8_0)");
        }
        *spec.dst = r.to_f32(spec.name);
    }
    std::string extra;
    int n_extra = 0;
    for (const auto& t : r.tensors())
        if (!used.count(t.name)) {
            if (n_extra < 4) extra += (extra.empty() ? "'" : ", '") + t.name + "'";
            ++n_extra;
        }
    if (n_extra > 0)
        m.fail(std::to_string(n_extra) + " tensor(s) this runner does not implement (biases, MoE, ...): " + extra +
               (n_extra > 4 ? ", ..." : ""));
    return mdl;
}

model load(const std::string& spec, uint64_t seed, int threads) {
    const std::string prefix = "synthetic:";
    if (spec.rfind(prefix, 0) == 0) return make_synthetic(spec.substr(prefix.size()), seed, threads);
    return load_gguf(spec);
}

}  // namespace ssmkit::model
