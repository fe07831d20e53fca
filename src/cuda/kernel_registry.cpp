#include "cuda/kernel_registry.h"

#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ssmkit::cuda {

bool log_enabled() {
    static const bool on = [] {
        const char* v = std::getenv("SSMKIT_LOG");
        return v && std::strcmp(v, "0") != 0 && *v != '\0';
    }();
    return on;
}

kernel_registry& kernel_registry::get() {
    static kernel_registry r;
    return r;
}

void kernel_registry::add(const kernel_key& k, const void* fn, std::string name) {
    std::lock_guard<std::mutex> lock(mu_);
    entries_[k] = kernel_entry{fn, std::move(name)};
}

const kernel_entry* kernel_registry::find(const kernel_key& k) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(k);
    return it == entries_.end() ? nullptr : &it->second;
}

void kernel_registry::note_use(const kernel_key& k, const kernel_entry& e) {
    if (!log_enabled()) return;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (logged_[e.fn]) return;
        logged_[e.fn] = true;
    }
    // cudaFuncGetAttributes is not stream-ordered, so this is legal inside graph capture.
    cudaFuncAttributes at{};
    const cudaError_t err = cudaFuncGetAttributes(&at, e.fn);
    if (err != cudaSuccess) {
        std::fprintf(stderr, "ssmkit cuda: kernel %s (op=%s width=%d tile=%d): attributes unavailable: %s\n",
                     e.name.c_str(), k.op.c_str(), k.width, k.tile, cudaGetErrorString(err));
        cudaGetLastError();
        return;
    }
    std::fprintf(stderr,
                 "ssmkit cuda: kernel %s (op=%s width=%d tile=%d): %d registers, max %d threads/block, "
                 "%zu B static smem, %zu B local, ptx %d, sass %d\n",
                 e.name.c_str(), k.op.c_str(), k.width, k.tile, at.numRegs, at.maxThreadsPerBlock,
                 at.sharedSizeBytes, at.localSizeBytes, at.ptxVersion, at.binaryVersion);
}

}  // namespace ssmkit::cuda
