// Host-side entry points of the CUDA kernels, called by the backend. Each queues its work on
// `stream` and returns: no allocation, no synchronization (graph capturable).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ssmkit/backend.h"

struct ssd_workspace;

namespace ssmkit::cuda {

// Properties read once per device and used to size grids.
struct device_info {
    int sm_count = 132;
    size_t smem_optin = 227 * 1024;  // per-block dynamic shared memory limit after opt-in
    size_t smem_per_sm = 228 * 1024;
    size_t smem_reserved = 1024;     // shared memory the system keeps per resident block
};
const device_info& info_for_current_device();

// Dynamic shared memory for a launch of `blocks` blocks of `threads` threads of fn that needs
// `smem` bytes: `smem`, or more so that no SM can hold more than ceil(blocks / SMs) of them.
// Why: with programmatic dependent launch (pdl.cuh) the next kernel's blocks move into the slots
// an SM has spare while this grid runs, and wait there. A one-wave grid that leaves slots spare
// then hands the next grid an uneven start. Measured (H200, same calls): conv + bias + SiLU
// [515,3328,1], 48 registers (5 blocks fit an SM, the grid needs 4), 6.27 -> 5.41 us cold and
// 4.77 -> 4.08 hot; the plain conv (4 fit) unchanged. The mechanism is inferred: a probe
// (scripts/probes/block_placement.cu: blocks of a lone grid record their SM) found them placed
// breadth-first (192 blocks on 132 SMs, at most 2 on one). On the sequential scans and decode it changed
// nothing, and on Mamba-2 decode v2 hot it cost 0.14 us, so only the conv tiles use it.
// SSMKIT_CUDA_SPREAD=0 turns the cap off, for measurements.
size_t smem_to_spread(const void* fn, int threads, size_t smem, int64_t blocks);

void conv_launch(const conv_args& a, cudaStream_t stream);

// Which kernel a scan would run; exposed so the backend can report its NMSE bound and tests can
// check the dispatch.
enum class scan_kernel { decode, sequential, chunked, generic };
scan_kernel choose_scan_kernel(const scan_shape& sh, scan_path path, bool have_ssd_workspace);

void scan_launch(const scan_args& a, cudaStream_t stream, scan_path path, ssd_workspace* ws);

// The individual scan families (scan_seq.cu, scan_mamba1.cu, scan_decode.cu, scan_generic.cu).
// Each returns false when its fast path cannot take the arguments (size or alignment), queueing
// nothing; scan_generic_launch takes everything.
bool scan_decode_launch(const scan_args& a, cudaStream_t stream);
bool scan_seq_launch(const scan_args& a, cudaStream_t stream);       // Mamba-2, T >= 1
bool scan_mamba1_launch(const scan_args& a, cudaStream_t stream);    // Mamba-1, T >= 1
void scan_generic_launch(const scan_args& a, cudaStream_t stream);

}  // namespace ssmkit::cuda
