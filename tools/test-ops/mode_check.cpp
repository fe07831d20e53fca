// check: golden files computed by an independent implementation, run on every selected backend.
#include <cstdio>
#include <exception>
#include <limits>
#include <string>

#include "common/harness.h"
#include "modes.h"
#include "ssmkit/error.h"
#include "ssmkit/gguf.h"
#include "ssmkit/ops.h"

namespace ssmkit::testops {
namespace {

struct outcome {
    double nmse = 0;
    double bound = 1e-7;
};

// The integer after "K=" in the case string, 1 when absent.
int kept_states(const std::string& golden_case) {
    const auto pos = golden_case.find("K=");
    if (pos == std::string::npos) return 1;
    return std::stoi(golden_case.substr(pos + 2));
}

std::vector<float> poisoned_output(backend& be, device_buffer& out, size_t n) {
    const std::vector<float> nan(n, std::numeric_limits<float>::quiet_NaN());
    out = device_buffer(be, n * 4);
    be.upload(out.get(), nan.data(), n * 4);
    return nan;
}

outcome check_conv(backend& be, const gguf::reader& r) {
    harness::device_input sx(be, r.view("sx")), c(be, r.view("c"));
    const tensor_view want = r.view("out");
    device_buffer out;
    std::vector<float> got = poisoned_output(be, out, size_t(want.nelements()));
    tensor_view o = tensor_view::contiguous(out.get(), dtype::f32, {want.ne[0], want.ne[1], want.ne[2], want.ne[3]},
                                            be.device());
    ssm_conv(be, sx.view(), c.view(), o);
    be.synchronize();
    be.download(got.data(), out.get(), got.size() * 4);
    return {harness::nmse(got.data(), static_cast<const float*>(want.data), got.size()), 1e-7};
}

outcome check_scan(backend& be, const gguf::reader& r) {
    const int K = kept_states(r.get_string("golden.case"));
    harness::device_input s(be, r.view("s")), x(be, r.view("x")), dt(be, r.view("dt")), A(be, r.view("A")),
        B(be, r.view("B")), C(be, r.view("C")), ids(be, r.view("ids"));
    const tensor_view want = r.view("out");
    device_buffer out;
    std::vector<float> got = poisoned_output(be, out, size_t(want.nelements()));
    tensor_view o = tensor_view::contiguous(out.get(), dtype::f32, {want.nelements()}, be.device());
    ssm_scan(be, s.view(), x.view(), dt.view(), A.view(), B.view(), C.view(), ids.view(), o, K);
    be.synchronize();
    be.download(got.data(), out.get(), got.size() * 4);
    // The file leaves blocks k >= n_t as ggml leaves them: compare y and blocks k < n_t only.
    const scan_shape sh = validate_scan(r.view("s"), r.view("x"), r.view("dt"), r.view("A"), r.view("B"),
                                        r.view("C"), r.view("ids"),
                                        tensor_view::contiguous(got.data(), dtype::f32, {int64_t(got.size())}), K);
    const int64_t blocks = std::min<int64_t>(K, sh.n_t);
    const size_t n = size_t(sh.y_elements() + blocks * sh.state_elements());
    return {harness::nmse(got.data(), static_cast<const float*>(want.data), n), be.scan_nmse_bound(sh)};
}

}  // namespace

int run_check(const options& o) {
    if (o.files.empty()) {
        std::fprintf(stderr, "test-ops check: give one or more golden .gguf files (e.g. ../shared/golden/*/*.gguf)\n");
        return 2;
    }
    std::vector<std::unique_ptr<backend>> backends;
    for (const auto& name : o.backends) backends.push_back(make_backend(name, o.backend_opts));

    int passed = 0, failed = 0;
    for (const auto& path : o.files) {
        for (auto& be : backends) {
            try {
                gguf::reader r(path);
                const std::string op = r.get_string("golden.op");
                outcome res;
                if (op == "ssm_conv")
                    res = check_conv(*be, r);
                else if (op == "ssm_scan")
                    res = check_scan(*be, r);
                else
                    throw error("golden.op is '" + op + "', expected ssm_conv or ssm_scan");
                const bool ok = res.nmse <= res.bound;
                std::printf("%s [%s]: nmse=%.3g %s\n", path.c_str(), be->name().c_str(), res.nmse, ok ? "ok" : "FAIL");
                (ok ? passed : failed)++;
            } catch (const std::exception& e) {
                std::printf("%s [%s]: FAIL %s\n", path.c_str(), be->name().c_str(), e.what());
                ++failed;
            }
            std::fflush(stdout);
        }
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

}  // namespace ssmkit::testops
