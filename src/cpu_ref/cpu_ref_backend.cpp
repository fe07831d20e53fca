// cpu-ref: the oracle. Plain loops in the order of the spec's formulas, accumulating in double.
// Written to be read and trusted, not to be fast.
#include <cmath>
#include <vector>

#include "core/backend_factories.h"
#include "core/host_backend.h"

namespace ssmkit {
namespace {

double softplus(double v) { return v > 20.0 ? v : std::log1p(std::exp(v)); }
double silu(double v) { return v / (1.0 + std::exp(-v)); }

class cpu_ref_backend final : public host_backend {
public:
    std::string name() const override { return "cpu-ref"; }
    std::string description() const override { return "double-precision reference, 1 thread"; }

    void conv(const conv_args& a) override {
        const conv_shape& sh = a.shape;
        for (int64_t s = 0; s < sh.n_s; ++s)
            for (int64_t t = 0; t < sh.n_t; ++t)
                for (int64_t i = 0; i < sh.d_inner; ++i) {
                    double acc = 0;
                    for (int64_t k = 0; k < sh.d_conv; ++k)
                        acc += double(*a.sx.ptr<float>(t + k, i, s)) * double(*a.c.ptr<float>(k, i));
                    if (a.fuse_bias_silu) acc = silu(acc + double(*a.bias.ptr<float>(i)));
                    *a.out.ptr<float>(i, t, s) = float(acc);
                }
    }

    void scan(const scan_args& a) override {
        const scan_shape& sh = a.shape;
        const int64_t N = sh.d_state, P = sh.head_dim, H = sh.n_head, T = sh.n_t;
        const int64_t heads_per_group = H / sh.n_group;
        float* out = static_cast<float*>(a.out.data);
        float* states = out + sh.y_elements();
        std::vector<double> h(N), h0(N), decay(N);

        // Writes state `v` into kept block k of sequence q.
        auto keep = [&](int64_t k, int64_t q, int64_t p, int64_t hd, const std::vector<double>& v) {
            float* dst = states + k * sh.state_elements() + N * (p + P * (hd + H * q));
            for (int64_t n = 0; n < N; ++n) dst[n] = float(v[n]);
        };

        for (int64_t q = 0; q < sh.n_seqs; ++q) {
            const int32_t slot = *a.ids.ptr<int32_t>(q);
            for (int64_t hd = 0; hd < H; ++hd) {
                const int64_t g = hd / heads_per_group;
                for (int64_t p = 0; p < P; ++p) {
                    for (int64_t n = 0; n < N; ++n) h0[n] = h[n] = *a.s.ptr<float>(n, p, hd, slot);
                    for (int64_t t = 0; t < T; ++t) {
                        const double delta = softplus(*a.dt.ptr<float>(hd, t, q));
                        const double xdt = double(*a.x.ptr<float>(p, hd, t, q)) * delta;
                        // Mamba-2 has one decay per head; Mamba-1 one per state element.
                        const int64_t n_decays = sh.mamba1 ? N : 1;
                        for (int64_t n = 0; n < n_decays; ++n)
                            decay[n] = std::exp(delta * double(*a.A.ptr<float>(n, hd)));
                        double y = 0;
                        for (int64_t n = 0; n < N; ++n) {
                            h[n] = h[n] * decay[sh.mamba1 ? n : 0] + double(*a.B.ptr<float>(n, g, t, q)) * xdt;
                            y += h[n] * double(*a.C.ptr<float>(n, g, t, q));
                        }
                        out[p + P * (hd + H * (t + T * q))] = float(y);
                        const int64_t k = T - 1 - t;  // this is the state kept in block k
                        if (k < sh.n_keep) keep(k, q, p, hd, h);
                    }
                    for (int64_t k = T; k < sh.n_keep; ++k) keep(k, q, p, hd, h0);
                }
            }
        }
    }
};

}  // namespace

std::unique_ptr<backend> make_cpu_ref_backend(const backend_options&) {
    return std::make_unique<cpu_ref_backend>();
}

}  // namespace ssmkit
