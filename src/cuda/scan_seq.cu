// Mamba-2 sequential scan (prefill, and decode shapes the decode kernel declines).
//
// Floor for granite-4.0-h-1b (N 128, P 64, H 48) at 512 tokens: ~16 MB moved (5 us at 3 TB/s) but
// 201M state-element updates of ~5 issued instructions each over 32 lanes: ~33M warp
// instructions, ~36 us of issue at 1.75 GHz on 132 SMs. Issue-bound: the design keeps per-element
// work to one FMUL + two FFMA by sharing delta, exp(delta*A) and B/C through shared memory.
#include "cuda/knobs.h"
#include "cuda/scan_common.h"

namespace ssmkit::cuda {
namespace {
bool seq_one_row() {
    static const bool v = knob_is("SSMKIT_CUDA_SEQ", "rows1");
    return v;
}
}  // namespace

bool scan_seq_launch(const scan_args& a, cudaStream_t stream) {
    if (a.shape.mamba1) return false;
    const scan_params p = make_scan_params(a);
    if (!states_aligned(p)) return false;
    const char* op = "ssm_scan_seq";
    switch (p.N) {
        case 16: return launch_seq<16, 4, false>(p, p.P, stream, op, "scan_seq<N16,E4>");
        case 32: return launch_seq<32, 4, false>(p, p.P, stream, op, "scan_seq<N32,E4>");
        case 64: return launch_seq<64, 4, false>(p, p.P, stream, op, "scan_seq<N64,E4>");
        case 128:
            // 2 rows per thread (4 states each) halve the shared-memory reads of B and C per state
            // element; SSMKIT_CUDA_SEQ=rows1 selects the one-row kernel (8 states), for measurements.
            if (seq_one_row()) return launch_seq<128, 8, false>(p, p.P, stream, op, "scan_seq<N128,E8>");
            if (launch_seq<128, 4, false, 2>(p, p.P, stream, op, "scan_seq<N128,E4,rows2>")) return true;
            return launch_seq<128, 8, false>(p, p.P, stream, op, "scan_seq<N128,E8>");
        case 256: return launch_seq<256, 8, false>(p, p.P, stream, op, "scan_seq<N256,E8>");
        default: return false;
    }
}

}  // namespace ssmkit::cuda
