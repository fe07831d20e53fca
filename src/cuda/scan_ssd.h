// Chunked (SSD, state-space duality) Mamba-2 prefill scan on tensor cores (issue 6).
//
// The CUDA backend's scan launcher calls ssd_scan_launch(); when it returns false the shape is
// not handled here and the caller runs the sequential kernel instead.
//
// Memory: the path needs a device workspace (fp16 B/C and C B^T tiles, per-head decay tables). Nothing is
// allocated inside ssd_scan_launch(): the backend owns one ssd_workspace, calls
// ssd_workspace_reserve() outside the timed/captured call whenever a shape may need more (it only
// grows; it synchronizes the device when it has to reallocate), and passes it to every launch.
// A launch whose workspace is too small returns false (falls back), never allocates.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "ssmkit/backend.h"
#include "ssmkit/ops.h"

struct ssd_workspace;

ssd_workspace* ssd_workspace_create();
void ssd_workspace_destroy(ssd_workspace* ws);
// Bytes of workspace a launch with this shape needs (0 when the shape is not handled).
size_t ssd_workspace_bytes(const ssmkit::scan_shape& sh);
// Grows ws to at least ssd_workspace_bytes(sh). Not stream-ordered: call it outside graph
// capture, before the launch. Returns false on allocation failure.
bool ssd_workspace_reserve(ssd_workspace* ws, const ssmkit::scan_shape& sh);

// True when the chunked path can take this shape (Mamba-2, supported d_state/head_dim, ...).
bool ssd_supports(const ssmkit::scan_shape& sh);
// Tokens per sequence from which the chunked path beats the sequential kernel (measured).
int64_t ssd_min_tokens();

// Queues the whole scan on `stream` (two kernels; no host sync, no allocation: graph capturable).
// Returns false, queueing nothing, if the shape is not supported or ws is too small. (If the
// second launch itself fails, the first kernel, which only writes the workspace, stays queued.)
// Precision: fp16 tensor-core operands, fp32 accumulation and state; NMSE bound 5e-7 over the
// flat output (docs/perf-ssd-notes.md).
bool ssd_scan_launch(const ssmkit::scan_args& a, cudaStream_t stream, ssd_workspace* ws);
