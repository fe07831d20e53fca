// Which scan kernel runs. The chunked tensor-core path (scan_ssd.cu, issue 6) is tried first
// when asked for, or automatically for Mamba-2 prefills it supports from ssd_min_tokens() tokens
// on; everything it declines goes to the sequential kernels, and what those decline (odd sizes,
// misaligned views) to the generic kernel.
#include "cuda/launch.h"

#ifdef SSMKIT_HAVE_SSD
#include "cuda/scan_ssd.h"
#endif

namespace ssmkit::cuda {

scan_kernel choose_scan_kernel(const scan_shape& sh, scan_path path, bool have_ssd_workspace) {
#ifdef SSMKIT_HAVE_SSD
    if (!sh.mamba1 && have_ssd_workspace && path != scan_path::sequential && ssd_supports(sh) &&
        (path == scan_path::chunked || sh.n_t >= ssd_min_tokens()))
        return scan_kernel::chunked;
#else
    (void)path;
    (void)have_ssd_workspace;
#endif
    return sh.n_t == 1 ? scan_kernel::decode : scan_kernel::sequential;
}

void scan_launch(const scan_args& a, cudaStream_t stream, scan_path path, ssd_workspace* ws) {
    const scan_kernel k = choose_scan_kernel(a.shape, path, ws != nullptr);
#ifdef SSMKIT_HAVE_SSD
    // The dispatch point of the chunked path: false means "not handled, nothing queued".
    if (k == scan_kernel::chunked && ssd_scan_launch(a, stream, ws)) return;
#endif
    if (k == scan_kernel::decode && scan_decode_launch(a, stream)) return;
    if (a.shape.mamba1 ? scan_mamba1_launch(a, stream) : scan_seq_launch(a, stream)) return;
    scan_generic_launch(a, stream);
}

}  // namespace ssmkit::cuda
