#include "ssmkit/backend.h"

#include <chrono>

namespace ssmkit {

double backend::time_runs(const std::function<void(int)>& fn, int runs) {
    synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < runs; ++r) fn(r);
    synchronize();
    const auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::micro>(t1 - t0).count() / (runs > 0 ? runs : 1);
}

}  // namespace ssmkit
