// The backend interface: where an op's validated arguments go to be computed, plus the memory,
// timing and ceiling services that tools need to drive any backend the same way.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ssmkit/ops.h"
#include "ssmkit/tensor.h"

namespace ssmkit {

struct conv_args {
    conv_shape shape;
    tensor_view sx, c, out;
    tensor_view bias;            // data == nullptr unless fuse_bias_silu
    bool fuse_bias_silu = false;
};

struct scan_args {
    scan_shape shape;
    tensor_view s, x, dt, A, B, C, ids, out;
};

// Which SSM_SCAN algorithm a backend should use for Mamba-2 prefill.
enum class scan_path { automatic, sequential, chunked };

struct backend_options {
    int threads = 0;                         // CPU backends: 0 = all cores
    int device = 0;                          // CUDA: device ordinal
    scan_path scan = scan_path::automatic;   // force a scan algorithm (for tests)
};

class backend {
public:
    virtual ~backend() = default;

    virtual std::string name() const = 0;
    virtual device_kind device() const = 0;
    // One line for logs and tables: instruction set, threads, GPU name, ...
    virtual std::string description() const = 0;

    // Memory on the backend's device.
    virtual void* alloc(size_t bytes) = 0;
    virtual void free(void* p) = 0;
    virtual void upload(void* dst, const void* src, size_t bytes) = 0;
    virtual void download(void* dst, const void* src, size_t bytes) = 0;
    // Waits for all queued work (asynchronous backends); a no-op on the CPU.
    virtual void synchronize() {}
    // The native stream (cudaStream_t) for graph capture; nullptr where there is none.
    virtual void* native_stream() { return nullptr; }

    // Kernels. Arguments have been validated and live on this backend's device.
    virtual void conv(const conv_args& a) = 0;
    virtual void scan(const scan_args& a) = 0;

    // The NMSE bound this backend guarantees against the double-precision reference for these
    // shapes: 1e-7 for float32 paths; paths with reduced-precision intermediates declare theirs.
    virtual double scan_nmse_bound(const scan_shape&) const { return 1e-7; }

    // Mean microseconds per run of fn(run) over `runs` runs, timed the way the device needs
    // (host clock on the CPU, stream events on a GPU). Work is synchronized before and after.
    virtual double time_runs(const std::function<void(int run)>& fn, int runs);
    // Copy bandwidth of this device in GB/s, counting bytes read plus bytes written: the ceiling
    // that perf figures are compared with.
    virtual double measure_copy_bandwidth() = 0;
};

// Names of the backends compiled into this build ("cpu-ref", "cpu", "cuda"), in that order.
std::vector<std::string> compiled_backends();
// Names of the compiled backends that can run here (a CUDA build on a machine without a GPU
// lists "cuda" in compiled_backends() but not here).
std::vector<std::string> available_backends();
// Why `name` is unavailable, or "" when it is available.
std::string backend_unavailable_reason(const std::string& name);
// Throws backend_error naming the choices when `name` is unknown or cannot run here.
std::unique_ptr<backend> make_backend(const std::string& name, const backend_options& opts = {});

// RAII buffer on a backend's device.
class device_buffer {
public:
    device_buffer() = default;
    device_buffer(backend& be, size_t bytes) : be_(&be), bytes_(bytes), p_(be.alloc(bytes)) {}
    ~device_buffer() { reset(); }
    device_buffer(device_buffer&& o) noexcept { *this = std::move(o); }
    device_buffer& operator=(device_buffer&& o) noexcept {
        if (this != &o) { reset(); be_ = o.be_; bytes_ = o.bytes_; p_ = o.p_; o.p_ = nullptr; }
        return *this;
    }
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;

    void* get() const { return p_; }
    size_t size() const { return bytes_; }
    void reset() { if (p_) be_->free(p_); p_ = nullptr; }

private:
    backend* be_ = nullptr;
    size_t bytes_ = 0;
    void* p_ = nullptr;
};

}  // namespace ssmkit
