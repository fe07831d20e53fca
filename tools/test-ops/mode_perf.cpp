// perf: representative shapes, each timed for about a second of work, against ceilings measured in
// this same process: copy bandwidth for every case, the FMA rate for prefill scans on the CPU.
// Cold (default): inputs rotated through several copies, so repeated runs do not hit in cache.
// Hot (--cache hot): one set of buffers, the method behind ggml's test-backend-ops figures.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <thread>

#include "catalog.h"
#include "fma_peak.h"
#include "modes.h"

namespace ssmkit::testops {
namespace {

// Rotating copies should together exceed the last-level cache several times over.
double rotation_bytes(const backend& be) { return be.device() == device_kind::cuda ? 256e6 : 96e6; }

struct runner {
    virtual ~runner() = default;
    virtual void run() = 0;
};
template <typename T>
struct runner_of : runner {
    template <typename... A>
    explicit runner_of(A&&... a) : d(std::forward<A>(a)...) {}
    void run() override { d.run(); }
    T d;
};

std::vector<std::unique_ptr<runner>> make_copies(backend& be, const op_case& c, uint64_t seed, int n) {
    std::vector<std::unique_ptr<runner>> v;
    if (auto* cc = std::get_if<harness::conv_case>(&c.c)) {
        const auto in = harness::make_conv_inputs(*cc, seed);
        for (int i = 0; i < n; ++i) v.push_back(std::make_unique<runner_of<harness::conv_on_device>>(be, *cc, in));
    } else {
        const auto& sc = std::get<harness::scan_case>(c.c);
        const auto in = harness::make_scan_inputs(sc, seed);
        for (int i = 0; i < n; ++i) v.push_back(std::make_unique<runner_of<harness::scan_on_device>>(be, sc, in));
    }
    return v;
}

}  // namespace

int run_perf(const options& o) {
    const uint64_t seed = o.seed_given ? o.seed : harness::fresh_seed();
    std::vector<op_case> cases;
    for (const auto& c : perf_catalog())
        if (case_selected(c, o.op, o.regex)) cases.push_back(c);
    if (cases.empty()) {
        std::fprintf(stderr, "test-ops: no perf case matches -o '%s' -p '%s' (see --list)\n", o.op.c_str(), o.regex.c_str());
        return 2;
    }
    FILE* json = nullptr;
    if (!o.json_path.empty() && !(json = std::fopen(o.json_path.c_str(), "w"))) {
        std::fprintf(stderr, "test-ops: cannot write --json file '%s'\n", o.json_path.c_str());
        return 2;
    }

    for (const auto& name : o.backends) {
        auto be = make_backend(name, o.backend_opts);
        std::printf("Backend %s: %s\n", be->name().c_str(), be->description().c_str());
        const double bw = be->measure_copy_bandwidth();
        std::printf("  ceiling: copy bandwidth %.1f GB/s (bytes read + written)\n", bw);
        std::printf("  cache: %s\n", o.perf_hot ? "hot (one set of buffers reused; cases that fit in cache run from it)"
                                                 : "cold (inputs rotated through copies larger than the last-level cache)");
        double fma = 0;
        if (be->device() == device_kind::host) {
            int threads = o.backend_opts.threads > 0 ? o.backend_opts.threads : int(std::thread::hardware_concurrency());
            if (name == "cpu-ref") threads = 1;
            fma = measure_fma_peak_gflops(threads);
            std::printf("  ceiling: fp32 FMA peak %.1f GFLOP/s (%d threads)\n", fma, threads);
        }
        std::fflush(stdout);

        for (const auto& c : cases) {
            const double bytes = c.bytes();
            const int copies =
                o.perf_hot ? 1 : int(std::clamp(std::ceil(rotation_bytes(*be) / bytes), 1.0, 4096.0));
            auto runs_of = make_copies(*be, c, seed, copies);
            auto fn = [&](int r) { runs_of[size_t(r) % runs_of.size()]->run(); };
            be->time_runs(fn, copies);  // warm-up: first touch, lazy set-up, specialization logs
            int runs = o.runs;
            if (runs <= 0) {
                const double once = be->time_runs(fn, 1);
                runs = int(std::clamp(o.perf_seconds * 1e6 / std::max(once, 0.1), 3.0, 200000.0));
            }
            const double us = be->time_runs(fn, runs);
            const double gbs = bytes / (us * 1e-6) / 1e9;
            std::printf("  %s: %d runs - %.2f us/run - %.2f kB/run - %.2f GB/s - %.1f%% of BW", c.name().c_str(), runs, us,
                        bytes / 1e3, gbs, 100.0 * gbs / bw);
            const double gflops = c.flops() / (us * 1e-6) / 1e9;
            if (c.is_prefill_scan()) {
                std::printf(" - %.1f GFLOP/s", gflops);
                if (fma > 0) std::printf(" - %.1f%% of FMA peak", 100.0 * gflops / fma);
            }
            std::printf("\n");
            std::fflush(stdout);
            if (json)
                std::fprintf(json,
                             "{\"backend\":\"%s\",\"case\":\"%s\",\"cache\":\"%s\",\"runs\":%d,\"us\":%.4f,\"kB\":%.3f,\"GBps\":%.3f,"
                             "\"bw_GBps\":%.3f,\"pct_bw\":%.2f,\"GFLOPps\":%.3f,\"fma_GFLOPps\":%.3f}\n",
                             be->name().c_str(), c.name().c_str(), o.perf_hot ? "hot" : "cold", runs, us, bytes / 1e3, gbs, bw, 100.0 * gbs / bw,
                             gflops, fma);
        }
    }
    if (json) std::fclose(json);
    return 0;
}

}  // namespace ssmkit::testops
