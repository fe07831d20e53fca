// test-ops: proves every backend correct and measures it, in the spirit of ggml's
// test-backend-ops. Modes: test, perf, check.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <regex>

#include "catalog.h"
#include "modes.h"
#include "ssmkit/error.h"

using namespace ssmkit;
using namespace ssmkit::testops;

namespace ssmkit::testops {

bool resolve_backends(options& o) {
    if (o.backends.empty()) {
        o.backends = available_backends();
        for (const auto& n : compiled_backends())
            if (auto why = backend_unavailable_reason(n); !why.empty())
                std::printf("(skipping backend %s: %s)\n", n.c_str(), why.c_str());
        return true;
    }
    for (const auto& n : o.backends)
        if (auto why = backend_unavailable_reason(n); !why.empty()) {
            std::fprintf(stderr, "test-ops: backend '%s' cannot run here: %s\n", n.c_str(), why.c_str());
            return false;
        }
    return true;
}

void print_list() {
    std::printf("test cases (%zu):\n", test_catalog().size());
    for (const auto& c : test_catalog()) std::printf("  %s\n", c.name().c_str());
    std::printf("perf cases (%zu):\n", perf_catalog().size());
    for (const auto& c : perf_catalog()) std::printf("  %s\n", c.name().c_str());
    std::printf("backends built: ");
    for (const auto& n : compiled_backends()) std::printf("%s ", n.c_str());
    std::printf("\nbackends available here: ");
    for (const auto& n : available_backends()) std::printf("%s ", n.c_str());
    std::printf("\n");
}

}  // namespace ssmkit::testops

int main(int argc, char** argv) {
    CLI::App app{
        "test-ops: checks every ssmkit backend against the double-precision reference (test), times them "
        "on representative shapes against measured ceilings (perf), and checks golden files (check).\n"
        "Exit status: 0 all passed, 1 a case or file failed, 2 usage error."};
    app.require_subcommand(0, 1);
    bool list = false;
    app.add_flag("--list", list, "Print the test and perf catalogs and the backends, then exit");

    options o;
    std::string scan_path = "auto";
    auto add_common = [&](CLI::App* sub) {
        sub->add_option("-b,--backend", o.backends,
                        "Backend to run (repeat -b for several): cpu-ref, cpu, cuda. Default: every backend available here")
            ->expected(1)
            ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
        sub->add_option("-t,--threads", o.backend_opts.threads, "Threads of CPU backends (default: all cores)")
            ->check(CLI::NonNegativeNumber);
        sub->add_option("--scan-path", scan_path,
                        "SSM_SCAN algorithm for Mamba-2 prefill: auto, sequential or chunked (forces the chunked "
                        "path where the backend has one)")
            ->check(CLI::IsMember({"auto", "sequential", "chunked"}));
    };
    auto add_selection = [&](CLI::App* sub) {
        sub->add_option("-o,--op", o.op, "Only this op: SSM_CONV, SSM_CONV_BIAS_SILU or SSM_SCAN (any case)");
        sub->add_option("-p,--pattern", o.regex, "Only cases whose name matches this regular expression");
        sub->add_option("--seed", o.seed, "Seed of the random inputs (default: fresh, printed)");
    };

    CLI::App* test = app.add_subcommand("test", "Run the test catalog on each backend; compare by NMSE with the "
                                                "reference (cpu-ref itself with an independent oracle). Prints one "
                                                "line per case and 'N passed, M failed'");
    add_common(test);
    add_selection(test);

    CLI::App* perf = app.add_subcommand("perf", "Time the perf catalog: us/run, kB/run, GB/s and % of the copy "
                                                "bandwidth measured at start-up (and GFLOP/s, % of FMA peak on the CPU)");
    add_common(perf);
    add_selection(perf);
    perf->add_option("--json", o.json_path, "Also write one JSON object per case to this file");
    perf->add_option("--runs", o.runs, "Runs per case (default: about --seconds of work)")->check(CLI::PositiveNumber);
    perf->add_option("--seconds", o.perf_seconds, "Seconds of work per case (default 1)")->check(CLI::PositiveNumber);
    std::string cache = "cold";
    perf->add_option("--cache", cache,
                     "cold (default): rotate each case's inputs through copies that overflow the last-level cache, "
                     "so every run reads DRAM; hot: reuse one set of buffers, as ggml's test-backend-ops perf does "
                     "(small cases then run from cache and may exceed 100% of the copy bandwidth)")
        ->check(CLI::IsMember({"cold", "hot"}));

    CLI::App* check = app.add_subcommand("check", "Run golden .gguf files (../shared/golden/*/*.gguf) on each "
                                                  "backend; one line per file and backend, then 'N passed, M failed'");
    add_common(check);
    check->add_option("files", o.files, "Golden files")->required();

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return 2;
    }
    if (list) {
        print_list();
        return 0;
    }
    if (app.get_subcommands().empty()) {
        std::fprintf(stderr, "%s\ntest-ops: choose a mode: test, perf or check\n", app.help().c_str());
        return 2;
    }
    o.perf_hot = cache == "hot";
    o.seed_given = (test->count("--seed") + perf->count("--seed")) > 0;
    o.backend_opts.scan = scan_path == "chunked"      ? scan_path::chunked
                          : scan_path == "sequential" ? scan_path::sequential
                                                      : scan_path::automatic;
    if (!resolve_backends(o)) return 2;
    try {
        if (!o.regex.empty()) (void)std::regex(o.regex);
    } catch (const std::regex_error& e) {
        std::fprintf(stderr, "test-ops: -p '%s' is not a valid regular expression: %s\n", o.regex.c_str(), e.what());
        return 2;
    }
    try {
        if (*test) return run_test(o);
        if (*perf) return run_perf(o);
        return run_check(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "test-ops: %s\n", e.what());
        return 1;
    }
}
