#include "core/host_backend.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "ssmkit/error.h"

namespace ssmkit {

void* host_backend::alloc(size_t bytes) {
    // 64-byte alignment keeps vector loads on one cache line.
    void* p = std::aligned_alloc(64, ((bytes + 63) / 64) * 64 + 64);
    if (!p) throw backend_error(name() + ": out of host memory allocating " + std::to_string(bytes) + " bytes");
    return p;
}

void host_backend::free(void* p) { std::free(p); }
void host_backend::upload(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void host_backend::download(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

double host_backend::measure_copy_bandwidth() {
    const size_t bytes = size_t(256) << 20;
    std::vector<char> a(bytes, 1), b(bytes, 2);
    const int nt = threads() > 0 ? threads() : 1;
    auto copy_all = [&] {
        std::vector<std::thread> pool;
        const size_t part = bytes / nt;
        for (int t = 0; t < nt; ++t)
            pool.emplace_back([&, t] {
                const size_t off = t * part, len = t == nt - 1 ? bytes - off : part;
                std::memcpy(b.data() + off, a.data() + off, len);
            });
        for (auto& th : pool) th.join();
    };
    copy_all();  // touch the pages first
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        copy_all();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, 2.0 * bytes / s / 1e9);
    }
    return best;
}

}  // namespace ssmkit
