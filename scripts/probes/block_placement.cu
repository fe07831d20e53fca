// Block placement probe (device machine; not built by CMake):
//   nvcc -O2 -arch=sm_90 -o /tmp/block_placement scripts/probes/block_placement.cu && /tmp/block_placement
// Where do the blocks of a grid smaller than one full wave land? Each block spins ~20 us (so all
// are resident together) and records its SM id; prints distinct SMs and the most blocks on one SM.
#include <cstdio>
#include <vector>
#include <algorithm>
__global__ void where(int* smid, long long spin) {
    extern __shared__ char pad[];
    if (threadIdx.x == 0) {
        int s; asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
        smid[blockIdx.x] = s;
        if (spin < 0) pad[0] = 0;   // never: keeps the dynamic shared memory allocated
        long long t0 = clock64();
        while (clock64() - t0 < spin) {}
    }
}
int main() {
    struct cfg { int blocks, threads; size_t smem; };
    cfg cs[] = {{192, 256, 0}, {520, 256, 16896}, {512, 64, 0}, {132, 256, 0}, {264, 128, 0}, {96, 512, 0}};
    int* d; cudaMalloc(&d, 4096 * 4);
    for (auto c : cs) {
        for (int rep = 0; rep < 2; ++rep) {
            where<<<c.blocks, c.threads, c.smem>>>(d, 40000);
            std::vector<int> h(c.blocks);
            cudaMemcpy(h.data(), d, c.blocks * 4, cudaMemcpyDeviceToHost);
            std::vector<int> cnt(256, 0);
            for (int s : h) cnt[s]++;
            int used = 0, mx = 0;
            for (int x : cnt) { if (x) used++; mx = std::max(mx, x); }
            printf("blocks %4d threads %3d smem %6zu: %3d SMs used, at most %d blocks on one SM (%s)\n", c.blocks, c.threads,
                   c.smem, used, mx, cudaGetErrorString(cudaGetLastError()));
        }
    }
    return 0;
}
