// Decode scans (one token): memory-bound. granite-4.0-h-1b at 64 sequences moves 201 MB (state
// read + written once); the floor is that over the copy bandwidth, so the kernel only has to keep
// enough 16-byte loads in flight and touch nothing twice.
#include "cuda/knobs.h"
#include "cuda/scan_common.h"

namespace ssmkit::cuda {
namespace {

template <int N, bool M1>
bool launch_decode(const scan_params& p, cudaStream_t stream) {
    constexpr int LPR = N / 4;
    constexpr int ROWS_PER_PASS = 256 / LPR;
    const int64_t rows = int64_t(p.P) * p.H * p.S;
    // v1, used for Mamba-1 (a row per head: nothing to share per block) and, with
    // SSMKIT_CUDA_DECODE=v1, for Mamba-2 measurements. One row per thread measured best on the H100
    // (notes, run 2): at 64 sequences 73.7 us (92.9% of its copy line) vs 74.4 with 2 rows and 78.5
    // with 4. On the H200 the same kernel reaches 68%: see v2. SSMKIT_CUDA_DECODE_RPT (1, 2, 4)
    // overrides, for measurements.
    static const int rpt_knob = knob_int("SSMKIT_CUDA_DECODE_RPT", 1);
    const int rpt = rpt_knob == 2 || rpt_knob == 4 ? rpt_knob : 1;
    const int64_t blocks = (rows + ROWS_PER_PASS * rpt - 1) / (ROWS_PER_PASS * rpt);
    if (blocks > INT32_MAX) return false;
    const char* op = M1 ? "ssm_scan_decode_mamba1" : "ssm_scan_decode";
    if (rpt == 2) {
        note_kernel(op, N, 2, reinterpret_cast<const void*>(&scan_decode_kernel<N, M1, 2>), "scan_decode<rows2>");
        launch_pdl("scan_decode", scan_decode_kernel<N, M1, 2>, dim3(unsigned(blocks)), dim3(256), 0, stream, p);
    } else if (rpt == 4) {
        note_kernel(op, N, 4, reinterpret_cast<const void*>(&scan_decode_kernel<N, M1, 4>), "scan_decode<rows4>");
        launch_pdl("scan_decode", scan_decode_kernel<N, M1, 4>, dim3(unsigned(blocks)), dim3(256), 0, stream, p);
    } else {
        note_kernel(op, N, 1, reinterpret_cast<const void*>(&scan_decode_kernel<N, M1, 1>), "scan_decode<rows1>");
        launch_pdl("scan_decode", scan_decode_kernel<N, M1, 1>, dim3(unsigned(blocks)), dim3(256), 0, stream, p);
    }
    return true;
}

// v2 (Mamba-2): a block per RPW passes of rows of one (sequence, head). RPW = 2 measured best or
// within noise of the best at every size (H200, us, RPW 1 / 2 / 4 / 8: granite 1 x 1 3.05 / 2.82 /
// 3.01 / -, 1 x 8 - / 8.71 / 8.90 / 8.62, 1 x 64 - / 53.7 / 53.8 / 55.3; v1 2.94 / 10.61 / 71.1);
// 1 when the passes are odd. Forcing 8 blocks per SM on RPW 2 (32 registers, a small spill) was
// slower (1 x 64 56.0 us).
int decode2_rpw(const scan_params& p, int rpp) {
    const int passes = (p.P + rpp - 1) / rpp;
    static const int r = knob_int("SSMKIT_CUDA_DECODE_RPW", 0);   // measurement knob: 1, 2, 4 or 8
    if (r == 1 || r == 2 || r == 4 || r == 8) return r;
    return passes % 2 == 0 ? 2 : 1;
}

template <int N>
bool launch_decode2(const scan_params& p, cudaStream_t stream) {
    constexpr int RPP = 256 / (N / 4);
    const int rpw = decode2_rpw(p, RPP);
    const int bph = ((p.P + RPP - 1) / RPP + rpw - 1) / rpw;
    const int64_t blocks = int64_t(bph) * p.H * p.S;
    if (blocks > INT32_MAX) return false;
    auto go = [&](auto kernel, int r) {
        note_kernel("ssm_scan_decode2", N, r, reinterpret_cast<const void*>(kernel), "scan_decode2");
        launch_pdl("scan_decode2", kernel, dim3(unsigned(blocks)), dim3(256), 0, stream, p, bph);
    };
    switch (rpw) {
        case 8: go(scan_decode2_kernel<N, 8, 3>, 8); break;
        case 4: go(scan_decode2_kernel<N, 4, 0>, 4); break;
        case 2: go(scan_decode2_kernel<N, 2, 0>, 2); break;
        default: go(scan_decode2_kernel<N, 1, 0>, 1); break;
    }
    return true;
}

// Measurement knob: SSMKIT_CUDA_DECODE=v1 selects the one-row-per-thread Mamba-2 decode kernel.
bool decode_v1() {
    static const bool v = knob_is("SSMKIT_CUDA_DECODE", "v1");
    return v;
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
    if (!decode_v1()) {
        switch (p.N) {
            case 16: return launch_decode2<16>(p, stream);
            case 32: return launch_decode2<32>(p, stream);
            case 64: return launch_decode2<64>(p, stream);
            case 128: return launch_decode2<128>(p, stream);
            default: return false;
        }
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
