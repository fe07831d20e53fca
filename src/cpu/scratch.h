// Per-thread working memory for the kernels (transposed tiles, per-token factors). Kept across
// ops so a decode loop does not allocate.
#pragma once

#include <cstddef>

namespace ssmkit::cpu {

// At least `floats` floats, 64-byte aligned, owned by the calling thread; valid until its next call.
float* thread_scratch(size_t floats);

}  // namespace ssmkit::cpu
