// Factories of the compiled backends; the registry is their only caller.
#pragma once

#include <memory>
#include <string>

#include "ssmkit/backend.h"

namespace ssmkit {

std::unique_ptr<backend> make_cpu_ref_backend(const backend_options& opts);
std::unique_ptr<backend> make_cpu_backend(const backend_options& opts);
#ifdef SSMKIT_HAVE_CUDA
std::unique_ptr<backend> make_cuda_backend(const backend_options& opts);
// "" when a usable CUDA device is present, otherwise why not.
std::string cuda_unavailable_reason();
#endif

}  // namespace ssmkit
