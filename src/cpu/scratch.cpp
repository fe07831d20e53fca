#include "cpu/scratch.h"

#include <cstdlib>
#include <memory>
#include <new>

namespace ssmkit::cpu {

float* thread_scratch(size_t floats) {
    struct freer {
        void operator()(float* p) const { std::free(p); }
    };
    thread_local std::unique_ptr<float, freer> buf;
    thread_local size_t cap = 0;
    if (floats > cap) {
        // Grow geometrically; 64 spare floats let kernels read a full vector past the end.
        const size_t want = (floats + floats / 2 + 64 + 15) & ~size_t(15);
        buf.reset(static_cast<float*>(std::aligned_alloc(64, want * sizeof(float))));
        if (!buf) throw std::bad_alloc();
        cap = want - 64;
    }
    return buf.get();
}

}  // namespace ssmkit::cpu
