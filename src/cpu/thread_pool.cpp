#include "cpu/thread_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

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

// Flush-to-zero and denormals-are-zero for the duration of an op, restored afterwards so the
// caller's floating-point environment is untouched. The scans multiply states by decays that
// underflow (exp of a large negative dt * A), and on Intel cores every operation on a subnormal
// takes a microcode assist of ~100 cycles: granite's 512-token scan ran 4x slower there than on an
// AMD core of the same vector width. A subnormal is below 1.2e-38, far under any error bound.
class denormals_flushed {
public:
    denormals_flushed() {
#if defined(__x86_64__) || defined(__i386__)
        saved_ = _mm_getcsr();
        _mm_setcsr(saved_ | 0x8040u);   // FTZ (bit 15) | DAZ (bit 6)
#elif defined(__aarch64__)
        asm volatile("mrs %0, fpcr" : "=r"(saved_));
        asm volatile("msr fpcr, %0" ::"r"(saved_ | (uint64_t(1) << 24)));   // FZ
#endif
    }
    ~denormals_flushed() {
#if defined(__x86_64__) || defined(__i386__)
        _mm_setcsr(saved_);
#elif defined(__aarch64__)
        asm volatile("msr fpcr, %0" ::"r"(saved_));
#endif
    }
    denormals_flushed(const denormals_flushed&) = delete;
    denormals_flushed& operator=(const denormals_flushed&) = delete;

private:
#if defined(__aarch64__)
    uint64_t saved_ = 0;
#else
    unsigned saved_ = 0;
#endif
};

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
    const denormals_flushed ftz;
    if (pinned_) {
        fn_(ctx_, thread, thread);
        return;
    }
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

void thread_pool::run(int64_t n_tasks, int use, task_fn fn, void* ctx) { dispatch(n_tasks, use, false, fn, ctx); }

void thread_pool::run_pinned(int use, task_fn fn, void* ctx) {
    if (use > n_threads_) use = n_threads_;
    dispatch(use, use, true, fn, ctx);
}

void thread_pool::dispatch(int64_t n_tasks, int use, bool pinned, task_fn fn, void* ctx) {
    if (n_tasks <= 0) return;
    if (use > n_threads_) use = n_threads_;
    if (use > n_tasks) use = static_cast<int>(n_tasks);
    if (use <= 1) {
        const denormals_flushed ftz;
        for (int64_t t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
        return;
    }
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    pinned_ = pinned;
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
