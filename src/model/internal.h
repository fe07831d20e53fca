// Internal to ssmkit_model: the one table of tensor names and shapes that the loader, the
// synthetic generator and the GGUF writer all read, plus the small numeric kernels of the
// forward pass.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ssmkit/model.h"

namespace ssmkit::model::detail {

// One tensor of the model file. `shape` is in ggml order (ne0 first).
struct tensor_spec {
    std::string name;             // as stored in GGUF, e.g. "blk.3.ssm_in.weight"
    std::vector<int64_t> shape;
    host_tensor* dst = nullptr;   // where the loader puts it / where the writer reads it
    bool required = true;
    bool matrix = false;          // a GEMM operand (may be stored quantized)
    enum class init { normal, ones, zeros, conv_bias, dt_bias, a_neg, d_skip } how = init::normal;
    float scale = 1.0f;           // synthetic: std-dev for `normal`
};

// Every tensor the hyper-parameters call for, in file order. Pointers go into `m`.
std::vector<tensor_spec> tensor_table(model& m);

// GGUF metadata key "<arch>.<suffix>".
std::string key(const hparams& hp, const std::string& suffix);

// ---- numeric kernels (row-major, token-major activations) ----

// Threads for the products (OpenBLAS and the few-row kernel); process-wide like OpenBLAS's.
void set_threads(int threads);
// Y[M][N] = X[M][K] * W^T, W a GGUF matrix [ne0 = K, ne1 = N].
void matmul(const float* X, int64_t M, const host_tensor& W, float* Y);
// In place: each row of n floats (rows of `stride`) normalized by its RMS, times w.
void rms_norm(float* x, int64_t rows, int64_t n, int64_t stride, const float* w, float eps);
inline float silu(float v) { return v / (1.0f + std::exp(-v)); }

// Accumulates wall time into a profile bucket (when enabled).
class scoped_timer {
public:
    scoped_timer(double* bucket) : bucket_(bucket) {
        if (bucket_) t0_ = std::chrono::steady_clock::now();
    }
    ~scoped_timer() {
        if (bucket_)
            *bucket_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    }

private:
    double* bucket_;
    std::chrono::steady_clock::time_point t0_;
};

}  // namespace ssmkit::model::detail
