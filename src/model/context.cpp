// context: backend choice, per-slot recurrent state and KV caches, micro-batch scheduling.
#include <algorithm>
#include <cstring>
#include <thread>

#include "context_impl.h"

namespace ssmkit::model {

struct context::impl : detail::context_state {
    using context_state::context_state;
};

namespace {

std::string pick_backend(const std::string& requested) {
    if (!requested.empty()) return requested;
    const auto avail = available_backends();
    return std::find(avail.begin(), avail.end(), "cpu") != avail.end() ? "cpu" : "cpu-ref";
}

}  // namespace

context::context(const model& m, const context_params& p) : p_(std::make_unique<impl>(m, p)) {
    const hparams& hp = m.hp;
    if (p.n_slots < 1) throw error("context: n_slots must be >= 1");
    if (p.n_ctx < 1) throw error("context: n_ctx must be >= 1");
    const int threads = p.threads > 0 ? p.threads : int(std::max(1u, std::thread::hardware_concurrency()));
    detail::set_threads(threads);
    backend_options bo;
    bo.threads = threads;
    p_->be = make_backend(pick_backend(p.backend), bo);
    if (p_->be->device() != device_kind::host)
        throw error("context: backend '" + p_->be->name() +
                    "' computes on a GPU; the model's GPU path is not built yet (use a CPU backend)");

    p_->mem.resize(size_t(hp.n_layer));
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        auto& mem = p_->mem[size_t(il)];
        if (hp.is_recurrent(il)) {
            mem.conv = host_tensor(dtype::f32, {hp.d_conv - 1, hp.conv_channels(), p.n_slots});
            mem.ssm = host_tensor(dtype::f32, {hp.d_state, hp.ssm_head_dim(), hp.n_ssm_head, p.n_slots});
            mem.zero_bias = host_tensor(dtype::f32, {hp.conv_channels()});
        } else {
            const size_t n = size_t(p.n_slots) * size_t(p.n_ctx) * size_t(hp.n_head_kv[size_t(il)] * hp.n_embd_head);
            mem.k.assign(n, 0.0f);
            mem.v.assign(n, 0.0f);
        }
    }
    p_->n_past.assign(size_t(p.n_slots), 0);
}

context::~context() = default;

const model& context::get_model() const { return p_->m; }
std::string context::backend_name() const { return p_->be->name(); }
std::string context::backend_description() const { return p_->be->description(); }
int context::n_slots() const { return p_->cp.n_slots; }
int context::n_ctx() const { return p_->cp.n_ctx; }
int64_t context::n_past(int slot) const { return p_->n_past.at(size_t(slot)); }
const profile& context::get_profile() const { return p_->prof; }
void context::reset_profile() { p_->prof = profile{}; }

void context::clear_slot(int slot) {
    if (slot < 0 || slot >= p_->cp.n_slots) throw error("context: slot " + std::to_string(slot) + " out of range");
    const hparams& hp = p_->m.hp;
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        auto& mem = p_->mem[size_t(il)];
        if (hp.is_recurrent(il)) {
            const int64_t nc = mem.conv.nelements() / p_->cp.n_slots, ns = mem.ssm.nelements() / p_->cp.n_slots;
            std::fill_n(mem.conv.data<float>() + slot * nc, nc, 0.0f);
            std::fill_n(mem.ssm.data<float>() + slot * ns, ns, 0.0f);
        }
        // KV entries past n_past are never read, so the cache needs no clearing.
    }
    p_->n_past[size_t(slot)] = 0;
}

void context::clear() {
    for (int s = 0; s < p_->cp.n_slots; ++s) clear_slot(s);
}

void context::decode_ubatch(const int32_t* tokens, const int* slots, int n_s, int n_t, bool all_logits,
                            std::vector<float>& logits) {
    p_->decode(tokens, slots, n_s, n_t, all_logits ? detail::logits_mode::all : detail::logits_mode::last, logits);
}

void context::decode(const std::vector<std::vector<int32_t>>& seqs, const std::vector<int>& slots, int n_ubatch,
                     bool all_logits, std::vector<float>& logits) {
    if (seqs.size() != slots.size()) throw error("context::decode: one slot per sequence is needed");
    if (n_ubatch < 1) throw error("context::decode: n_ubatch must be >= 1");
    if (seqs.empty()) {
        logits.clear();
        return;
    }
    const int64_t B = int64_t(seqs.size()), len = int64_t(seqs[0].size()), V = p_->m.hp.n_vocab;
    for (const auto& s : seqs)
        if (int64_t(s.size()) != len) throw error("context::decode: sequences must have the same length");
    if (len == 0) {
        logits.clear();
        return;
    }
    // Micro-batches of n_s sequences x n_t tokens, n_s * n_t <= n_ubatch: all sequences advance
    // together by as many tokens as fit, as llama.cpp splits equal-length sequences.
    const int64_t n_t = std::min<int64_t>(len, std::max<int64_t>(1, n_ubatch / B));
    const int64_t n_s = std::min<int64_t>(B, std::max<int64_t>(1, n_ubatch / n_t));
    logits.assign(size_t((all_logits ? B * len : B) * V), 0.0f);
    std::vector<int32_t> toks;
    std::vector<float> part;
    for (int64_t t0 = 0; t0 < len; t0 += n_t) {
        const int64_t nt = std::min(n_t, len - t0);
        const bool last = t0 + nt == len;
        for (int64_t s0 = 0; s0 < B; s0 += n_s) {
            const int64_t ns = std::min(n_s, B - s0);
            toks.resize(size_t(ns * nt));
            for (int64_t s = 0; s < ns; ++s)
                std::copy_n(seqs[size_t(s0 + s)].begin() + t0, nt, toks.begin() + s * nt);
            const auto mode = all_logits ? detail::logits_mode::all
                                         : (last ? detail::logits_mode::last : detail::logits_mode::none);
            p_->decode(toks.data(), slots.data() + s0, int(ns), int(nt), mode, part);
            if (mode == detail::logits_mode::all) {
                for (int64_t s = 0; s < ns; ++s)
                    std::copy_n(part.begin() + s * nt * V, nt * V, logits.begin() + ((s0 + s) * len + t0) * V);
            } else if (mode == detail::logits_mode::last) {
                std::copy_n(part.begin(), ns * V, logits.begin() + s0 * V);
            }
        }
    }
}

}  // namespace ssmkit::model
