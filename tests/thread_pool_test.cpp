// The CPU backend's thread pool: every task runs exactly once, pinned runs put task i on thread i,
// and the denormal flush holds inside an op and is undone after it.
#include "cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace {

using ssmkit::cpu::thread_pool;

TEST(ThreadPool, EveryTaskRunsOnceAtEveryThreadCount) {
    for (int threads : {1, 2, 3, 5}) {
        thread_pool pool(threads);
        for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000)}) {
            std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
            std::atomic<int> bad_thread{0};
            auto task = [&](int64_t t, int th) {
                hits[static_cast<size_t>(t)].fetch_add(1);
                if (th < 0 || th >= threads) bad_thread.fetch_add(1);
            };
            pool.run(n, threads, task);
            for (int64_t t = 0; t < n; ++t) EXPECT_EQ(hits[static_cast<size_t>(t)].load(), 1) << "task " << t << ", " << threads << " threads";
            EXPECT_EQ(bad_thread.load(), 0);
        }
    }
}

TEST(ThreadPool, PinnedRunGivesTaskIToThreadI) {
    thread_pool pool(3);
    for (int round = 0; round < 50; ++round) {
        std::vector<std::atomic<int>> seen(3);
        std::atomic<int> mismatches{0};
        auto task = [&](int64_t t, int th) {
            if (t != th) mismatches.fetch_add(1);
            seen[static_cast<size_t>(t)].fetch_add(1);
        };
        pool.run_pinned(3, task);
        EXPECT_EQ(mismatches.load(), 0);
        for (auto& s : seen) EXPECT_EQ(s.load(), 1);
    }
    // More threads asked than the pool has: the pool's size caps it.
    std::atomic<int> calls{0};
    auto count = [&](int64_t, int) { calls.fetch_add(1); };
    pool.run_pinned(8, count);
    EXPECT_EQ(calls.load(), 3);
}

// A subnormal operand is read as zero inside an op (DAZ / FZ), and the caller's mode comes back.
TEST(ThreadPool, DenormalsFlushedInsideOpsOnly) {
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
    volatile float tiny = 1e-39f;   // subnormal
    volatile float one = 1.0f;
    ASSERT_NE(tiny * one, 0.0f) << "the test needs gradual underflow outside the pool";
    for (int threads : {1, 2}) {
        thread_pool pool(threads);
        std::vector<float> products(4, -1.0f);
        auto task = [&](int64_t t, int) { products[static_cast<size_t>(t)] = tiny * one; };
        pool.run(4, threads, task);
        for (float v : products) EXPECT_EQ(v, 0.0f) << threads << " threads";
        EXPECT_NE(tiny * one, 0.0f) << "the floating-point mode was not restored";
    }
#if defined(__x86_64__) || defined(__i386__)
    const unsigned before = _mm_getcsr();
    thread_pool pool(2);
    auto nothing = [](int64_t, int) {};
    pool.run(2, 2, nothing);
    EXPECT_EQ(_mm_getcsr(), before);
#endif
#else
    GTEST_SKIP() << "no flush mode on this architecture";
#endif
}

}  // namespace
