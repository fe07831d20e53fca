#include <algorithm>

#include "core/backend_factories.h"
#include "ssmkit/error.h"

namespace ssmkit {

std::vector<std::string> compiled_backends() {
    std::vector<std::string> names = {"cpu-ref"};
#ifdef SSMKIT_HAVE_CPU_FAST
    names.push_back("cpu");
#endif
#ifdef SSMKIT_HAVE_CUDA
    names.push_back("cuda");
#endif
    return names;
}

std::string backend_unavailable_reason(const std::string& name) {
    const auto all = compiled_backends();
    if (std::find(all.begin(), all.end(), name) == all.end()) {
        std::string list;
        for (const auto& n : all) list += (list.empty() ? "" : ", ") + n;
        if (name == "cuda") return "this build has no CUDA backend (configure with -DSSMKIT_CUDA=ON)";
        return "unknown backend '" + name + "' (built: " + list + ")";
    }
#ifdef SSMKIT_HAVE_CUDA
    if (name == "cuda") return cuda_unavailable_reason();
#endif
    return "";
}

std::vector<std::string> available_backends() {
    std::vector<std::string> out;
    for (const auto& n : compiled_backends())
        if (backend_unavailable_reason(n).empty()) out.push_back(n);
    return out;
}

std::unique_ptr<backend> make_backend(const std::string& name, const backend_options& opts) {
    const std::string why = backend_unavailable_reason(name);
    if (!why.empty()) throw backend_error("backend '" + name + "': " + why);
    if (name == "cpu-ref") return make_cpu_ref_backend(opts);
#ifdef SSMKIT_HAVE_CPU_FAST
    if (name == "cpu") return make_cpu_backend(opts);
#endif
#ifdef SSMKIT_HAVE_CUDA
    if (name == "cuda") return make_cuda_backend(opts);
#endif
    throw backend_error("backend '" + name + "': not constructible");
}

}  // namespace ssmkit
