#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "context_impl.h"
#include "internal.h"

namespace ssmkit::model::detail {
namespace {

// Few-row products (decoding: one row per sequence) are bound by reading the weights. OpenBLAS
// 0.3.21's sgemm packs the whole weight matrix even for one row (measured here, N=6448, K=1536:
// M=1 sgemm 11.1 ms, sgemv 2.5 ms; M=2 sgemm 8.5 ms, two sgemv 4.9 ms), so rows of W are streamed
// once and dotted with all 2 <= M <= 4 activation rows at the same time (M=2: 5.0 ms against
// 7.8 ms for two sgemv; M=4: 6.3 against 15.4).
typedef float v8 __attribute__((vector_size(32), aligned(4)));

template <int M>
__attribute__((target("avx2,fma"))) void small_m_rows(const float* X, int64_t K, const float* W, float* Y,
                                                      int64_t N, int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
        const float* w = W + n * K;
        v8 acc0[M], acc1[M];
        for (int m = 0; m < M; ++m) acc0[m] = acc1[m] = v8{0, 0, 0, 0, 0, 0, 0, 0};
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            const v8 w0 = *reinterpret_cast<const v8*>(w + k), w1 = *reinterpret_cast<const v8*>(w + k + 8);
            for (int m = 0; m < M; ++m) {
                acc0[m] += w0 * *reinterpret_cast<const v8*>(X + m * K + k);
                acc1[m] += w1 * *reinterpret_cast<const v8*>(X + m * K + k + 8);
            }
        }
        for (int m = 0; m < M; ++m) {
            const v8 a = acc0[m] + acc1[m];
            float s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
            for (int64_t j = k; j < K; ++j) s += w[j] * X[m * K + j];
            Y[m * N + n] = s;
        }
    }
}

bool have_avx2_fma() {
    static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return ok;
}

// A persistent team for the few-row kernel: starting threads per product costs more than the
// product itself in this VM (hundreds of calls per generated token).
class team {
public:
    ~team() { resize(1); }
    int size() const { return int(workers_.size()) + 1; }
    void resize(int n) {
        {
            std::lock_guard<std::mutex> l(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
        stop_ = false;
        for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { loop(i); });
    }
    // Runs job(0 .. size()-1), part 0 on the calling thread.
    void run(const std::function<void(int)>& job) {
        if (workers_.empty()) return job(0);
        {
            std::lock_guard<std::mutex> l(mu_);
            job_ = &job;
            pending_ = int(workers_.size());
            ++generation_;
        }
        cv_.notify_all();
        job(0);
        std::unique_lock<std::mutex> l(mu_);
        done_.wait(l, [&] { return pending_ == 0; });
    }

private:
    void loop(int index) {
        uint64_t seen = 0;
        for (;;) {
            std::unique_lock<std::mutex> l(mu_);
            cv_.wait(l, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            const auto* job = job_;
            l.unlock();
            (*job)(index);
            l.lock();
            if (--pending_ == 0) done_.notify_one();
        }
    }
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable cv_, done_;
    const std::function<void(int)>* job_ = nullptr;
    uint64_t generation_ = 0;
    int pending_ = 0;
    bool stop_ = false;
};

team& the_team() {
    static team t;
    return t;
}

void small_m(const float* X, int64_t M, int64_t K, const float* W, float* Y, int64_t N) {
    const int T = the_team().size();
    const int64_t per = (N + T - 1) / T;
    the_team().run([=](int t) {
        const int64_t n0 = std::min(N, t * per), n1 = std::min(N, (t + 1) * per);
        switch (M) {
            case 2: small_m_rows<2>(X, K, W, Y, N, n0, n1); break;
            case 3: small_m_rows<3>(X, K, W, Y, N, n0, n1); break;
            default: small_m_rows<4>(X, K, W, Y, N, n0, n1); break;
        }
    });
}

}  // namespace

void set_threads(int threads) {
    threads = std::max(1, threads);
    if (the_team().size() != threads) the_team().resize(threads);
    openblas_set_num_threads(threads);
}

void matmul(const float* X, int64_t M, const host_tensor& W, float* Y) {
    const int64_t K = W.ne()[0], N = W.ne()[1];
    if (M <= 4) {
        // One row: OpenBLAS's sgemv streams a little faster than the kernel here.
        if (M > 1 && have_avx2_fma()) return small_m(X, M, K, W.data<float>(), Y, N);
        for (int64_t m = 0; m < M; ++m)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, int(N), int(K), 1.0f, W.data<float>(), int(K), X + m * K, 1,
                        0.0f, Y + m * N, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f, X, int(K),
                W.data<float>(), int(K), 0.0f, Y, int(N));
}

void gemm(context_state& c, const float* X, int64_t M, const host_tensor& W, std::vector<float>& Y) {
    Y.resize(size_t(M * W.ne()[1]));
    scoped_timer t(c.bucket(&profile::gemm));
    matmul(X, M, W, Y.data());
}

void rms_norm(float* x, int64_t rows, int64_t n, int64_t stride, const float* w, float eps) {
    for (int64_t r = 0; r < rows; ++r) {
        float* v = x + r * stride;
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += double(v[i]) * v[i];
        const float scale = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
        for (int64_t i = 0; i < n; ++i) v[i] = v[i] * scale * w[i];
    }
}

}  // namespace ssmkit::model::detail
