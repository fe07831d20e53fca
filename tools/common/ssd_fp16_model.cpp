#include "ssd_fp16_model.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "ssmkit/error.h"

namespace ssmkit::harness {
namespace {

double round16(double v, bool on) { return on ? double(float(_Float16(float(v)))) : v; }

float at(const tensor_view& v, int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) {
    return *reinterpret_cast<const float*>(static_cast<const char*>(v.data) + i0 * v.nb[0] + i1 * v.nb[1] +
                                           i2 * v.nb[2] + i3 * v.nb[3]);
}

constexpr int64_t kChunk = 64;

}  // namespace

bool fp16_model_supports(const scan_case& sc) { return !sc.mamba1 && sc.n_keep == 1; }

std::vector<float> fp16_model_scan(const scan_case& sc, const scan_inputs& in, const fp16_rounding& r) {
    if (!fp16_model_supports(sc)) throw error("fp16 model: only Mamba-2 scans with K = 1, got " + sc.name());
    const int64_t N = sc.d_state, P = sc.head_dim, H = sc.n_head, G = sc.n_group, T = sc.n_t, S = sc.n_seqs;
    const int64_t y_elements = P * H * T * S;
    std::vector<float> out(size_t(y_elements + N * P * H * S), 0.f);
    for (int64_t q = 0; q < S; ++q) {
        const int32_t slot = *reinterpret_cast<const int32_t*>(static_cast<const char*>(in.ids.view.data) + q * in.ids.view.nb[0]);
        for (int64_t h = 0; h < H; ++h) {
            const int64_t g = h / (H / G);
            const double A = at(in.A.view, 0, h);
            std::vector<double> st(size_t(N * P));   // [n][p]
            for (int64_t n = 0; n < N; ++n)
                for (int64_t p = 0; p < P; ++p) st[n * P + p] = at(in.s.view, n, p, h, slot);
            for (int64_t t0 = 0; t0 < T; t0 += kChunk) {
                const int64_t L = std::min(kChunk, T - t0);
                // fp32 like the kernels: softplus, the in-chunk cumulative sum of dt * A
                std::vector<float> cum(static_cast<size_t>(L)), delta(static_cast<size_t>(L));
                float c = 0.f;
                for (int64_t i = 0; i < L; ++i) {
                    const float d = at(in.dt.view, h, t0 + i, q);
                    delta[i] = d > 20.f ? d : std::log1p(std::exp(d));
                    c += delta[i] * float(A);
                    cum[i] = c;
                }
                auto Bv = [&](int64_t i, int64_t n) { return round16(at(in.B.view, n, g, t0 + i, q), r.B); };
                auto Cv = [&](int64_t i, int64_t n) { return round16(at(in.C.view, n, g, t0 + i, q), r.C); };
                auto xv = [&](int64_t i, int64_t p) { return double(at(in.x.view, p, h, t0 + i, q)); };
                for (int64_t i = 0; i < L; ++i) {
                    std::vector<double> m(size_t(i + 1));
                    for (int64_t j = 0; j <= i; ++j) {
                        double cb = 0;
                        for (int64_t n = 0; n < N; ++n) cb += Cv(i, n) * Bv(j, n);
                        cb = round16(float(cb), r.cb);
                        m[j] = round16(float(cb * std::exp(double(cum[i] - cum[j])) * delta[j]), r.M);
                    }
                    for (int64_t p = 0; p < P; ++p) {
                        double cs = 0;
                        for (int64_t n = 0; n < N; ++n) cs += Cv(i, n) * round16(float(st[n * P + p]), r.S);
                        double mx = 0;
                        for (int64_t j = 0; j <= i; ++j) mx += m[j] * round16(xv(j, p), r.x);
                        out[((q * T + t0 + i) * H + h) * P + p] = float(float(cs) * std::exp(double(cum[i])) + mx);
                    }
                }
                const double el = std::exp(double(cum[L - 1]));
                for (int64_t n = 0; n < N; ++n)
                    for (int64_t p = 0; p < P; ++p) {
                        double u = 0;
                        for (int64_t j = 0; j < L; ++j)
                            u += Bv(j, n) * round16(float(xv(j, p) * delta[j] * std::exp(double(cum[L - 1] - cum[j]))), r.xw);
                        st[n * P + p] = float(el * st[n * P + p] + u);   // the state stays fp32
                    }
            }
            for (int64_t n = 0; n < N; ++n)
                for (int64_t p = 0; p < P; ++p) out[y_elements + ((q * H + h) * P + p) * N + n] = float(st[n * P + p]);
        }
    }
    return out;
}

scan_case random_mamba2_case(std::mt19937_64& rng, int iter) {
    auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    scan_case sc;
    sc.d_state = iter % 2 ? 128 : pick(1, 70);
    sc.head_dim = pick(1, 3) == 1 ? 64 : pick(1, 33);
    sc.n_group = pick(1, 3);
    sc.n_head = sc.n_group * pick(1, 4);
    sc.n_t = iter % 4 == 0 ? 1 : pick(1, iter % 3 ? 80 : 600);
    sc.n_seqs = pick(1, 4);
    sc.n_slots = sc.n_seqs + pick(0, 3);
    sc.n_keep = int(pick(1, 4));
    sc.fused_xbc = pick(0, 1);
    sc.init = pick(0, 1) ? init_kind::model_like : init_kind::uniform;
    return sc;
}

}  // namespace ssmkit::harness
