// Error checking shared by the host-side CUDA files: every runtime call's status is turned into a
// backend_error that names the call, so a failure points at its source rather than at a later,
// unrelated call that happens to observe the sticky error.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "ssmkit/error.h"

namespace ssmkit::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what) {
    throw backend_error(std::string("cuda: ") + what + " failed: " + cudaGetErrorString(e) + " (" +
                        cudaGetErrorName(e) + ")");
}

inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw_cuda(e, what);
}

// After a kernel launch: catches bad configurations (grid, shared memory) without synchronizing,
// so it is safe inside graph capture.
inline void check_launch(const char* kernel) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw_cuda(e, (std::string("launch of ") + kernel).c_str());
}

}  // namespace ssmkit::cuda
