// Golden conformance: every file of the shared golden set on every backend under test, the op
// run directly on the files' tensors with a NaN-poisoned output.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "common/harness.h"
#include "test_backends.h"

using namespace ssmkit;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> golden_files() {
    std::vector<std::string> out;
    const fs::path dir = golden_dir();
    if (!fs::is_directory(dir)) return out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.path().extension() == ".gguf") out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
}

TEST(Golden, EveryFileOnEveryBackend) {
    const auto files = golden_files();
    if (files.empty()) {
        const std::string msg = "no golden files under '" + golden_dir() +
                                "': set SSMKIT_GOLDEN_DIR to the folder holding ssm_conv/ and ssm_scan/";
        if (running_in_ci()) GTEST_FAIL() << msg;
        GTEST_SKIP() << msg;
    }
    if (!std::getenv("SSMKIT_GOLDEN_DIR")) EXPECT_EQ(files.size(), 25u) << "the shared golden set has 25 files";
    for (const auto& name : backends_under_test()) {
        auto be = make_backend(name);
        for (const auto& f : files) {
            const harness::golden_result res = harness::run_golden(*be, f);
            EXPECT_LE(res.nmse, res.bound) << f << " on " << name;
        }
    }
}

}  // namespace
