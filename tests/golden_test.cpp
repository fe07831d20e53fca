// Golden conformance: every file of the shared golden set on every backend under test, the op
// run directly on the files' tensors with a NaN-poisoned output.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <limits>

#include "common/harness.h"
#include "ssmkit/gguf.h"
#include "ssmkit/ops.h"
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

int kept_states(const std::string& c) {
    const auto pos = c.find("K=");
    return pos == std::string::npos ? 1 : std::stoi(c.substr(pos + 2));
}

// Runs the file's op on `be` with a NaN-poisoned output; returns the NMSE and the bound.
std::pair<double, double> run_golden(backend& be, const std::string& path) {
    gguf::reader r(path);
    const std::string op = r.get_string("golden.op");
    const tensor_view want = r.view("out");
    device_buffer out(be, size_t(want.nelements()) * 4);
    std::vector<float> got(size_t(want.nelements()), std::numeric_limits<float>::quiet_NaN());
    be.upload(out.get(), got.data(), got.size() * 4);
    size_t compared = got.size();
    double bound = 1e-7;
    if (op == "ssm_conv") {
        harness::device_input sx(be, r.view("sx")), c(be, r.view("c"));
        ssm_conv(be, sx.view(), c.view(),
                 tensor_view::contiguous(out.get(), dtype::f32, {want.ne[0], want.ne[1], want.ne[2]}, be.device()));
    } else {
        EXPECT_EQ(op, "ssm_scan");
        const int K = kept_states(r.get_string("golden.case"));
        harness::device_input s(be, r.view("s")), x(be, r.view("x")), dt(be, r.view("dt")), A(be, r.view("A")),
            B(be, r.view("B")), C(be, r.view("C")), ids(be, r.view("ids"));
        const tensor_view o = tensor_view::contiguous(out.get(), dtype::f32, {want.nelements()}, be.device());
        ssm_scan(be, s.view(), x.view(), dt.view(), A.view(), B.view(), C.view(), ids.view(), o, K);
        host_tensor host_out(dtype::f32, {want.nelements()});
        const scan_shape sh = validate_scan(r.view("s"), r.view("x"), r.view("dt"), r.view("A"), r.view("B"),
                                            r.view("C"), r.view("ids"), host_out.view(), K);
        compared = size_t(sh.y_elements() + std::min<int64_t>(K, sh.n_t) * sh.state_elements());
        bound = be.scan_nmse_bound(sh);
    }
    be.synchronize();
    be.download(got.data(), out.get(), got.size() * 4);
    return {harness::nmse(got.data(), static_cast<const float*>(want.data), compared), bound};
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
            const auto [err, bound] = run_golden(*be, f);
            EXPECT_LE(err, bound) << f << " on " << name;
        }
    }
}

}  // namespace
