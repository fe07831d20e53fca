// wgmma layout probe (device machine; not built by CMake):
//   nvcc -O2 -std=c++17 -gencode arch=compute_90a,code=sm_90a -I src -o .probe/wgmma_layout scripts/probes/wgmma_layout.cu
// Checks src/cuda/wgmma.cuh against a host product before the walk relies on it: the swizzled
// K-major tiles, the descriptors at row and K offsets, and the accumulator layout, for the three
// shapes the SSD walk uses (A 64 x 128 or the upper half of 128 x 64; B of 16, 32 and 64 rows).
#include "cuda/wgmma.cuh"

#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using namespace ssmkit::cuda;

// D[m][n] = sum_k A[a_row0 + m][k] * B[b_row0 + n][k] for m < 64, n < N, k < K.
template <int N, int K>
__global__ void probe(const float* A, int a_rows, int a_row0, const float* B, int b_rows, int b_row0, float* D) {
    extern __shared__ __align__(1024) unsigned char smem[];
    unsigned char* sa = smem;
    unsigned char* sb = smem + a_rows * K * 2;   // a multiple of 1024 for these sizes
    for (int i = threadIdx.x; i < a_rows * K; i += blockDim.x) {
        const int r = i / K, k = i % K;
        *reinterpret_cast<__half*>(sa + wg::sw128_offset(r, k, a_rows)) = __float2half_rn(A[i]);
    }
    for (int i = threadIdx.x; i < b_rows * K; i += blockDim.x) {
        const int r = i / K, k = i % K;
        *reinterpret_cast<__half*>(sb + wg::sw128_offset(r, k, b_rows)) = __float2half_rn(B[i]);
    }
    wg::fence_smem_for_async();
    __syncthreads();
    float acc[N / 2];
    for (int i = 0; i < N / 2; ++i) acc[i] = -1.f;   // overwritten by the first step
    const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(sa));
    const uint32_t b = static_cast<uint32_t>(__cvta_generic_to_shared(sb));
    wg::fence();
#pragma unroll
    for (int k0 = 0; k0 < K; k0 += 16)
        wg::mma_m64<N>(acc, wg::sw128_desc(a, a_rows, a_row0, k0), wg::sw128_desc(b, b_rows, b_row0, k0), k0 > 0);
    wg::commit();
    wg::wait<0>();
    wg::pin(acc);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int j = 0; j < N / 8; ++j)
        for (int e = 0; e < 4; ++e) {
            const int m = 16 * warp + lane / 4 + 8 * (e / 2), n = 8 * j + 2 * (lane % 4) + (e % 2);
            D[m * N + n] = acc[4 * j + e];
        }
}

template <int N, int K>
bool run(const char* name, int a_rows, int a_row0, int b_rows, int b_row0) {
    std::mt19937 rng(N * 131 + K + a_row0);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> A(a_rows * K), B(b_rows * K), D(64 * N, NAN);
    for (auto& v : A) v = __half2float(__float2half_rn(u(rng)));
    for (auto& v : B) v = __half2float(__float2half_rn(u(rng)));
    float *dA, *dB, *dD;
    cudaMalloc(&dA, A.size() * 4); cudaMalloc(&dB, B.size() * 4); cudaMalloc(&dD, D.size() * 4);
    cudaMemcpy(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice);
    cudaMemset(dD, 0xff, D.size() * 4);
    const size_t smem = size_t(a_rows + b_rows) * K * 2;
    cudaFuncSetAttribute(probe<N, K>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    probe<N, K><<<1, 128, smem>>>(dA, a_rows, a_row0, dB, b_rows, b_row0, dD);
    const cudaError_t err = cudaDeviceSynchronize();
    cudaMemcpy(D.data(), dD, D.size() * 4, cudaMemcpyDeviceToHost);
    cudaFree(dA); cudaFree(dB); cudaFree(dD);
    double worst = 0;
    int bad = 0;
    for (int m = 0; m < 64; ++m)
        for (int n = 0; n < N; ++n) {
            double ref = 0;
            for (int k = 0; k < K; ++k) ref += double(A[(a_row0 + m) * K + k]) * B[(b_row0 + n) * K + k];
            const double e = std::fabs(ref - D[m * N + n]);
            if (!(e <= 1e-3)) ++bad;
            if (e > worst || std::isnan(e)) worst = std::isnan(e) ? INFINITY : e;
        }
    std::printf("%-40s %s  max |err| %.3g, %d of %d wrong%s%s\n", name, bad ? "FAIL" : "ok  ", worst, bad, 64 * N,
                err != cudaSuccess ? ", " : "", err != cudaSuccess ? cudaGetErrorString(err) : "");
    return bad == 0 && err == cudaSuccess;
}

int main() {
    bool ok = true;
    ok &= run<16, 128>("C S_in: m64n16, K 128, B rows 16..31", 64, 0, 32, 16);
    ok &= run<32, 128>("C S_in: m64n32, K 128, B rows 0..31", 64, 0, 32, 0);
    ok &= run<32, 128>("C S_in: m64n32, K 128, B rows 32..63", 64, 0, 64, 32);
    ok &= run<32, 64>("state: m64n32, K 64, A rows 64..127", 128, 64, 32, 0);
    ok &= run<64, 64>("state: m64n64, K 64, A rows 64..127", 128, 64, 64, 0);
    ok &= run<16, 64>("K 64, m64n16, A rows 0..63, B rows 0..15", 128, 0, 16, 0);
    std::printf("%s\n", ok ? "all passed" : "FAILED");
    return ok ? 0 : 1;
}
