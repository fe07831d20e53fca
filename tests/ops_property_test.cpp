// Random property tests: each backend against cpu-ref on random shapes and data drawn from a
// fresh seed (printed on failure; SSMKIT_TEST_SEED=N replays it), outputs poisoned with NaN
// before every run.
#include <gtest/gtest.h>

#include <random>

#include "common/harness.h"
#include "test_backends.h"

using namespace ssmkit;
using namespace ssmkit::harness;

namespace {

class OpsProperty : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        seed_ = test_seed();
        be_ = make_backend(GetParam());
        ref_ = make_backend("cpu-ref");
    }
    uint64_t seed_ = 0;
    std::unique_ptr<backend> be_, ref_;
};

TEST_P(OpsProperty, ConvMatchesReference) {
    std::mt19937_64 rng(seed_);
    auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    for (int iter = 0; iter < 40; ++iter) {
        conv_case cc;
        cc.d_conv = pick(2, 5);
        cc.n_t = iter % 4 == 0 ? 1 : pick(1, 600);
        cc.d_inner = iter % 3 == 0 ? pick(1, 40) : pick(1, 2100);
        cc.n_s = pick(1, 5);
        cc.seq_pad = pick(0, 1) ? pick(1, 9) : 0;
        cc.bias_silu = pick(0, 1);
        const auto in = make_conv_inputs(cc, rng());
        const auto got = run_conv(*be_, cc, in);
        const auto want = run_conv(*ref_, cc, in);
        ASSERT_EQ(got.size(), want.size());
        EXPECT_LE(nmse(got.data(), want.data(), want.size()), 1e-7) << cc.name() << " seed " << seed_;
    }
}

TEST_P(OpsProperty, Mamba2ScanMatchesReference) {
    std::mt19937_64 rng(seed_);
    for (int iter = 0; iter < 16; ++iter) {
        const scan_case sc = random_mamba2_case(rng, iter);
        const auto in = make_scan_inputs(sc, rng());
        const auto got = run_scan(*be_, sc, in);
        const auto want = run_scan(*ref_, sc, in);
        ASSERT_EQ(got.size(), want.size());
        EXPECT_LE(nmse(got.data(), want.data(), want.size()), be_->scan_nmse_bound(sc.shape()))
            << sc.name() << " seed " << seed_;
    }
}

TEST_P(OpsProperty, Mamba1ScanMatchesReference) {
    std::mt19937_64 rng(seed_);
    auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    for (int iter = 0; iter < 10; ++iter) {
        scan_case sc;
        sc.mamba1 = true;
        sc.d_state = iter % 2 ? 16 : pick(1, 20);
        sc.head_dim = 1;
        sc.n_group = pick(1, 3);
        sc.n_head = sc.n_group * pick(1, 250);
        sc.n_t = iter % 3 == 0 ? 1 : pick(1, 200);
        sc.n_seqs = pick(1, 4);
        sc.n_slots = sc.n_seqs + pick(0, 2);
        sc.fused_xbc = pick(0, 1);
        sc.init = pick(0, 1) ? init_kind::model_like : init_kind::uniform;
        if (sc.d_state == 1) sc.mamba1 = false;  // A [1, H] is the Mamba-2 form
        const auto in = make_scan_inputs(sc, rng());
        const auto got = run_scan(*be_, sc, in);
        const auto want = run_scan(*ref_, sc, in);
        ASSERT_EQ(got.size(), want.size());
        EXPECT_LE(nmse(got.data(), want.data(), want.size()), be_->scan_nmse_bound(sc.shape()))
            << sc.name() << " seed " << seed_;
    }
}

// Sequences are independent: running one alone from its slot gives the same y and states as
// running it inside a batch.
TEST_P(OpsProperty, ScanSequencesAreIndependent) {
    scan_case sc;
    sc.d_state = 32;
    sc.head_dim = 16;
    sc.n_head = 4;
    sc.n_group = 2;
    sc.n_t = 9;
    sc.n_seqs = 3;
    sc.n_slots = 5;
    sc.n_keep = 2;
    auto in = make_scan_inputs(sc, seed_);
    const auto batch = run_scan(*be_, sc, in);

    const int64_t q = 1;
    scan_case one = sc;
    one.n_seqs = 1;
    scan_inputs alone;
    alone.s.buf = in.s.buf;
    alone.s.view = alone.s.buf.view();
    auto slice = [&](host_input& dst, const host_input& src) {
        dst.buf = src.buf;
        dst.view = src.view;
        dst.view.data = static_cast<char*>(dst.buf.raw()) + (static_cast<char*>(src.view.data) -
                        static_cast<const char*>(src.buf.raw())) + q * src.view.nb[3];
        dst.view.ne[3] = 1;
    };
    slice(alone.x, in.x);
    slice(alone.B, in.B);
    slice(alone.C, in.C);
    alone.dt.buf = host_tensor(dtype::f32, {sc.n_head, sc.n_t, 1});
    std::copy_n(in.dt.buf.data<float>() + q * sc.n_head * sc.n_t, sc.n_head * sc.n_t, alone.dt.buf.data<float>());
    alone.dt.view = alone.dt.buf.view();
    alone.A.buf = in.A.buf;
    alone.A.view = alone.A.buf.view();
    alone.ids.buf = host_tensor(dtype::i32, {1});
    alone.ids.buf.data<int32_t>()[0] = in.ids.buf.data<int32_t>()[q];
    alone.ids.view = alone.ids.buf.view();
    const auto single = run_scan(*be_, one, alone);

    const scan_shape b = sc.shape(), s1 = one.shape();
    const int64_t y_per_seq = sc.head_dim * sc.n_head * sc.n_t;
    for (int64_t i = 0; i < y_per_seq; ++i)
        ASSERT_FLOAT_EQ(single[size_t(i)], batch[size_t(q * y_per_seq + i)]) << "y element " << i;
    const int64_t st = sc.d_state * sc.head_dim * sc.n_head;
    for (int k = 0; k < sc.n_keep; ++k)
        for (int64_t i = 0; i < st; ++i)
            ASSERT_FLOAT_EQ(single[size_t(s1.y_elements() + k * s1.state_elements() + i)],
                            batch[size_t(b.y_elements() + k * b.state_elements() + q * st + i)])
                << "state block " << k << " element " << i;
}

std::string backend_param_name(const ::testing::TestParamInfo<std::string>& info) {
    std::string n = info.param;
    for (char& c : n)
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
    return n;
}

INSTANTIATE_TEST_SUITE_P(Backends, OpsProperty, ::testing::ValuesIn(backends_under_test()), backend_param_name);

}  // namespace
