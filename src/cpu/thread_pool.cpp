#include "cpu/thread_pool.h"

#include <chrono>

namespace ssmkit::cpu {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    asm volatile("yield" ::: "memory");
#endif
}

// How long an idle worker spins before sleeping. Back-to-back ops (a decode loop, a layer's
// conv then scan) arrive well within this, so they never pay a futex wake-up (~10-50 us).
constexpr auto kSpin = std::chrono::microseconds(2000);

}  // namespace

thread_pool::thread_pool(int threads) : n_threads_(threads < 1 ? 1 : threads) {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

thread_pool::~thread_pool() {
    {
        std::lock_guard<std::mutex> lk(sleep_mutex_);
        stop_.store(true);
        generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

void thread_pool::work(int thread) {
    for (;;) {
        const int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
        if (t >= n_tasks_) break;
        fn_(ctx_, t, thread);
    }
}

void thread_pool::worker(int index) {
    uint64_t seen = 0;
    for (;;) {
        // Spin, then yield (so an oversubscribed machine still makes progress), then sleep.
        auto deadline = std::chrono::steady_clock::now() + kSpin;
        uint64_t g;
        for (int it = 0;; ++it) {
            g = generation_.load(std::memory_order_acquire);
            if (g != seen) break;
            if (it < 256) {
                cpu_relax();
                continue;
            }
            if ((it & 15) == 0 && std::chrono::steady_clock::now() > deadline) {
                std::unique_lock<std::mutex> lk(sleep_mutex_);
                ++sleepers_;
                wake_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
                --sleepers_;
                g = generation_.load(std::memory_order_acquire);
                break;
            }
            std::this_thread::yield();
        }
        seen = g;
        if (stop_.load()) return;
        if (index < use_) {
            work(index);
            pending_.fetch_sub(1, std::memory_order_acq_rel);
        }
    }
}

void thread_pool::run(int64_t n_tasks, int use, task_fn fn, void* ctx) {
    if (n_tasks <= 0) return;
    if (use > n_threads_) use = n_threads_;
    if (use > n_tasks) use = static_cast<int>(n_tasks);
    if (use <= 1) {
        for (int64_t t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
        return;
    }
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    fn_ = fn;
    ctx_ = ctx;
    n_tasks_ = n_tasks;
    use_ = use;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(use - 1, std::memory_order_relaxed);
    {
        // The lock orders the publication against a worker that is just going to sleep.
        std::lock_guard<std::mutex> lk(sleep_mutex_);
        generation_.fetch_add(1, std::memory_order_release);
        if (sleepers_ > 0) wake_.notify_all();
    }
    work(0);
    for (int it = 0; pending_.load(std::memory_order_acquire) != 0; ++it) {
        if (it < 1024) cpu_relax();
        else std::this_thread::yield();
    }
}

}  // namespace ssmkit::cpu
