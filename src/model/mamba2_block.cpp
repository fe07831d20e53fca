// The Mamba-2 mixer (docs/ssm-ops.md, "Hybrid model context"), with SSM_CONV and SSM_SCAN
// through ssmkit's public entry points on the context's backend.
#include <cstring>

#include "context_impl.h"
#include "ssmkit/ops.h"

namespace ssmkit::model::detail {
namespace {

tensor_view strided(float* data, std::initializer_list<int64_t> ne, std::initializer_list<size_t> nb) {
    tensor_view v = tensor_view::contiguous(data, dtype::f32, ne);
    int i = 0;
    for (size_t s : nb) v.nb[i++] = s;
    return v;
}

}  // namespace

void mamba2_block(context_state& c, const ubatch& ub, int64_t il, const float* in) {
    const hparams& hp = c.m.hp;
    const layer_weights& L = c.m.layers[size_t(il)];
    layer_memory& mem = c.mem[size_t(il)];
    const int64_t n_s = ub.n_s, n_t = ub.n_t, n_tok = ub.n_tokens();
    const int64_t H = hp.n_ssm_head, P = hp.ssm_head_dim(), N = hp.d_state, G = hp.n_group;
    const int64_t d_inner = hp.d_inner, ch = hp.conv_channels(), dip = hp.d_in_proj();
    const int64_t keep = hp.d_conv - 1, row = keep + n_t;

    // in_proj: per token [z | xBC | dt]
    gemm(c, in, n_tok, L.ssm_in, c.zxbcdt);
    const float* zx = c.zxbcdt.data();

    {
        // Each conv row is the slot's last d_conv-1 inputs followed by the new ones; the row's
        // tail becomes the next conv state.
        scoped_timer t(c.bucket(&profile::ssm_conv));
        c.sx.resize(size_t(n_s * ch * row));
        for (int64_t s = 0; s < n_s; ++s) {
            float* state = mem.conv.data<float>() + int64_t(ub.slots[size_t(s)]) * ch * keep;
            for (int64_t i = 0; i < ch; ++i) {
                float* r = c.sx.data() + (s * ch + i) * row;
                std::memcpy(r, state + i * keep, size_t(keep) * 4);
                const float* src = zx + (s * n_t) * dip + d_inner + i;
                for (int64_t t = 0; t < n_t; ++t) r[keep + t] = src[t * dip];
                std::memcpy(state + i * keep, r + n_t, size_t(keep) * 4);
            }
        }
        c.xbc.resize(size_t(n_tok * ch));
        const host_tensor& bias = L.ssm_conv1d_b.nbytes() ? L.ssm_conv1d_b : mem.zero_bias;
        ssm_conv_bias_silu(*c.be, tensor_view::contiguous(c.sx.data(), dtype::f32, {row, ch, n_s}),
                           L.ssm_conv1d.view(), bias.view(),
                           tensor_view::contiguous(c.xbc.data(), dtype::f32, {ch, n_t, n_s}));
        c.be->synchronize();
    }

    const int64_t y_el = P * H * n_tok, st_el = N * P * H;
    {
        scoped_timer t(c.bucket(&profile::ssm_scan));
        c.dt.resize(size_t(n_tok * H));
        const float* dt_b = L.ssm_dt_b.data<float>();
        for (int64_t k = 0; k < n_tok; ++k)
            for (int64_t h = 0; h < H; ++h) c.dt[size_t(k * H + h)] = zx[k * dip + 2 * d_inner + 2 * G * N + h] + dt_b[h];

        // x, B and C stay where the conv wrote them: strided views into one buffer.
        float* xbc = c.xbc.data();
        const size_t tok = size_t(ch) * 4, seq = size_t(n_t) * tok;
        const tensor_view x = strided(xbc, {P, H, n_t, n_s}, {4, size_t(P) * 4, tok, seq});
        const tensor_view B = strided(xbc + d_inner, {N, G, n_t, n_s}, {4, size_t(N) * 4, tok, seq});
        const tensor_view C = strided(xbc + d_inner + G * N, {N, G, n_t, n_s}, {4, size_t(N) * 4, tok, seq});
        c.scan_out.resize(size_t(y_el + n_s * st_el));
        ssm_scan(*c.be, mem.ssm.view(), x, tensor_view::contiguous(c.dt.data(), dtype::f32, {H, n_t, n_s}),
                 L.ssm_a.view(), B, C,
                 tensor_view::contiguous(const_cast<int32_t*>(ub.ids.data()), dtype::i32, {n_s}),
                 tensor_view::contiguous(c.scan_out.data(), dtype::f32, {int64_t(c.scan_out.size())}));
        c.be->synchronize();
        // The op leaves the cache alone and returns sequence q's final state at position q.
        for (int64_t s = 0; s < n_s; ++s)
            std::memcpy(mem.ssm.data<float>() + int64_t(ub.slots[size_t(s)]) * st_el,
                        c.scan_out.data() + y_el + s * st_el, size_t(st_el) * 4);
    }

    // y += D x; y *= silu(z); grouped RMSNorm
    float* y = c.scan_out.data();
    const float* D = L.ssm_d.data<float>();
    for (int64_t k = 0; k < n_tok; ++k) {
        float* yk = y + k * d_inner;
        const float* xk = c.xbc.data() + k * ch;
        const float* zk = zx + k * dip;
        for (int64_t h = 0; h < H; ++h)
            for (int64_t p = 0; p < P; ++p) {
                const int64_t i = h * P + p;
                yk[i] = (yk[i] + D[h] * xk[i]) * silu(zk[i]);
            }
    }
    const int64_t gs = d_inner / G;
    for (int64_t g = 0; g < G; ++g)
        rms_norm(y + g * gs, n_tok, gs, d_inner, L.ssm_norm.data<float>() + g * gs, hp.rms_eps);

    gemm(c, y, n_tok, L.ssm_out, c.mix);
}

}  // namespace ssmkit::model::detail
