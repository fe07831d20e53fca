// The CPU model of the chunked scan's fp16 arithmetic (tools/common/ssd_fp16_model.h): the chunk
// algorithm exact when nothing is rounded (not even to fp32), kept states included, and its rounding
// visible but bounded when everything is.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "common/harness.h"
#include "common/ssd_fp16_model.h"
#include "ssmkit/error.h"

using namespace ssmkit;
using namespace ssmkit::harness;

namespace {

// Small cases (the model is a plain triple loop), one to several chunks, model-like data.
scan_case small_case(std::mt19937_64& rng) {
    auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    scan_case sc;
    sc.d_state = pick(1, 40);
    sc.head_dim = pick(1, 12);
    sc.n_group = pick(1, 2);
    sc.n_head = sc.n_group * pick(1, 2);
    sc.n_t = pick(1, 150);
    sc.n_keep = pick(0, 1) ? 1 : pick(2, 5);   // kept states, some beyond n_t (the initial state)
    sc.n_seqs = pick(1, 3);
    sc.n_slots = sc.n_seqs + pick(0, 2);
    sc.fused_xbc = pick(0, 1);
    sc.init = pick(0, 1) ? init_kind::model_like : init_kind::uniform;
    return sc;
}

TEST(SsdFp16Model, WithoutRoundingMatchesTheOracle) {
    const uint64_t seed = test_seed();
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 12; ++i) {
        const scan_case sc = small_case(rng);
        const auto in = make_scan_inputs(sc, rng());
        const auto want = oracle_scan(sc, in);
        const auto got = fp16_model_scan(sc, in, fp16_rounding::none());
        ASSERT_EQ(got.size(), want.size());
        // all double inside: only the final fp32 store differs from the oracle (at most ~1e-15)
        EXPECT_LE(nmse(got.data(), want.data(), want.size()), 1e-14) << sc.name() << " seed " << seed;
    }
}

TEST(SsdFp16Model, Fp16RoundingShowsButStaysNearTheBound) {
    const uint64_t seed = test_seed();
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 12; ++i) {
        scan_case sc = small_case(rng);
        sc.d_state = std::max<int64_t>(sc.d_state, 8);   // enough terms that rounding cannot vanish
        sc.head_dim = std::max<int64_t>(sc.head_dim, 4);
        const auto in = make_scan_inputs(sc, rng());
        const auto want = oracle_scan(sc, in);
        const auto got = fp16_model_scan(sc, in, fp16_rounding{});
        const double e = nmse(got.data(), want.data(), want.size());
        EXPECT_GE(e, 1e-9) << sc.name() << " seed " << seed;   // fp16 keeps 11 bits: ~1e-7
        EXPECT_LE(e, 5e-6) << sc.name() << " seed " << seed;
    }
}

// The two ops_property_test draws that failed on an H200 (v8 with C B^T from fp16 B and C): the
// model must give the GPU's NMSE, and the split C B^T that replaced that form must pass the bound.
TEST(SsdFp16Model, ReproducesTheH200FailuresAndTheirFix) {
    struct draw {
        uint64_t seed;
        double h200;   // measured NMSE of that case, ops_property_test on the cuda backend
    };
    const draw draws[] = {{15489249025077956019ull, 6.185e-7}, {11082539891280203501ull, 5.849e-7}};
    fp16_rounding fp16_in{};   // SSMKIT_SSD_CB_SPLIT=0, the form measured
    fp16_rounding split{};     // the default: B and C exact as C B^T's operands
    split.B = split.C = false;
    for (const draw& d : draws) {
        std::mt19937_64 rng(d.seed);
        double worst_fp16 = 0, worst_split = 0;
        for (int iter = 0; iter < 16; ++iter) {   // the property test's draws, in its order
            const scan_case sc = random_mamba2_case(rng, iter);
            const auto in = make_scan_inputs(sc, rng());
            if (sc.n_t < 32 || !fp16_model_supports(sc)) continue;   // the automatic path's chunked cases
            const auto want = oracle_scan(sc, in);
            const auto a = fp16_model_scan(sc, in, fp16_in), b = fp16_model_scan(sc, in, split);
            worst_fp16 = std::max(worst_fp16, nmse(a.data(), want.data(), want.size()));
            worst_split = std::max(worst_split, nmse(b.data(), want.data(), want.size()));
        }
        EXPECT_NEAR(worst_fp16, d.h200, 0.01 * d.h200) << "seed " << d.seed;
        EXPECT_LE(worst_split, 2.5e-7) << "seed " << d.seed;
    }
}

TEST(SsdFp16Model, RefusesWhatItDoesNotModel) {
    scan_case sc;
    sc.mamba1 = true;
    sc.d_state = 16;
    sc.head_dim = 1;
    sc.n_t = 4;
    const auto in = make_scan_inputs(sc, 1);
    EXPECT_THROW(fp16_model_scan(sc, in, fp16_rounding{}), error);
}

}  // namespace
