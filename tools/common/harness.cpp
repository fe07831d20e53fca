#include "harness.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>

#include "ssmkit/error.h"
#include "ssmkit/gguf.h"
#include "ssmkit/ops.h"

namespace ssmkit::harness {
namespace {

void fill_uniform(std::mt19937_64& rng, float* p, size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    for (size_t i = 0; i < n; ++i) p[i] = u(rng);
}

host_input contiguous_input(dtype type, std::vector<int64_t> ne) {
    host_input in;
    in.buf = host_tensor(type, std::move(ne));
    in.view = in.buf.view();
    return in;
}

std::vector<float> nan_vector(size_t n) {
    return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

double softplus(double v) { return v > 20.0 ? v : std::log1p(std::exp(v)); }

}  // namespace

// ---- cases -------------------------------------------------------------------------------

std::string conv_case::name() const {
    std::ostringstream os;
    os << (bias_silu ? "SSM_CONV_BIAS_SILU" : "SSM_CONV") << "(type=f32,ne_a=[" << d_conv - 1 + n_t << ','
       << d_inner << ',' << n_s << ",1],ne_b=[" << d_conv << ',' << d_inner << ",1,1]";
    if (seq_pad) os << ",seq_pad=" << seq_pad;
    os << ')';
    return os.str();
}

double conv_case::bytes() const {
    const double in = double(d_conv - 1 + n_t) * d_inner * n_s + double(d_conv) * d_inner;
    const double out = double(d_inner) * n_t * n_s;
    return 4.0 * (in + out + (bias_silu ? d_inner : 0));
}

std::string scan_case::name() const {
    std::ostringstream os;
    os << "SSM_SCAN(type=f32,d_state=" << d_state << ",head_dim=" << head_dim << ",n_head=" << n_head
       << ",n_group=" << n_group << ",n_seq_tokens=" << n_t << ",n_seqs=" << n_seqs << ",K=" << n_keep;
    if (slots() != n_seqs) os << ",n_slots=" << slots();
    if (mamba1) os << ",mamba1";
    if (fused_xbc) os << ",xbc=views";
    if (init == init_kind::model_like) os << ",init=model";
    os << ')';
    return os.str();
}

scan_shape scan_case::shape() const {
    scan_shape sh;
    sh.d_state = d_state;
    sh.head_dim = head_dim;
    sh.n_head = n_head;
    sh.n_group = n_group;
    sh.n_t = n_t;
    sh.n_seqs = n_seqs;
    sh.n_slots = slots();
    sh.n_keep = n_keep;
    sh.mamba1 = mamba1;
    return sh;
}

double scan_case::bytes() const {
    const scan_shape sh = shape();
    const double state_in = double(sh.state_elements());  // only the slots that are used
    const double x = double(head_dim) * n_head * n_t * n_seqs;
    const double dt = double(n_head) * n_t * n_seqs;
    const double a = double(mamba1 ? d_state : 1) * n_head;
    const double bc = 2.0 * d_state * n_group * n_t * n_seqs;
    return 4.0 * (state_in + x + dt + a + bc + n_seqs + double(sh.out_elements()));
}

double scan_case::flops() const { return 5.0 * d_state * head_dim * n_head * n_t * n_seqs; }

// ---- inputs ------------------------------------------------------------------------------

conv_inputs make_conv_inputs(const conv_case& cc, uint64_t seed) {
    std::mt19937_64 rng(seed);
    conv_inputs in;
    const int64_t row = cc.d_conv - 1 + cc.n_t;
    const int64_t seq_floats = row * cc.d_inner + cc.seq_pad;
    in.sx.buf = host_tensor(dtype::f32, {seq_floats * cc.n_s});
    fill_uniform(rng, in.sx.buf.data<float>(), size_t(in.sx.buf.nelements()), -1.f, 1.f);
    in.sx.view = in.sx.buf.view({row, cc.d_inner, cc.n_s}, {4, size_t(row) * 4, size_t(seq_floats) * 4});
    in.c = contiguous_input(dtype::f32, {cc.d_conv, cc.d_inner});
    fill_uniform(rng, in.c.buf.data<float>(), size_t(in.c.buf.nelements()), -1.f, 1.f);
    in.bias = contiguous_input(dtype::f32, {cc.d_inner});
    fill_uniform(rng, in.bias.buf.data<float>(), size_t(cc.d_inner), -1.f, 1.f);
    return in;
}

scan_inputs make_scan_inputs(const scan_case& sc, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const bool model = sc.init == init_kind::model_like;
    const int64_t N = sc.d_state, P = sc.head_dim, H = sc.n_head, G = sc.n_group, T = sc.n_t, S = sc.n_seqs;
    scan_inputs in;

    in.s = contiguous_input(dtype::f32, {N, P, H, sc.slots()});
    fill_uniform(rng, in.s.buf.data<float>(), size_t(in.s.buf.nelements()), -1.f, 1.f);

    if (sc.fused_xbc) {
        // One [P*H + 2*G*N, T, S] buffer, as a model's conv output is split into x, B and C.
        const int64_t row = P * H + 2 * G * N;
        host_tensor buf(dtype::f32, {row, T, S});
        fill_uniform(rng, buf.data<float>(), size_t(buf.nelements()), -1.f, 1.f);
        const size_t nb2 = size_t(row) * 4, nb3 = nb2 * size_t(T);
        in.x.buf = buf;
        in.x.view = in.x.buf.view({P, H, T, S}, {4, size_t(P) * 4, nb2, nb3}, 0);
        in.B.buf = buf;
        in.B.view = in.B.buf.view({N, G, T, S}, {4, size_t(N) * 4, nb2, nb3}, size_t(P * H) * 4);
        in.C.buf = buf;
        in.C.view = in.C.buf.view({N, G, T, S}, {4, size_t(N) * 4, nb2, nb3}, size_t(P * H + G * N) * 4);
    } else {
        for (host_input* hi : {&in.x, &in.B, &in.C}) {
            *hi = contiguous_input(dtype::f32, hi == &in.x ? std::vector<int64_t>{P, H, T, S}
                                                           : std::vector<int64_t>{N, G, T, S});
            fill_uniform(rng, hi->buf.data<float>(), size_t(hi->buf.nelements()), -1.f, 1.f);
        }
    }

    in.dt = contiguous_input(dtype::f32, {H, T, S});
    float* dt = in.dt.buf.data<float>();
    if (model) {
        std::uniform_real_distribution<float> big(20.f, 25.f);
        std::uniform_int_distribution<int> pick(0, 49);
        fill_uniform(rng, dt, size_t(H * T * S), -6.f, 3.f);
        for (int64_t i = 0; i < H * T * S; ++i)
            if (pick(rng) == 0) dt[i] = big(rng);  // past the softplus threshold
    } else {
        fill_uniform(rng, dt, size_t(H * T * S), -1.f, 1.f);
    }

    in.A = contiguous_input(dtype::f32, {sc.mamba1 ? N : 1, H});
    float* A = in.A.buf.data<float>();
    if (sc.mamba1 && model) {
        for (int64_t h = 0; h < H; ++h)
            for (int64_t n = 0; n < N; ++n) A[n + N * h] = -float(n + 1);
    } else if (model) {
        std::uniform_real_distribution<float> u(0.f, 2.77f);
        for (int64_t h = 0; h < H; ++h) A[h] = -std::exp(u(rng));
    } else {
        fill_uniform(rng, A, size_t(in.A.buf.nelements()), -1.f, -0.5f);
    }

    // Sequences start from a random permutation of the slots, so spare slots go unused.
    std::vector<int32_t> slots(size_t(sc.slots()));
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), rng);
    in.ids = contiguous_input(dtype::i32, {S});
    for (int64_t q = 0; q < S; ++q) in.ids.buf.data<int32_t>()[q] = slots[size_t(q)];
    return in;
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

// ---- running on a backend ----------------------------------------------------------------

device_input::device_input(backend& be, const tensor_view& host_view) : view_(host_view) {
    const size_t bytes = host_view.span_bytes();
    buf_ = device_buffer(be, bytes);
    be.upload(buf_.get(), host_view.data, bytes);
    view_.data = buf_.get();
    view_.device = be.device();
}

conv_on_device::conv_on_device(backend& b, const conv_case& c_, const conv_inputs& in)
    : be(b), cc(c_), sx(b, in.sx.view), c(b, in.c.view),
      out(b, size_t(c_.d_inner * c_.n_t * c_.n_s) * 4) {
    if (cc.bias_silu) bias = std::make_unique<device_input>(b, in.bias.view);
}

void conv_on_device::run() {
    const tensor_view o = tensor_view::contiguous(out.get(), dtype::f32, {cc.d_inner, cc.n_t, cc.n_s}, be.device());
    if (cc.bias_silu)
        ssm_conv_bias_silu(be, sx.view(), c.view(), bias->view(), o);
    else
        ssm_conv(be, sx.view(), c.view(), o);
}

scan_on_device::scan_on_device(backend& b, const scan_case& sc_, const scan_inputs& in)
    : be(b), sc(sc_), s(b, in.s.view), x(b, in.x.view), dt(b, in.dt.view), A(b, in.A.view), B(b, in.B.view),
      C(b, in.C.view), ids(b, in.ids.view), out(b, size_t(sc_.shape().out_elements()) * 4) {}

void scan_on_device::run() {
    const tensor_view o = tensor_view::contiguous(out.get(), dtype::f32, {sc.shape().out_elements()}, be.device());
    ssm_scan(be, s.view(), x.view(), dt.view(), A.view(), B.view(), C.view(), ids.view(), o, sc.n_keep);
}

template <typename OnDevice, typename Case, typename Inputs>
static std::vector<float> run_poisoned(backend& be, const Case& cs, const Inputs& in) {
    OnDevice d(be, cs, in);
    const size_t n = d.out.size() / 4;
    const std::vector<float> poison = nan_vector(n);
    be.upload(d.out.get(), poison.data(), n * 4);
    d.run();
    be.synchronize();
    std::vector<float> out(n);
    be.download(out.data(), d.out.get(), n * 4);
    return out;
}

std::vector<float> run_conv(backend& be, const conv_case& cc, const conv_inputs& in) {
    return run_poisoned<conv_on_device>(be, cc, in);
}

std::vector<float> run_scan(backend& be, const scan_case& sc, const scan_inputs& in) {
    return run_poisoned<scan_on_device>(be, sc, in);
}

// ---- the independent oracle --------------------------------------------------------------

std::vector<float> oracle_conv(const conv_case& cc, const conv_inputs& in) {
    const int64_t row = cc.d_conv - 1 + cc.n_t;
    const int64_t seq_floats = row * cc.d_inner + cc.seq_pad;
    const float* sx = in.sx.buf.data<float>();
    const float* c = in.c.buf.data<float>();
    const float* bias = in.bias.buf.data<float>();
    std::vector<float> out(size_t(cc.d_inner * cc.n_t * cc.n_s));
    // Channel-outer, sliding window along the row: another order than cpu-ref's.
    for (int64_t s = 0; s < cc.n_s; ++s)
        for (int64_t i = 0; i < cc.d_inner; ++i) {
            const float* r = sx + s * seq_floats + i * row;
            for (int64_t t = 0; t < cc.n_t; ++t) {
                long double acc = 0;
                for (int64_t k = cc.d_conv - 1; k >= 0; --k) acc += (long double)r[t + k] * c[i * cc.d_conv + k];
                if (cc.bias_silu) {
                    acc += bias[i];
                    acc = acc / (1.0L + std::exp(-(double)acc));
                }
                out[size_t(i + cc.d_inner * (t + cc.n_t * s))] = float(acc);
            }
        }
    return out;
}

std::vector<float> oracle_scan(const scan_case& sc, const scan_inputs& in) {
    const int64_t N = sc.d_state, P = sc.head_dim, H = sc.n_head, T = sc.n_t, S = sc.n_seqs;
    const int64_t HG = H / sc.n_group;
    const scan_shape sh = sc.shape();
    std::vector<float> out(size_t(sh.out_elements()));
    const int64_t state_sz = N * P * H;
    std::vector<double> h(static_cast<size_t>(state_sz)), decay(static_cast<size_t>(N));
    auto at = [](const host_input& hi, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
        return double(*hi.view.ptr<float>(i0, i1, i2, i3));
    };
    auto store_state = [&](int64_t k, int64_t q) {
        float* dst = out.data() + sh.y_elements() + k * sh.state_elements() + q * state_sz;
        for (int64_t i = 0; i < state_sz; ++i) dst[i] = float(h[size_t(i)]);
    };
    // Token-outer over the whole state of a sequence.
    for (int64_t q = 0; q < S; ++q) {
        const int32_t slot = in.ids.buf.data<int32_t>()[q];
        const float* s0 = in.s.buf.data<float>() + slot * state_sz;
        for (int64_t i = 0; i < state_sz; ++i) h[size_t(i)] = s0[i];
        for (int64_t k = T; k < sc.n_keep; ++k) store_state(k, q);
        for (int64_t t = 0; t < T; ++t) {
            for (int64_t hd = 0; hd < H; ++hd) {
                const double delta = softplus(in.dt.buf.data<float>()[hd + H * (t + T * q)]);
                for (int64_t n = 0; n < N; ++n)
                    decay[size_t(n)] = std::exp(delta * in.A.buf.data<float>()[sc.mamba1 ? n + N * hd : hd]);
                for (int64_t p = 0; p < P; ++p) {
                    const double xdt = at(in.x, p, hd, t, q) * delta;
                    double y = 0;
                    for (int64_t n = 0; n < N; ++n) {
                        double& st = h[size_t(n + N * (p + P * hd))];
                        st = st * decay[size_t(n)] + at(in.B, n, hd / HG, t, q) * xdt;
                        y += st * at(in.C, n, hd / HG, t, q);
                    }
                    out[size_t(p + P * (hd + H * (t + T * q)))] = float(y);
                }
            }
            if (T - 1 - t < sc.n_keep) store_state(T - 1 - t, q);
        }
    }
    return out;
}

// ---- golden files ------------------------------------------------------------------------

namespace {

// The integer after "K=" in golden.case, 1 when absent.
int golden_kept_states(const std::string& golden_case) {
    const auto pos = golden_case.find("K=");
    return pos == std::string::npos ? 1 : std::stoi(golden_case.substr(pos + 2));
}

}  // namespace

golden_result run_golden(backend& be, const std::string& path) {
    const gguf::reader r(path);
    golden_result res;
    res.op = r.get_string("golden.op");
    if (res.op != "ssm_conv" && res.op != "ssm_scan")
        throw error(path + ": golden.op is '" + res.op + "', expected ssm_conv or ssm_scan");

    const tensor_view want = r.view("out");
    const size_t n = size_t(want.nelements());
    device_buffer out(be, n * 4);
    std::vector<float> got = nan_vector(n);
    be.upload(out.get(), got.data(), n * 4);
    size_t compared = n;

    if (res.op == "ssm_conv") {
        device_input sx(be, r.view("sx")), c(be, r.view("c"));
        ssm_conv(be, sx.view(), c.view(),
                 tensor_view::contiguous(out.get(), dtype::f32, {want.ne[0], want.ne[1], want.ne[2]}, be.device()));
    } else {
        const int K = golden_kept_states(r.get_string("golden.case"));
        device_input s(be, r.view("s")), x(be, r.view("x")), dt(be, r.view("dt")), A(be, r.view("A")),
            B(be, r.view("B")), C(be, r.view("C")), ids(be, r.view("ids"));
        ssm_scan(be, s.view(), x.view(), dt.view(), A.view(), B.view(), C.view(), ids.view(),
                 tensor_view::contiguous(out.get(), dtype::f32, {want.nelements()}, be.device()), K);
        // Shapes as the op saw them (validated on host views, nothing run).
        const scan_shape sh = validate_scan(r.view("s"), r.view("x"), r.view("dt"), r.view("A"), r.view("B"),
                                            r.view("C"), r.view("ids"),
                                            tensor_view::contiguous(got.data(), dtype::f32, {want.nelements()}), K);
        // The file leaves blocks k >= n_t as ggml leaves them: compare y and blocks k < n_t.
        compared = size_t(sh.y_elements() + std::min<int64_t>(K, sh.n_t) * sh.state_elements());
        res.bound = be.scan_nmse_bound(sh);
    }
    be.synchronize();
    be.download(got.data(), out.get(), n * 4);
    res.nmse = nmse(got.data(), static_cast<const float*>(want.data), compared);
    return res;
}

// ---- metric ------------------------------------------------------------------------------

double nmse(const float* a, const float* b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
        const double d = double(a[i]) - double(b[i]);
        num += d * d;
        den += double(b[i]) * double(b[i]);
    }
    if (den == 0) return num == 0 ? 0 : std::numeric_limits<double>::infinity();
    return num / den;
}

uint64_t fresh_seed() {
    const uint64_t t = uint64_t(std::chrono::high_resolution_clock::now().time_since_epoch().count());
    std::seed_seq seq{uint32_t(t), uint32_t(t >> 32), uint32_t(getpid())};
    uint32_t v[2];
    seq.generate(v, v + 2);
    return (uint64_t(v[0]) << 32) | v[1];
}

uint64_t test_seed() {
    const char* v = std::getenv("SSMKIT_TEST_SEED");
    if (!v || !*v) return fresh_seed();
    char* end = nullptr;
    errno = 0;
    const unsigned long long s = std::strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || *v == '-')
        throw error(std::string("SSMKIT_TEST_SEED: expected an unsigned decimal number, got \"") + v + "\"");
    return uint64_t(s);
}

}  // namespace ssmkit::harness
