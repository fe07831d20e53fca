// The three modes of test-ops. Each returns the process exit status.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ssmkit/backend.h"

namespace ssmkit::testops {

struct options {
    std::vector<std::string> backends;  // empty: every available backend
    std::string op;                     // -o
    std::string regex;                  // -p
    uint64_t seed = 0;                  // 0: fresh
    bool seed_given = false;
    backend_options backend_opts;
    // perf
    std::string json_path;
    int runs = 0;                       // 0: about perf_seconds of work per case
    double perf_seconds = 1.0;
    // cold: inputs rotated through copies that overflow the last-level cache (DRAM traffic);
    // hot: one set of buffers run again and again, as ggml's test-backend-ops perf does.
    bool perf_hot = false;
    // check
    std::vector<std::string> files;
};

// Resolves -b (or every available backend), printing why a named one cannot run.
// Returns false when a named backend is unknown or unavailable.
bool resolve_backends(options& o);

int run_test(const options& o);
int run_perf(const options& o);
int run_check(const options& o);
void print_list();

}  // namespace ssmkit::testops
