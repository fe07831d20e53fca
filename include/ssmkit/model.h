// Hybrid Mamba-2 / attention language models (llama.cpp's `mamba2` and `granitehybrid` GGUF
// architectures) evaluated on the CPU, with the SSM operators going through ssmkit's public API.
//
// A `model` holds hyper-parameters and f32 weights; a `context` holds the per-sequence memory
// (conv state, SSM state, KV cache) in slots and runs the forward pass in micro-batches.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ssmkit/error.h"
#include "ssmkit/gguf.h"
#include "ssmkit/tensor.h"

namespace ssmkit::model {

// A file or preset that is not a model this library can run: wrong architecture, a missing or
// mis-shaped tensor, a missing key. what() names the file and the offending key or tensor.
class model_error : public error {
public:
    using error::error;
};

enum class arch { mamba2, granite_hybrid };
const char* arch_name(arch a);  // the GGUF general.architecture string

struct hparams {
    arch architecture = arch::granite_hybrid;
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_vocab = 0;
    float rms_eps = 1e-5f;

    // Mamba-2 mixer
    int64_t d_conv = 0;
    int64_t d_inner = 0;
    int64_t d_state = 0;
    int64_t n_ssm_head = 0;  // GGUF ssm.time_step_rank
    int64_t n_group = 0;

    // Attention (granitehybrid only); n_head_kv[il] == 0 marks a Mamba-2 layer.
    int64_t n_head = 0;
    int64_t n_embd_head = 0;
    std::vector<int64_t> n_head_kv;
    int64_t n_ff = 0;  // SwiGLU width (granitehybrid); 0 for mamba2 (no MLP)

    // Granite multipliers; 0 means "not applied", as in llama.cpp.
    float embedding_scale = 0;
    float residual_scale = 0;
    float attention_scale = 0;  // 0: 1/sqrt(n_embd_head)
    float logit_scale = 0;

    bool is_recurrent(int64_t il) const { return n_head_kv.empty() || n_head_kv[il] == 0; }
    int64_t ssm_head_dim() const { return d_inner / n_ssm_head; }
    int64_t conv_channels() const { return d_inner + 2 * n_group * d_state; }
    int64_t d_in_proj() const { return 2 * d_inner + 2 * n_group * d_state + n_ssm_head; }
    int64_t n_attn_layers() const;
    float kq_scale() const;
};

// Weights in GGUF's convention: a matrix is [ne0 = in, ne1 = out], rows of `in` floats.
struct layer_weights {
    host_tensor attn_norm;
    // Mamba-2
    host_tensor ssm_in, ssm_conv1d, ssm_conv1d_b, ssm_dt_b, ssm_a, ssm_d, ssm_norm, ssm_out;
    // attention
    host_tensor wq, wk, wv, wo;
    // SwiGLU MLP (granitehybrid)
    host_tensor ffn_norm, ffn_gate, ffn_up, ffn_down;
};

struct model {
    hparams hp;
    std::string name;    // file path or "synthetic:NAME"
    host_tensor tok_embd, output_norm, output;  // output empty when tied to tok_embd
    std::vector<layer_weights> layers;

    const host_tensor& output_weight() const { return tied_output() ? tok_embd : output; }
    bool tied_output() const { return output.nbytes() == 0; }
    int64_t n_params() const;
    // Two lines: architecture, sizes, layer pattern.
    std::string describe() const;
};

// Reads a GGUF written by llama.cpp's converter (or by save_gguf). Weights of type f32, f16,
// bf16 or q8_0 are converted to f32. Throws model_error (or gguf_error for a malformed file).
model load_gguf(const std::string& path);

// Random weights with the shapes of a named preset, scaled so activations stay finite and
// non-trivial through every layer. Throws model_error for an unknown name.
model make_synthetic(const std::string& preset, uint64_t seed, int threads = 0);
std::vector<std::string> synthetic_presets();
// "synthetic:NAME" -> make_synthetic, anything else -> load_gguf.
model load(const std::string& spec, uint64_t seed = 42, int threads = 0);

// Writes the model in llama.cpp's layout. Matrices are stored as `type` (f32, f16, bf16 or q8_0);
// norms, biases and the SSM vectors always as f32, as llama.cpp's converter keeps them.
void save_gguf(const model& m, const std::string& path,
               gguf::tensor_type type = gguf::tensor_type::f32);

// Where the forward pass spends its time, in seconds.
struct profile {
    double gemm = 0, ssm_conv = 0, ssm_scan = 0, attention = 0, other = 0;
    double total() const { return gemm + ssm_conv + ssm_scan + attention + other; }
};

struct context_params {
    int n_slots = 1;        // sequences that can be held at once
    int n_ctx = 512;        // KV capacity per slot (tokens)
    std::string backend;    // "" = "cpu" when available, else "cpu-ref"
    int threads = 0;        // 0 = all cores
    bool profile = false;   // collect per-op timings (adds synchronization points)
};

class context {
public:
    context(const model& m, const context_params& p);
    ~context();
    context(const context&) = delete;
    context& operator=(const context&) = delete;

    const model& get_model() const;
    std::string backend_name() const;
    std::string backend_description() const;
    int n_slots() const;
    int n_ctx() const;

    // Forgets everything held in a slot (or all slots).
    void clear_slot(int slot);
    void clear();
    // Tokens already processed in a slot.
    int64_t n_past(int slot) const;

    // One micro-batch: n_s sequences of n_t new tokens each, tokens[s * n_t + t], sequence s
    // continuing slot slots[s] (distinct). Logits go to `logits` ([row][n_vocab], resized):
    // every token's row when all_logits, else one row per sequence for its last token.
    void decode_ubatch(const int32_t* tokens, const int* slots, int n_s, int n_t, bool all_logits,
                       std::vector<float>& logits);

    // Any number of sequences with the same number of new tokens, split into micro-batches of
    // at most n_ubatch tokens. Logits as in decode_ubatch, rows in sequence order.
    void decode(const std::vector<std::vector<int32_t>>& seqs, const std::vector<int>& slots,
                int n_ubatch, bool all_logits, std::vector<float>& logits);

    const profile& get_profile() const;
    void reset_profile();

private:
    struct impl;
    std::unique_ptr<impl> p_;
};

}  // namespace ssmkit::model
