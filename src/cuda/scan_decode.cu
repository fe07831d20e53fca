// Decode scans (one token): memory-bound. granite-4.0-h-1b at 64 sequences moves 201 MB (state
// read + written once); the floor is that over the copy bandwidth, so the kernel only has to keep
// enough 16-byte loads in flight and touch nothing twice.
#include <cstdlib>

#include "cuda/scan_common.h"

namespace ssmkit::cuda {
namespace {

template <int N, bool M1>
bool launch_decode(const scan_params& p, cudaStream_t stream) {
    constexpr int LPR = N / 4;
    constexpr int ROWS_PER_PASS = 256 / LPR;
    const int64_t rows = int64_t(p.P) * p.H * p.S;
    const int sms = info_for_current_device().sm_count;
    // One row per thread measured best at every size (notes, run 2): at 64 sequences 73.7 us
    // (92.9% of the copy line) vs 74.4 with 2 rows and 78.5 with 4 (80 registers: 3 blocks/SM).
    // SSMKIT_CUDA_DECODE_RPT (1, 2, 4) overrides, for measurements.
    (void)sms;
    int rpt = 1;
    if (const char* e = std::getenv("SSMKIT_CUDA_DECODE_RPT")) rpt = std::atoi(e) == 2 ? 2 : std::atoi(e) == 4 ? 4 : 1;
    const int64_t blocks = (rows + ROWS_PER_PASS * rpt - 1) / (ROWS_PER_PASS * rpt);
    if (blocks > INT32_MAX) return false;
    const char* op = M1 ? "ssm_scan_decode_mamba1" : "ssm_scan_decode";
    if (rpt == 2) {
        note_kernel(op, N, 2, reinterpret_cast<const void*>(&scan_decode_kernel<N, M1, 2>), "scan_decode<rows2>");
        scan_decode_kernel<N, M1, 2><<<unsigned(blocks), 256, 0, stream>>>(p);
    } else if (rpt == 4) {
        note_kernel(op, N, 4, reinterpret_cast<const void*>(&scan_decode_kernel<N, M1, 4>), "scan_decode<rows4>");
        scan_decode_kernel<N, M1, 4><<<unsigned(blocks), 256, 0, stream>>>(p);
    } else {
        note_kernel(op, N, 1, reinterpret_cast<const void*>(&scan_decode_kernel<N, M1, 1>), "scan_decode<rows1>");
        scan_decode_kernel<N, M1, 1><<<unsigned(blocks), 256, 0, stream>>>(p);
    }
    check_launch("scan_decode");
    return true;
}

}  // namespace

bool scan_decode_launch(const scan_args& a, cudaStream_t stream) {
    if (a.shape.n_t != 1) return false;
    const scan_params p = make_scan_params(a);
    if (!states_aligned(p) || !al16(p.B) || !al16(p.C) || p.B_nb3 % 4 != 0 || p.C_nb3 % 4 != 0) return false;
    if (a.shape.mamba1) {
        if (p.N != 16 || !al16(p.A)) return false;
        return launch_decode<16, true>(p, stream);
    }
    switch (p.N) {
        case 16: return launch_decode<16, false>(p, stream);
        case 32: return launch_decode<32, false>(p, stream);
        case 64: return launch_decode<64, false>(p, stream);
        case 128: return launch_decode<128, false>(p, stream);
        default: return false;
    }
}

}  // namespace ssmkit::cuda
