// Mamba-1 scan (d_state 16, head_dim 1, A per state).
//
// Floor for 8192 channels x 512 tokens: ~51 MB (x, dt and y dominate: 17 us at 3 TB/s) and 67M
// state updates each needing an exp (MUFU: ~18 us at 16/clk/SM). A row is split over 4 lanes (4
// states each) so 32K threads keep the SMs busy; delta is computed once per (channel, token) in
// shared memory.
#include "cuda/scan_common.h"

namespace ssmkit::cuda {

bool scan_mamba1_launch(const scan_args& a, cudaStream_t stream) {
    if (!a.shape.mamba1) return false;
    const scan_params p = make_scan_params(a);
    if (p.N != 16 || p.P != 1 || !states_aligned(p) || !al16(p.A)) return false;
    // A block spans R channels of one B/C group.
    return launch_seq<16, 4, true>(p, p.H / p.G, stream, "ssm_scan_mamba1", "scan_seq<N16,E4,mamba1>");
}

}  // namespace ssmkit::cuda
