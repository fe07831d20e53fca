// The "cuda" backend: device memory, its own stream, event/graph timing, and dispatch to the
// kernels in this folder. Op calls only queue kernels on the stream (no allocation, no
// synchronization), so a caller can capture them into a CUDA graph.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "core/backend_factories.h"
#include "cuda/check.h"
#include "cuda/knobs.h"
#include "cuda/launch.h"
#include "ssmkit/error.h"

#ifdef SSMKIT_HAVE_SSD
#include "cuda/scan_ssd.h"
#endif

namespace ssmkit {
namespace cuda {

const device_info& info_for_current_device() {
    static std::mutex mu;
    static std::map<int, device_info> cache;
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(dev);
    if (it != cache.end()) return it->second;
    device_info d;
    int v = 0;
    check(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute(MultiProcessorCount)");
    d.sm_count = v;
    check(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
          "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
    d.smem_optin = size_t(v);
    check(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev),
          "cudaDeviceGetAttribute(MaxSharedMemoryPerMultiprocessor)");
    d.smem_per_sm = size_t(v);
    check(cudaDeviceGetAttribute(&v, cudaDevAttrReservedSharedMemoryPerBlock, dev),
          "cudaDeviceGetAttribute(ReservedSharedMemoryPerBlock)");
    d.smem_reserved = size_t(v);
    return cache.emplace(dev, d).first->second;
}

namespace {

// Blocks of fn that fit one SM (0 when unknown), cached per device: the occupancy query is a
// driver call, and a conv launch would otherwise make it on every op call.
int blocks_per_sm(const void* fn, int threads, size_t smem) {
    static std::mutex mu;
    static std::map<std::tuple<int, const void*, int, size_t>, int> cache;
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    const auto key = std::make_tuple(dev, fn, threads, smem);
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    int n = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, fn, threads, smem) != cudaSuccess) {
        (void)cudaGetLastError();
        n = 0;
    }
    return cache.emplace(key, n).first->second;
}

}  // namespace

size_t smem_to_spread(const void* fn, int threads, size_t smem, int64_t blocks) {
    static const bool off = knob_is("SSMKIT_CUDA_SPREAD", "0");
    if (off || blocks <= 0) return smem;
    const device_info& d = info_for_current_device();
    const int64_t want = (blocks + d.sm_count - 1) / d.sm_count;
    constexpr int64_t kMaxBlocksPerSm = 32;   // sm_90's limit: no cap can apply past it
    if (want >= kMaxBlocksPerSm || want >= blocks_per_sm(fn, threads, smem)) return smem;
    // the least s for which want + 1 blocks of s + reserved bytes overflow the SM's shared memory
    const size_t s = d.smem_per_sm / size_t(want + 1) + 1 - d.smem_reserved;
    return std::min(std::max(smem, s), d.smem_optin);
}

namespace {

bool graphs_enabled() {
    static const bool off = knob_is("SSMKIT_CUDA_GRAPHS", "0");
    return !off;
}

class cuda_backend final : public backend {
public:
    explicit cuda_backend(const backend_options& opts) : dev_(opts.device), path_(opts.scan) {
        check(cudaSetDevice(dev_), "cudaSetDevice");
        check(cudaGetDeviceProperties(&prop_, dev_), "cudaGetDeviceProperties");
        // Non-blocking: our work never serializes against the legacy default stream of other code.
        check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        info_for_current_device();
#ifdef SSMKIT_HAVE_SSD
        ws_ = ssd_workspace_create();
#endif
    }

    ~cuda_backend() override {
        // Destructors must not throw: report and go on.
        if (cudaStreamSynchronize(stream_) != cudaSuccess) cudaGetLastError();
#ifdef SSMKIT_HAVE_SSD
        if (ws_) ssd_workspace_destroy(ws_);
#endif
        cudaStreamDestroy(stream_);
    }

    std::string name() const override { return "cuda"; }
    device_kind device() const override { return device_kind::cuda; }

    std::string description() const override {
        int drv = 0, rt = 0;
        cudaDriverGetVersion(&drv);
        cudaRuntimeGetVersion(&rt);
        char buf[512];
        std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %d SMs, %.1f GiB, L2 %d MiB), driver %d.%d, runtime %d.%d",
                      prop_.name, prop_.major, prop_.minor, prop_.multiProcessorCount,
                      double(prop_.totalGlobalMem) / double(1u << 30), prop_.l2CacheSize >> 20, drv / 1000,
                      (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
        return buf;
    }

    void* alloc(size_t bytes) override {
        use_device();
        void* p = nullptr;
        // cudaMalloc(0) gives nullptr, which views reject: hand out a minimal block instead.
        const cudaError_t e = cudaMalloc(&p, bytes > 0 ? bytes : 256);
        if (e != cudaSuccess) {
            cudaGetLastError();
            throw backend_error("cuda: cudaMalloc of " + std::to_string(bytes) + " bytes failed: " + cudaGetErrorString(e));
        }
        return p;
    }

    void free(void* p) override {
        if (!p) return;
        // Called from device_buffer's destructor, where a throw would terminate the program: a
        // failure here (only possible once the context is already broken) is reported, not thrown.
        const cudaError_t e = cudaFree(p);
        if (e != cudaSuccess) {
            std::fprintf(stderr, "ssmkit cuda: cudaFree failed: %s\n", cudaGetErrorString(e));
            cudaGetLastError();
        }
    }

    // Ordered on our stream (a plain cudaMemcpy would not wait for a non-blocking stream) and
    // complete on return, as the interface promises.
    void upload(void* dst, const void* src, size_t bytes) override {
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync(host to device)");
        check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (after upload)");
    }
    void download(void* dst, const void* src, size_t bytes) override {
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync(device to host)");
        check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (after download)");
    }

    void synchronize() override { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }
    void* native_stream() override { return stream_; }

    void conv(const conv_args& a) override {
        use_device();
        cuda::conv_launch(a, stream_);
    }

    void scan(const scan_args& a) override {
        use_device();
#ifdef SSMKIT_HAVE_SSD
        if (cuda::choose_scan_kernel(a.shape, path_, ws_ != nullptr) == cuda::scan_kernel::chunked) {
            // Growing the workspace allocates (and may synchronize): only outside capture. Under
            // capture a too-small workspace makes the chunked launch decline, and the sequential
            // kernel runs instead. time_runs runs one call uncaptured first for this reason.
            cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
            check(cudaStreamIsCapturing(stream_, &cs), "cudaStreamIsCapturing");
            if (cs == cudaStreamCaptureStatusNone && !ssd_workspace_reserve(ws_, a.shape))
                throw backend_error("cuda: ssd_workspace_reserve failed (out of device memory?)");
        }
        cuda::scan_launch(a, stream_, path_, ws_);
#else
        cuda::scan_launch(a, stream_, path_, nullptr);
#endif
    }

    double scan_nmse_bound(const scan_shape& sh) const override {
        return cuda::choose_scan_kernel(sh, path_, ws_ != nullptr) == cuda::scan_kernel::chunked ? 5e-7 : 1e-7;
    }

    // Replays a CUDA graph of the runs: host launch overhead (a few us per op call, more than a
    // decode kernel takes) would otherwise be what is measured. One call runs uncaptured first
    // (lazy set-up: workspace growth, first-use logs). Falls back to events around eager calls
    // when fn cannot be captured (it synchronizes, copies, ...) or SSMKIT_CUDA_GRAPHS=0.
    double time_runs(const std::function<void(int)>& fn, int runs) override {
        if (runs < 1) runs = 1;
        use_device();
        synchronize();
        fn(0);
        synchronize();
        double us = 0;
        if (graphs_enabled() && time_graph(fn, runs, &us)) return us;
        return time_eager(fn, runs);
    }

    double measure_copy_bandwidth() override {
        use_device();
        const size_t bytes = size_t(512) << 20;  // 10x the L2 of any current GPU
        void* a = alloc(bytes);
        void* b = nullptr;
        try {
            b = alloc(bytes);
            check(cudaMemsetAsync(a, 1, bytes, stream_), "cudaMemsetAsync");
            check(cudaMemsetAsync(b, 2, bytes, stream_), "cudaMemsetAsync");
            check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync(device to device)");
            event_pair ev;
            float best_ms = 1e30f;
            for (int rep = 0; rep < 10; ++rep) {
                check(cudaEventRecord(ev.start, stream_), "cudaEventRecord");
                check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync(device to device)");
                check(cudaEventRecord(ev.stop, stream_), "cudaEventRecord");
                check(cudaEventSynchronize(ev.stop), "cudaEventSynchronize");
                float ms = 0;
                check(cudaEventElapsedTime(&ms, ev.start, ev.stop), "cudaEventElapsedTime");
                best_ms = std::min(best_ms, ms);
            }
            free(a);
            free(b);
            return 2.0 * double(bytes) / (double(best_ms) * 1e-3) / 1e9;
        } catch (...) {
            free(a);
            free(b);
            throw;
        }
    }

private:
    struct event_pair {
        cudaEvent_t start = nullptr, stop = nullptr;
        event_pair() {
            check(cudaEventCreate(&start), "cudaEventCreate");
            check(cudaEventCreate(&stop), "cudaEventCreate");
        }
        ~event_pair() {
            cudaEventDestroy(start);
            cudaEventDestroy(stop);
        }
    };

    void use_device() {
        int cur = -1;
        check(cudaGetDevice(&cur), "cudaGetDevice");
        if (cur != dev_) check(cudaSetDevice(dev_), "cudaSetDevice");
    }

    double time_eager(const std::function<void(int)>& fn, int runs) {
        event_pair ev;
        check(cudaEventRecord(ev.start, stream_), "cudaEventRecord");
        for (int r = 0; r < runs; ++r) fn(r);
        check(cudaEventRecord(ev.stop, stream_), "cudaEventRecord");
        check(cudaEventSynchronize(ev.stop), "cudaEventSynchronize");
        float ms = 0;
        check(cudaEventElapsedTime(&ms, ev.start, ev.stop), "cudaEventElapsedTime");
        return double(ms) * 1e3 / runs;
    }

    // Captures fn(0..chunk-1) once (chunk <= 256 keeps instantiation cheap for long runs) and
    // replays it until `runs` runs are done; callers rotate inputs with r % copies, copies <= 16,
    // so replaying the first chunk runs the same mix.
    bool time_graph(const std::function<void(int)>& fn, int runs, double* us) {
        const int chunk = std::min(runs, 256);
        const int launches = (runs + chunk - 1) / chunk;
        cudaGraph_t graph = nullptr;
        if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
            cudaGetLastError();
            return false;
        }
        try {
            for (int r = 0; r < chunk; ++r) fn(r);
        } catch (const shape_error&) {
            cudaStreamEndCapture(stream_, &graph);
            if (graph) cudaGraphDestroy(graph);
            cudaGetLastError();
            throw;
        } catch (const backend_error&) {
            // Probably an operation that capture forbids; the eager path will show a real error.
            cudaStreamEndCapture(stream_, &graph);
            if (graph) cudaGraphDestroy(graph);
            cudaGetLastError();
            return false;
        }
        if (cudaStreamEndCapture(stream_, &graph) != cudaSuccess || !graph) {
            cudaGetLastError();
            return false;
        }
        cudaGraphExec_t exec = nullptr;
        if (cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
            cudaGetLastError();
            cudaGraphDestroy(graph);
            return false;
        }
        try {
            event_pair ev;
            check(cudaGraphLaunch(exec, stream_), "cudaGraphLaunch");  // warm-up
            check(cudaEventRecord(ev.start, stream_), "cudaEventRecord");
            for (int i = 0; i < launches; ++i) check(cudaGraphLaunch(exec, stream_), "cudaGraphLaunch");
            check(cudaEventRecord(ev.stop, stream_), "cudaEventRecord");
            check(cudaEventSynchronize(ev.stop), "cudaEventSynchronize");
            float ms = 0;
            check(cudaEventElapsedTime(&ms, ev.start, ev.stop), "cudaEventElapsedTime");
            *us = double(ms) * 1e3 / (double(launches) * chunk);
        } catch (...) {
            cudaGraphExecDestroy(exec);
            cudaGraphDestroy(graph);
            throw;
        }
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
        return true;
    }

    int dev_ = 0;
    scan_path path_ = scan_path::automatic;
    cudaDeviceProp prop_{};
    cudaStream_t stream_ = nullptr;
    ssd_workspace* ws_ = nullptr;
};

}  // namespace
}  // namespace cuda

std::string cuda_unavailable_reason() {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();  // clear, so later calls in this process start clean
        return std::string("no usable CUDA device: cudaGetDeviceCount: ") + cudaGetErrorString(e);
    }
    if (n == 0) return "no CUDA device found";
    return "";
}

std::unique_ptr<backend> make_cuda_backend(const backend_options& opts) {
    return std::make_unique<cuda::cuda_backend>(opts);
}

}  // namespace ssmkit
