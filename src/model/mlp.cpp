// SwiGLU MLP of Granite's layers (llama.cpp build_ffn with LLM_FFN_SILU, LLM_FFN_PAR):
// down(silu(gate(x)) * up(x)).
#include "context_impl.h"

namespace ssmkit::model::detail {

void mlp_block(context_state& c, int64_t n_tok, int64_t il, const float* in) {
    const layer_weights& L = c.m.layers[size_t(il)];
    gemm(c, in, n_tok, L.ffn_gate, c.ff_gate);
    gemm(c, in, n_tok, L.ffn_up, c.ff_up);
    for (size_t i = 0; i < c.ff_gate.size(); ++i) c.ff_gate[i] = silu(c.ff_gate[i]) * c.ff_up[i];
    gemm(c, c.ff_gate.data(), n_tok, L.ffn_down, c.mix);
}

}  // namespace ssmkit::model::detail
