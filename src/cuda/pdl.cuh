// Programmatic dependent launch (sm_90) for every kernel of the backend.
//
// A kernel launched with launch_pdl may be scheduled while the kernel before it in the stream is
// still finishing, so its launch latency and block set-up overlap that kernel's tail instead of
// following it. That gap is a large share of the small ops (a one-token conv takes ~1.1 us in a
// graph, almost all of it launch and one DRAM round trip).
//
// The rule that keeps stream order intact: every kernel calls pdl_begin() before its first global
// load or store. griddepcontrol.wait returns once the previous kernel has completed and its writes
// are visible (it returns at once when the kernel was launched normally), and only then does the
// kernel allow its own successor to launch, so a chain of such kernels sees exactly the order of
// plain launches. SSMKIT_CUDA_PDL=0 launches everything normally, for measurements.
//
// Kernels whose blocks run long (the sequential scans) call only pdl_wait_previous(): with the
// successor released at their start, its blocks sat resident beside them for the whole run, and
// the Mamba-1 prefill scan slowed from 100.6 to 113.7 us (H200, same call); their successor then
// launches when they finish, as with plain launches.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "cuda/check.h"
#include "cuda/knobs.h"

namespace ssmkit::cuda {

__device__ __forceinline__ void pdl_wait_previous() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void pdl_begin() {
    pdl_wait_previous();
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

inline bool pdl_enabled() {
    static const bool on = knob_int("SSMKIT_CUDA_PDL", 1) != 0;
    return on;
}

// A launch configuration with the programmatic-serialization attribute (when enabled). `attr`
// must outlive the launch call.
inline cudaLaunchConfig_t pdl_config(dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                     cudaLaunchAttribute* attr) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    attr->id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr->val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl_enabled() ? 1 : 0;
    return cfg;
}

// kernel<<<grid, block, smem, stream>>>(args...), launched as above; throws on a launch error.
template <typename... KernelArgs, typename... Args>
void launch_pdl(const char* name, void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem,
                cudaStream_t stream, Args&&... args) {
    cudaLaunchAttribute attr;
    const cudaLaunchConfig_t cfg = pdl_config(grid, block, smem, stream, &attr);
    check(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), name);
    check_launch(name);
}

// The same for a kernel known only by its address (the specialization registry's entries).
inline void launch_pdl(const char* name, const void* kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                       void** args) {
    cudaLaunchAttribute attr;
    const cudaLaunchConfig_t cfg = pdl_config(grid, block, smem, stream, &attr);
    check(cudaLaunchKernelExC(&cfg, kernel, args), name);
    check_launch(name);
}

}  // namespace ssmkit::cuda
