#include "fma_peak.h"

#include <chrono>
#include <thread>
#include <vector>

namespace ssmkit::testops {
namespace {

constexpr int chains = 10;  // enough independent FMAs to cover the latency of two FMA pipes

#if defined(__x86_64__) && defined(__GNUC__)
typedef float v8 __attribute__((vector_size(32)));

__attribute__((target("avx2,fma"))) double fma_loop_avx2(long iters, float seed) {
    v8 acc[chains];
    for (int c = 0; c < chains; ++c) acc[c] = v8{} + seed * float(c + 1);
    const v8 m = v8{} + 0.999999f, a = v8{} + 1e-7f;
    for (long i = 0; i < iters; ++i)
        for (int c = 0; c < chains; ++c) acc[c] = acc[c] * m + a;
    v8 s = v8{};
    for (int c = 0; c < chains; ++c) s += acc[c];
    double r = 0;
    for (int l = 0; l < 8; ++l) r += s[l];
    return r;
}
constexpr int lanes = 8;
bool use_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
constexpr int lanes = 1;
bool use_avx2() { return false; }
#endif

double fma_loop_scalar(long iters, float seed) {
    float acc[chains];
    for (int c = 0; c < chains; ++c) acc[c] = seed * float(c + 1);
    for (long i = 0; i < iters; ++i)
        for (int c = 0; c < chains; ++c) acc[c] = acc[c] * 0.999999f + 1e-7f;
    double r = 0;
    for (int c = 0; c < chains; ++c) r += acc[c];
    return r;
}

}  // namespace

double measure_fma_peak_gflops(int threads) {
    const bool avx2 = use_avx2();
    const int width = avx2 ? lanes : 1;
    const long iters = 20'000'000;
    std::vector<double> sink(size_t(threads > 0 ? threads : 1));
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (size_t t = 0; t < sink.size(); ++t)
        pool.emplace_back([&, t] {
#if defined(__x86_64__) && defined(__GNUC__)
            sink[t] = avx2 ? fma_loop_avx2(iters, 1.0f + t) : fma_loop_scalar(iters, 1.0f + t);
#else
            sink[t] = fma_loop_scalar(iters, 1.0f + t);
#endif
        });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    volatile double keep = 0;
    for (double v : sink) keep = keep + v;  // the loops must not be optimized away
    return 2.0 * chains * width * double(iters) * double(sink.size()) / s / 1e9;
}

}  // namespace ssmkit::testops
