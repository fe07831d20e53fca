#include "cuda/check.h"
#include "cuda/kernel_registry.h"
#include "cuda/launch.h"
#include "cuda/scan_common.h"

namespace ssmkit::cuda {

__global__ void __launch_bounds__(128) scan_generic_kernel(scan_params p) {
    pdl_begin();
    const int64_t PH = int64_t(p.P) * p.H;
    const int64_t rowg = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (rowg >= PH * p.S) return;
    const int q = int(rowg / PH);
    const int64_t r = rowg - q * PH;
    const int h = int(r / p.P), g = h / (p.H / p.G);
    const int N = p.N, T = p.T;
    const int32_t slot = p.ids[q];
    const bool ok = slot_ok(slot, p.n_slots);
    float* states = p.out + PH * T * int64_t(p.S);
    const int64_t block_stride = PH * p.S * N;
    float* cur = states + rowg * N;  // block 0 row: the running state
    for (int n = 0; n < N; ++n) {
        const float v = ok ? p.s[(size_t(slot) * PH + r) * N + n] : NAN;
        cur[n] = v;
        for (int k = T; k < p.K; ++k) cur[k * block_stride + n] = v;
    }
    for (int t = 0; t < T; ++t) {
        const float d = softplus_f(p.dt[h + int64_t(p.H) * (t + int64_t(T) * q)]);
        const float xdt = p.x[q * p.x_nb3 + t * p.x_nb2 + r] * d;
        const float* Bt = p.B + q * p.B_nb3 + t * p.B_nb2 + int64_t(g) * N;
        const float* Ct = p.C + q * p.C_nb3 + t * p.C_nb2 + int64_t(g) * N;
        float y = 0.0f;
        for (int n = 0; n < N; ++n) {
            const float An = p.mamba1 ? p.A[size_t(h) * N + n] : p.A[h];
            const float hn = fmaf(cur[n], expf(d * An), Bt[n] * xdt);
            cur[n] = hn;
            y = fmaf(hn, Ct[n], y);
        }
        p.out[r + PH * (t + int64_t(T) * q)] = y;
        const int k = T - 1 - t;
        if (k >= 1 && k < p.K)
            for (int n = 0; n < N; ++n) cur[k * block_stride + n] = cur[n];
    }
}

void scan_generic_launch(const scan_args& a, cudaStream_t stream) {
    static const bool once = [] {
        kernel_registry::get().add({"ssm_scan_generic", 0, 0}, reinterpret_cast<const void*>(&scan_generic_kernel),
                                   "scan_generic");
        return true;
    }();
    (void)once;
    auto& reg = kernel_registry::get();
    const kernel_key key{"ssm_scan_generic", 0, 0};
    reg.note_use(key, *reg.find(key));
    scan_params p = make_scan_params(a);
    const int64_t rows = int64_t(p.P) * p.H * p.S;
    launch_pdl("scan_generic", scan_generic_kernel, dim3(unsigned((rows + 127) / 128)), dim3(128), 0, stream, p);
}

}  // namespace ssmkit::cuda
