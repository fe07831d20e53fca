#pragma once

namespace ssmkit::testops {

// Single-precision FMA rate of this CPU in GFLOP/s (an FMA counts 2), all `threads` threads busy
// on ten independent chains each: the ceiling that prefill scans on the CPU are compared with.
double measure_fma_peak_gflops(int threads);

}  // namespace ssmkit::testops
