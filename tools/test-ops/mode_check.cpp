// check: golden files computed by an independent implementation, run on every selected backend.
#include <cstdio>
#include <exception>

#include "common/harness.h"
#include "modes.h"

namespace ssmkit::testops {

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
                const harness::golden_result res = harness::run_golden(*be, path);
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
