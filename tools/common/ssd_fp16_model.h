// A CPU model of the CUDA chunked (SSD) scan's arithmetic: the chunk algorithm of
// docs/perf-ssd-notes.md with each operand of the tensor-core products rounded to fp16 (or not),
// fp32 where the kernels keep fp32, everything else in double. It predicts the path's error
// without a GPU (on ops_property_test's worst case the model of the v8 walk gave NMSE 6.193e-7,
// the H200 6.185e-7, before v8 kept its diagonal blocks' C B^T error) and says which rounding
// dominates.
#pragma once

#include <vector>

#include "harness.h"

namespace ssmkit::harness {

// Which operands are rounded to fp16 (all, as the v8 walk does, by default).
struct fp16_rounding {
    bool B = true;      // B in C B^T
    bool B_state = true;   // B in the state update (and the kept states)
    bool C = true;      // C in C B^T
    bool C_state = true;   // C in C S_in
    bool S = true;      // the incoming state in C S_in
    bool M = true;      // the masked, decayed C B^T (the operand multiplying x)
    bool x = true;      // x in M x
    bool xw = true;     // x delta exp(cum_last - cum) in the state update
    bool cb = true;     // C B^T stored as fp16 before its decay, off the diagonal 16 x 16 blocks (v8;
                        // v11 keeps it in fp32)
    bool cb_diag = true;   // and on them (v8 unless SSMKIT_SSD_CB_LO=1 keeps their rounding error)
    bool f32 = true;    // what the kernels keep in fp32: dt's softplus and cumulative sum, the state,
                        // the stored products (off: all double, so the chunk algorithm itself is checked)
    static fp16_rounding none() { return {false, false, false, false, false, false, false, false, false, false, false}; }
};

// True when the model handles the case: Mamba-2 (any number K of kept states).
bool fp16_model_supports(const scan_case& sc);

// The flat output (y, then the K kept states) of the modelled chunked scan. Throws
// ssmkit::error when !fp16_model_supports(sc).
std::vector<float> fp16_model_scan(const scan_case& sc, const scan_inputs& in, const fp16_rounding& r);

}  // namespace ssmkit::harness
