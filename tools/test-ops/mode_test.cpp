// test: every selected backend against the reference on the catalog, fresh random inputs.
// cpu-ref is compared with the harness's independent oracle; every other backend with cpu-ref.
#include <cstdio>
#include <exception>
#include <map>

#include "catalog.h"
#include "modes.h"

namespace ssmkit::testops {
namespace {

std::vector<float> run_case(backend& be, const op_case& c, uint64_t seed) {
    if (auto* cc = std::get_if<harness::conv_case>(&c.c))
        return harness::run_conv(be, *cc, harness::make_conv_inputs(*cc, seed));
    const auto& sc = std::get<harness::scan_case>(c.c);
    return harness::run_scan(be, sc, harness::make_scan_inputs(sc, seed));
}

std::vector<float> oracle_case(const op_case& c, uint64_t seed) {
    if (auto* cc = std::get_if<harness::conv_case>(&c.c))
        return harness::oracle_conv(*cc, harness::make_conv_inputs(*cc, seed));
    const auto& sc = std::get<harness::scan_case>(c.c);
    return harness::oracle_scan(sc, harness::make_scan_inputs(sc, seed));
}

double bound_for(const backend& be, const op_case& c) {
    if (auto* sc = std::get_if<harness::scan_case>(&c.c)) return be.scan_nmse_bound(sc->shape());
    return 1e-7;
}

}  // namespace

int run_test(const options& o) {
    const uint64_t seed = o.seed_given ? o.seed : harness::fresh_seed();
    std::printf("test-ops test: seed %llu (rerun with --seed %llu)\n", (unsigned long long)seed,
                (unsigned long long)seed);
    std::vector<op_case> cases;
    for (const auto& c : test_catalog())
        if (case_selected(c, o.op, o.regex)) cases.push_back(c);
    if (cases.empty()) {
        std::fprintf(stderr, "test-ops: no case matches -o '%s' -p '%s' (see --list)\n", o.op.c_str(), o.regex.c_str());
        return 2;
    }

    auto ref = make_backend("cpu-ref");
    int passed = 0, failed = 0;
    for (const auto& name : o.backends) {
        auto be = make_backend(name, o.backend_opts);
        std::printf("Backend %s: %s\n", be->name().c_str(), be->description().c_str());
        int b_pass = 0, b_fail = 0;
        for (size_t i = 0; i < cases.size(); ++i) {
            const op_case& c = cases[i];
            const uint64_t case_seed = seed + 0x9E3779B97F4A7C15ull * (i + 1);
            try {
                const std::vector<float> got = run_case(*be, c, case_seed);
                const std::vector<float> want = name == "cpu-ref" ? oracle_case(c, case_seed) : run_case(*ref, c, case_seed);
                const double err = harness::nmse(got.data(), want.data(), want.size());
                const double bound = bound_for(*be, c);
                if (got.size() == want.size() && err <= bound) {
                    ++b_pass;
                    std::printf("  %s: OK\n", c.name().c_str());
                } else {
                    ++b_fail;
                    std::printf("  %s: FAIL nmse=%.3g > %.1g\n", c.name().c_str(), err, bound);
                }
            } catch (const std::exception& e) {
                ++b_fail;
                std::printf("  %s: FAIL %s\n", c.name().c_str(), e.what());
            }
            std::fflush(stdout);
        }
        std::printf("  %s: %d/%d passed\n", be->name().c_str(), b_pass, b_pass + b_fail);
        passed += b_pass;
        failed += b_fail;
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    if (failed) std::printf("seed was %llu\n", (unsigned long long)seed);
    return failed ? 1 : 0;
}

}  // namespace ssmkit::testops
