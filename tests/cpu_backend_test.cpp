// CPU-backend specific checks: results must not depend on the thread count or on the scan
// algorithm (both paths against cpu-ref), and kept states / strided views behave as in cpu-ref.
// Self-contained (links only ssmkit) so it does not wait on the shared harness.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ssmkit/backend.h"
#include "ssmkit/ops.h"

namespace {

using namespace ssmkit;

bool have_cpu() {
    for (const auto& n : available_backends())
        if (n == "cpu") return true;
    return false;
}

double nmse(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return den > 0 ? num / den : num;
}

void fill(std::mt19937& rng, std::vector<float>& v, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    for (auto& x : v) x = u(rng);
}

struct conv_problem {
    int64_t d_conv, n_t, d_inner, n_s, seq_pad;
    bool bias;
};

std::vector<float> run_conv(backend& be, const conv_problem& p, const std::vector<float>& sx,
                            const std::vector<float>& c, const std::vector<float>& bias) {
    const int64_t row = p.d_conv - 1 + p.n_t;
    tensor_view vsx = tensor_view::contiguous(const_cast<float*>(sx.data()), dtype::f32, {row, p.d_inner, p.n_s});
    vsx.nb[2] = size_t(row * p.d_inner + p.seq_pad) * 4;
    const tensor_view vc = tensor_view::contiguous(const_cast<float*>(c.data()), dtype::f32, {p.d_conv, p.d_inner});
    std::vector<float> out(size_t(p.d_inner * p.n_t * p.n_s), std::numeric_limits<float>::quiet_NaN());
    const tensor_view vo = tensor_view::contiguous(out.data(), dtype::f32, {p.d_inner, p.n_t, p.n_s});
    if (p.bias) {
        const tensor_view vb = tensor_view::contiguous(const_cast<float*>(bias.data()), dtype::f32, {p.d_inner});
        ssm_conv_bias_silu(be, vsx, vc, vb, vo);
    } else {
        ssm_conv(be, vsx, vc, vo);
    }
    return out;
}

TEST(CpuBackend, ConvMatchesReferenceAtEveryThreadCount) {
    if (!have_cpu()) GTEST_SKIP() << "backend 'cpu' not built";
    auto ref = make_backend("cpu-ref");
    std::mt19937 rng(7);
    const conv_problem cases[] = {
        {4, 1, 3328, 1, 0, false}, {4, 1, 1025, 3, 5, true}, {2, 600, 7, 2, 3, false},
        {5, 65, 1025, 2, 11, true}, {3, 64, 1, 1, 0, false}, {4, 130, 48, 3, 0, true},
    };
    for (const auto& p : cases) {
        const int64_t row = p.d_conv - 1 + p.n_t;
        std::vector<float> sx(size_t((row * p.d_inner + p.seq_pad) * p.n_s)), c(size_t(p.d_conv * p.d_inner)),
            bias(size_t(p.d_inner));
        fill(rng, sx, -1, 1);
        fill(rng, c, -1, 1);
        fill(rng, bias, -1, 1);
        const auto want = run_conv(*ref, p, sx, c, bias);
        std::vector<float> first;
        for (int threads : {1, 2, 3, 5}) {
            backend_options o;
            o.threads = threads;
            auto be = make_backend("cpu", o);
            const auto got = run_conv(*be, p, sx, c, bias);
            EXPECT_LE(nmse(got, want), 1e-7) << "d_conv " << p.d_conv << " n_t " << p.n_t << " d_inner "
                                             << p.d_inner << " threads " << threads;
            // Each output is computed by one thread in a fixed order: bit-identical across counts.
            if (first.empty()) first = got;
            else EXPECT_EQ(got, first) << "threads " << threads;
        }
    }
}

struct scan_problem {
    int64_t N, P, H, G, T, S, slots;
    int K;
    bool mamba1;
};

// x, B and C as views into one fused [P*H + 2*G*N, T, S] buffer, like a model's xBC.
std::vector<float> run_scan(backend& be, const scan_problem& p, const std::vector<float>& s,
                            const std::vector<float>& xbc, const std::vector<float>& dt,
                            const std::vector<float>& A, const std::vector<int32_t>& ids) {
    const int64_t row = p.P * p.H + 2 * p.G * p.N;
    auto* base = const_cast<float*>(xbc.data());
    auto view = [&](int64_t off, int64_t ne0, int64_t ne1) {
        tensor_view v = tensor_view::contiguous(base + off, dtype::f32, {ne0, ne1, p.T, p.S});
        v.nb[2] = size_t(row) * 4;
        v.nb[3] = size_t(row * p.T) * 4;
        return v;
    };
    const tensor_view vx = view(0, p.P, p.H);
    const tensor_view vB = view(p.P * p.H, p.N, p.G);
    const tensor_view vC = view(p.P * p.H + p.G * p.N, p.N, p.G);
    const tensor_view vs = tensor_view::contiguous(const_cast<float*>(s.data()), dtype::f32, {p.N, p.P, p.H, p.slots});
    const tensor_view vdt = tensor_view::contiguous(const_cast<float*>(dt.data()), dtype::f32, {p.H, p.T, p.S});
    const tensor_view vA =
        tensor_view::contiguous(const_cast<float*>(A.data()), dtype::f32, {p.mamba1 ? p.N : 1, p.H});
    const tensor_view vids = tensor_view::contiguous(const_cast<int32_t*>(ids.data()), dtype::i32, {p.S});
    const int64_t n_out = p.P * p.H * p.T * p.S + p.K * p.N * p.P * p.H * p.S;
    std::vector<float> out(size_t(n_out), std::numeric_limits<float>::quiet_NaN());
    const tensor_view vo = tensor_view::contiguous(out.data(), dtype::f32, {n_out});
    ssm_scan(be, vs, vx, vdt, vA, vB, vC, vids, vo, p.K);
    return out;
}

TEST(CpuBackend, ScanPathsAndThreadCountsMatchReference) {
    if (!have_cpu()) GTEST_SKIP() << "backend 'cpu' not built";
    auto ref = make_backend("cpu-ref");
    std::mt19937 rng(11);
    const scan_problem cases[] = {
        {128, 64, 8, 1, 1, 2, 5, 1, false},  {128, 64, 6, 2, 200, 2, 3, 4, false},
        {33, 19, 6, 3, 70, 3, 4, 3, false},  {16, 1, 37, 1, 9, 2, 4, 1, true},
        {5, 33, 4, 2, 3, 2, 3, 4, false},    {128, 80, 3, 1, 129, 1, 1, 2, false},
    };
    for (const auto& p : cases) {
        std::vector<float> s(size_t(p.N * p.P * p.H * p.slots)), xbc(size_t((p.P * p.H + 2 * p.G * p.N) * p.T * p.S)),
            dt(size_t(p.H * p.T * p.S)), A(size_t((p.mamba1 ? p.N : 1) * p.H));
        fill(rng, s, -1, 1);
        fill(rng, xbc, -1, 1);
        // Model-like: dt before softplus in [-6, 3] with a few above 20, A = -exp(U[0, 2.77]).
        fill(rng, dt, -6, 3);
        for (size_t i = 0; i < dt.size(); i += 97) dt[i] = 25.0f;
        std::uniform_real_distribution<float> ua(0.0f, 2.77f);
        for (auto& a : A) a = -std::exp(ua(rng));
        std::vector<int32_t> ids(size_t(p.S));
        for (int64_t q = 0; q < p.S; ++q) ids[size_t(q)] = int32_t((p.slots - 1 - q) % p.slots);  // permuted
        const auto want = run_scan(*ref, p, s, xbc, dt, A, ids);
        std::vector<float> first;
        for (scan_path path : {scan_path::sequential, scan_path::chunked}) {
            for (int threads : {1, 2, 3}) {
                backend_options o;
                o.threads = threads;
                o.scan = path;
                auto be = make_backend("cpu", o);
                const auto got = run_scan(*be, p, s, xbc, dt, A, ids);
                const double e = nmse(got, want);
                EXPECT_LE(e, be->scan_nmse_bound(scan_shape{})) << "N " << p.N << " P " << p.P << " T " << p.T
                                                               << " path " << int(path) << " threads " << threads;
                if (path == scan_path::chunked) {
                    if (first.empty()) first = got;
                    else EXPECT_EQ(got, first) << "chunked path differs with " << threads << " threads";
                }
            }
        }
    }
}

TEST(CpuBackend, DescriptionNamesTargetAndThreads) {
    if (!have_cpu()) GTEST_SKIP() << "backend 'cpu' not built";
    backend_options o;
    o.threads = 3;
    auto be = make_backend("cpu", o);
    const std::string d = be->description();
    EXPECT_NE(d.find("3 threads"), std::string::npos) << d;
    EXPECT_NE(d.find("run-time dispatch"), std::string::npos) << d;
}

}  // namespace
