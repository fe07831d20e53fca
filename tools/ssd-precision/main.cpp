// ssd-precision: the error of the CUDA chunked scan's fp16 arithmetic, modelled on the CPU.
// Draws the random cases of ops_property_test's Mamba-2 scan test from the given seeds and, for
// each case the automatic path sends to the chunked kernels, prints the NMSE of the modelled v8
// walk against the oracle as it runs by default, with SSMKIT_SSD_CB_SPLIT=0 and with
// SSMKIT_SSD_CB_LO=1, the NMSE of the v11 walk's arithmetic on the same data (whether or not the
// case takes v11), and the operand whose rounding costs the default form the most.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <random>
#include <string>

#include "common/harness.h"
#include "common/ssd_fp16_model.h"
#include "ssmkit/error.h"

using namespace ssmkit;
using namespace ssmkit::harness;

namespace {

struct operand {
    const char* name;
    bool fp16_rounding::*flag;
};
const operand kOperands[] = {{"B (C B^T)", &fp16_rounding::B}, {"B (state)", &fp16_rounding::B_state},   {"C (C B^T)", &fp16_rounding::C},
                             {"C (C S_in)", &fp16_rounding::C_state}, {"S_in", &fp16_rounding::S},
                             {"M", &fp16_rounding::M},   {"x", &fp16_rounding::x},   {"x*w", &fp16_rounding::xw},
                             {"CB^T store", &fp16_rounding::cb}, {"CB^T diag", &fp16_rounding::cb_diag},
                             {"fp32 parts", &fp16_rounding::f32}};

double model_nmse(const scan_case& sc, const scan_inputs& in, const std::vector<float>& want, const fp16_rounding& r) {
    const auto got = fp16_model_scan(sc, in, r);
    return nmse(got.data(), want.data(), want.size());
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "ssd-precision: models the CUDA chunked scan's fp16 operand rounding on the CPU and prints its NMSE "
        "against the oracle for the random cases of ops_property_test (the same draws from the same seed), "
        "one line per case the automatic path sends to the chunked kernels (Mamba-2, at least "
        "--min-tokens tokens), for the v8 walk as it runs by default, with SSMKIT_SSD_CB_SPLIT=0 and with "
        "SSMKIT_SSD_CB_LO=1, and for the v11 walk's arithmetic (fp32 C B^T before the decay). Exit "
        "status: 0 every case of the default form within --bound, 1 some case above it, 2 usage error."};
    uint64_t seed = 0;
    int seeds = 1;
    int64_t min_tokens = 32;
    double bound = 5e-7;
    bool quiet = false, each = false;
    app.add_option("--seed", seed, "First seed, as ops_property_test prints it on a failure")->required();
    app.add_option("--seeds", seeds, "Seeds to draw from: seed, seed + 1, ... (default 1)")->check(CLI::PositiveNumber);
    app.add_option("--min-tokens", min_tokens, "Tokens from which the automatic path is chunked (default 32)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--bound", bound, "NMSE bound the chunked path declares (default 5e-7)")->check(CLI::PositiveNumber);
    app.add_flag("-q,--quiet", quiet, "Print only the cases above the bound and the summary");
    app.add_flag("--each", each, "Under each printed case, its NMSE with each operand's rounding left out in turn");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }

    // The forms of the v8 walk modelled side by side; the first is the default.
    struct form {
        const char* name;
        fp16_rounding r;
        int above = 0;
        double worst = 0;
    };
    fp16_rounding split{};   // ssd_prep's C B^T from split B and C (cb_block_split): exact operands
    split.B = split.C = false;
    fp16_rounding fp16_in{};   // SSMKIT_SSD_CB_SPLIT=0
    fp16_rounding split_lo = split;   // SSMKIT_SSD_CB_LO=1
    split_lo.cb_diag = false;
    fp16_rounding v11 = split;   // the v11 walk's forms: M from C B^T in fp32, no fp16 store of C B^T
    v11.cb = v11.cb_diag = false;
    form forms[] = {{"v8", split}, {"CB_SPLIT=0", fp16_in}, {"+CB_LO=1", split_lo}, {"v11 arith", v11}};
    constexpr int kForms = sizeof forms / sizeof forms[0];
    int cases = 0;
    std::printf("%-5s %10s", "+seed", "NMSE (v8)");
    for (int f = 1; f < kForms; ++f) std::printf(" %12s", forms[f].name);
    std::printf(" %-11s  case\n", "costliest");
    try {
        for (int k = 0; k < seeds; ++k) {
            std::mt19937_64 rng(seed + uint64_t(k));
            for (int iter = 0; iter < 16; ++iter) {
                const scan_case sc = random_mamba2_case(rng, iter);
                const auto in = make_scan_inputs(sc, rng());
                if (sc.n_t < min_tokens || !fp16_model_supports(sc)) continue;
                const auto want = oracle_scan(sc, in);
                double e[kForms];
                bool show = !quiet;
                for (int f = 0; f < kForms; ++f) {
                    e[f] = model_nmse(sc, in, want, forms[f].r);
                    forms[f].worst = std::max(forms[f].worst, e[f]);
                    if (e[f] > bound) {
                        ++forms[f].above;
                        show = true;
                    }
                }
                ++cases;
                if (!show) continue;
                // which operand's rounding, left out of the default form, lowers its error most
                const char* costliest = "";
                double best = e[0];
                std::string detail;
                for (const operand& o : kOperands) {
                    if (!(forms[0].r.*o.flag)) continue;   // not rounded in the default form
                    fp16_rounding r = forms[0].r;
                    r.*o.flag = false;
                    const double v = model_nmse(sc, in, want, r);
                    char buf[64];
                    std::snprintf(buf, sizeof buf, "%s%s %.3e", detail.empty() ? "" : ", ", o.name, v);
                    detail += buf;
                    if (v < best) {
                        best = v;
                        costliest = o.name;
                    }
                }
                std::printf("+%-4d %10.3e", k, e[0]);
                for (int f = 1; f < kForms; ++f) std::printf(" %12.3e", e[f]);
                std::printf(" %-11s  %s\n", costliest, sc.name().c_str());
                if (each) std::printf("      exact: %s\n", detail.c_str());
            }
        }
    } catch (const error& e) {
        std::fprintf(stderr, "ssd-precision: %s\n", e.what());
        return 2;
    }
    std::printf("%d chunked cases from %d seed(s), bound %.1e:", cases, seeds, bound);
    for (const form& f : forms) std::printf("  %s worst %.3e, %d above;", f.name, f.worst, f.above);
    std::printf("\n");
    return forms[0].above ? 1 : 0;
}
