#include "ssd_fp16_model.h"

#include <algorithm>
#include <cmath>

#include "ssmkit/error.h"

namespace ssmkit::harness {
namespace {

double round16(double v, bool on) { return on ? double(float(_Float16(float(v)))) : v; }
double round32(double v, bool on) { return on ? double(float(v)) : v; }

float at(const tensor_view& v, int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) {
    return *reinterpret_cast<const float*>(static_cast<const char*>(v.data) + i0 * v.nb[0] + i1 * v.nb[1] +
                                           i2 * v.nb[2] + i3 * v.nb[3]);
}

constexpr int64_t kChunk = 64;

}  // namespace

bool fp16_model_supports(const scan_case& sc) { return !sc.mamba1; }

std::vector<float> fp16_model_scan(const scan_case& sc, const scan_inputs& in, const fp16_rounding& r) {
    if (!fp16_model_supports(sc)) throw error("fp16 model: only Mamba-2 scans, got " + sc.name());
    const int64_t N = sc.d_state, P = sc.head_dim, H = sc.n_head, G = sc.n_group, T = sc.n_t, S = sc.n_seqs;
    const int64_t K = sc.n_keep;
    const int64_t y_elements = P * H * T * S, state_elements = N * P * H * S;
    std::vector<float> out(size_t(y_elements + K * state_elements), 0.f);
    for (int64_t q = 0; q < S; ++q) {
        const int32_t slot = *reinterpret_cast<const int32_t*>(static_cast<const char*>(in.ids.view.data) + q * in.ids.view.nb[0]);
        for (int64_t h = 0; h < H; ++h) {
            const int64_t g = h / (H / G);
            const double A = at(in.A.view, 0, h);
            std::vector<double> st(size_t(N * P));   // [n][p]
            for (int64_t n = 0; n < N; ++n)
                for (int64_t p = 0; p < P; ++p) st[n * P + p] = at(in.s.view, n, p, h, slot);
            // kept block k holds the state after token T-1-k, or the initial state when k >= T
            auto store_state = [&](int64_t k, const std::vector<double>& v) {
                for (int64_t n = 0; n < N; ++n)
                    for (int64_t p = 0; p < P; ++p)
                        out[y_elements + k * state_elements + ((q * H + h) * P + p) * N + n] = float(v[n * P + p]);
            };
            for (int64_t k = T; k < K; ++k) store_state(k, st);
            for (int64_t t0 = 0; t0 < T; t0 += kChunk) {
                const int64_t L = std::min(kChunk, T - t0);
                // fp32 like the kernels (unless r.f32 is off): softplus, the in-chunk cumulative sum of dt * A
                std::vector<double> cum(static_cast<size_t>(L)), delta(static_cast<size_t>(L));
                double c = 0;
                for (int64_t i = 0; i < L; ++i) {
                    const double d = at(in.dt.view, h, t0 + i, q);
                    delta[i] = round32(d > 20 ? d : (r.f32 ? double(std::log1p(std::exp(float(d)))) : std::log1p(std::exp(d))), r.f32);
                    c = round32(c + round32(delta[i] * A, r.f32), r.f32);
                    cum[i] = c;
                }
                // the chunk's operands, each rounded once: B (as in C B^T and in the state update), C (as in C B^T
                // and in C S_in) [token][n], x and x w [token][p], S_in [n][p]
                std::vector<double> Br(size_t(L * N)), Bs(size_t(L * N)), Cr(size_t(L * N)), Cs(size_t(L * N)), xr(size_t(L * P)),
                    xw(size_t(L * P)), Sr(size_t(N * P));
                for (int64_t i = 0; i < L; ++i) {
                    for (int64_t n = 0; n < N; ++n) {
                        Br[i * N + n] = round16(at(in.B.view, n, g, t0 + i, q), r.B);
                        Bs[i * N + n] = round16(at(in.B.view, n, g, t0 + i, q), r.B_state);
                        Cr[i * N + n] = round16(at(in.C.view, n, g, t0 + i, q), r.C);
                        Cs[i * N + n] = round16(at(in.C.view, n, g, t0 + i, q), r.C_state);
                    }
                    const double w = delta[i] * std::exp(round32(cum[L - 1] - cum[i], r.f32));
                    for (int64_t p = 0; p < P; ++p) {
                        const double x = at(in.x.view, p, h, t0 + i, q);
                        xr[i * P + p] = round16(x, r.x);
                        xw[i * P + p] = round16(round32(x * w, r.f32), r.xw);
                    }
                }
                for (int64_t k = 0; k < N * P; ++k) Sr[k] = round16(round32(st[k], r.f32), r.S);
                std::vector<double> m(static_cast<size_t>(L));
                for (int64_t i = 0; i < L; ++i) {
                    for (int64_t j = 0; j <= i; ++j) {   // row i of the masked, decayed C B^T
                        double cb = 0;
                        for (int64_t n = 0; n < N; ++n) cb += Cr[i * N + n] * Br[j * N + n];
                        cb = round16(round32(cb, r.f32), i / 16 == j / 16 ? r.cb_diag : r.cb);
                        m[j] = round16(round32(cb * std::exp(round32(cum[i] - cum[j], r.f32)) * delta[j], r.f32), r.M);
                    }
                    for (int64_t p = 0; p < P; ++p) {
                        double cs = 0;
                        for (int64_t n = 0; n < N; ++n) cs += Cs[i * N + n] * Sr[n * P + p];
                        double mx = 0;
                        for (int64_t j = 0; j <= i; ++j) mx += m[j] * xr[j * P + p];
                        out[((q * T + t0 + i) * H + h) * P + p] = float(round32(cs, r.f32) * std::exp(cum[i]) + mx);
                    }
                }
                // kept states inside the chunk: exp(cum_e) S_in (fp32) + B^T (x delta exp(cum_e - cum))
                // with B and the weighted x as fp16 operands, like the final state
                for (int64_t k = 1; k < K && k < T; ++k) {
                    const int64_t e = T - 1 - k - t0;
                    if (e < 0 || e >= L) continue;
                    std::vector<double> kept(size_t(N * P));
                    const double ee = std::exp(cum[e]);
                    for (int64_t n = 0; n < N; ++n)
                        for (int64_t p = 0; p < P; ++p) {
                            double u = 0;
                            for (int64_t j = 0; j <= e; ++j) {
                                const double w = delta[j] * std::exp(round32(cum[e] - cum[j], r.f32));
                                u += Bs[j * N + n] * round16(round32(at(in.x.view, p, h, t0 + j, q) * w, r.f32), r.xw);
                            }
                            kept[n * P + p] = round32(ee * st[n * P + p] + u, r.f32);
                        }
                    store_state(k, kept);
                }
                const double el = std::exp(cum[L - 1]);
                for (int64_t n = 0; n < N; ++n)
                    for (int64_t p = 0; p < P; ++p) {
                        double u = 0;
                        for (int64_t j = 0; j < L; ++j) u += Bs[j * N + n] * xw[j * P + p];
                        st[n * P + p] = round32(el * st[n * P + p] + u, r.f32);   // the state stays fp32
                    }
            }
            store_state(0, st);
        }
    }
    return out;
}
}  // namespace ssmkit::harness
