// A persistent pool: the workers stay alive between ops so a decode step pays a wake-up, not a
// thread creation. The calling thread works too, so a pool of n threads starts n-1 workers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace ssmkit::cpu {

class thread_pool {
public:
    // fn(ctx, task, thread) for every task; thread is in [0, threads used).
    using task_fn = void (*)(void* ctx, int64_t task, int thread);

    explicit thread_pool(int threads);
    ~thread_pool();
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    int size() const { return n_threads_; }

    // Runs every task in [0, n_tasks) on min(use, size()) threads and returns when all are done.
    // Tasks are claimed one at a time from a shared counter, so a thread that the OS deschedules
    // (more threads than cores, other processes) does not hold up a fixed share of the work.
    void run(int64_t n_tasks, int use, task_fn fn, void* ctx);

    template <typename F>
    void run(int64_t n_tasks, int use, F& f) {
        run(n_tasks, use, [](void* c, int64_t t, int th) { (*static_cast<F*>(c))(t, th); }, &f);
    }

    // Runs task i on thread i, for i in [0, min(use, size())): the same data on the same core
    // call after call, so a working set that fits the per-core caches stays there (decode: a
    // thread's share of the states). The price: a descheduled thread holds up the op.
    void run_pinned(int use, task_fn fn, void* ctx);

    template <typename F>
    void run_pinned(int use, F& f) {
        run_pinned(use, [](void* c, int64_t t, int th) { (*static_cast<F*>(c))(t, th); }, &f);
    }

private:
    void dispatch(int64_t n_tasks, int use, bool pinned, task_fn fn, void* ctx);
    void worker(int index);
    void work(int thread);

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex run_mutex_;  // one op at a time per pool

    // The published job.
    task_fn fn_ = nullptr;
    void* ctx_ = nullptr;
    int64_t n_tasks_ = 0;
    int use_ = 1;
    bool pinned_ = false;   // task = thread index, no claiming
    alignas(64) std::atomic<int64_t> next_{0};
    alignas(64) std::atomic<int> pending_{0};   // workers still inside the job
    alignas(64) std::atomic<uint64_t> generation_{0};
    std::atomic<bool> stop_{false};

    // Sleeping workers (after spinning for a while without a job).
    std::mutex sleep_mutex_;
    std::condition_variable wake_;
    int sleepers_ = 0;
};

}  // namespace ssmkit::cpu
