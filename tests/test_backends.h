// Which backends a test binary exercises: $SSMKIT_BACKENDS (comma-separated) when set, so CTest
// can run one backend per entry and label the GPU ones; otherwise every backend available here.
#pragma once

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "ssmkit/backend.h"

inline std::vector<std::string> backends_under_test() {
    const char* env = std::getenv("SSMKIT_BACKENDS");
    if (!env || !*env) return ssmkit::available_backends();
    std::vector<std::string> out;
    std::stringstream ss(env);
    for (std::string name; std::getline(ss, name, ',');)
        if (!name.empty()) out.push_back(name);
    return out;
}

// Golden files: $SSMKIT_GOLDEN_DIR, else ../shared/golden beside the source tree.
inline std::string golden_dir() {
    if (const char* env = std::getenv("SSMKIT_GOLDEN_DIR"); env && *env) return env;
    return std::string(SSMKIT_SOURCE_DIR) + "/../shared/golden";
}

inline bool running_in_ci() {
    const char* ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
}
