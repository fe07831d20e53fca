// Backend "cpu": the ops of cpu-ref in float32 with SIMD kernels (Highway, target picked at run
// time) and a persistent thread pool. This file cuts an op into tasks; kernels.h does the math.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/backend_factories.h"
#include "core/host_backend.h"
#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
#include "ssmkit/error.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ssmkit {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Below this much work per thread, waking another thread costs more than it saves.
constexpr int64_t kConvFloatsPerThread = 16 * 1024;
constexpr int64_t kScanElementsPerThread = 64 * 1024;
constexpr int64_t kTaskDiv = 8;  // chunked: about 8 tasks per thread (finer did not measure faster)
// Outputs at least this large go around the caches (non-temporal stores): about what the last
// level cache can hold for this op, beyond which the lines would be evicted before any reuse.
// Measured on the conv [515,3328] case (6.8 MB out): 1.2-1.5 ms streamed vs 1.8 ms cached.
constexpr double kStreamBytes = 4.0 * 1048576.0;

class cpu_backend final : public host_backend {
public:
    explicit cpu_backend(const backend_options& o)
        : threads_(o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency())),
          path_(o.scan),
          pool_(threads_) {}

    std::string name() const override { return "cpu"; }

    // Large buffers on 2 MiB boundaries, marked for transparent huge pages: the scan reads x and
    // writes y rows a token apart (P*H floats, 12-40 KB), one 4 KiB page per row, so with small
    // pages every row of a token block costs a TLB miss. Freed by host_backend::free (std::free).
    void* alloc(size_t bytes) override {
        constexpr size_t kHuge = size_t(2) << 20;
        if (bytes < kHuge) return host_backend::alloc(bytes);
        const size_t size = (bytes + 64 + kHuge - 1) / kHuge * kHuge;
        void* p = std::aligned_alloc(kHuge, size);
        if (!p) throw backend_error(name() + ": out of host memory allocating " + std::to_string(bytes) + " bytes");
#if defined(MADV_HUGEPAGE)
        madvise(p, size, MADV_HUGEPAGE);  // advice only: without it the buffer still works
#endif
        return p;
    }

    std::string description() const override {
        return std::string("Highway ") + cpu::simd_target_name() + " (run-time dispatch), " +
               std::to_string(threads_) + (threads_ == 1 ? " thread" : " threads");
    }

    void conv(const conv_args& a) override {
        const conv_shape& sh = a.shape;
        cpu::conv_geom g;
        g.row = sh.d_conv - 1 + sh.n_t;
        g.c = static_cast<const float*>(a.c.data);
        g.bias = a.fuse_bias_silu ? static_cast<const float*>(a.bias.data) : nullptr;
        g.d_conv = sh.d_conv;
        g.d_inner = sh.d_inner;
        g.stream_out = 4.0 * sh.d_inner * sh.n_t * sh.n_s >= kStreamBytes;

        const int64_t work = (sh.n_t + sh.d_conv) * sh.d_inner * sh.n_s;
        const int use = static_cast<int>(std::clamp<int64_t>(work / kConvFloatsPerThread, 1, threads_));
        // Tasks of about 16K floats (a few L1-sized tiles: per-task costs stay small for
        // decode), but at least 4 per thread so a slow thread does not hold up the rest.
        // Whole rows of sx per task when there are enough channels: a tile of 16 channel rows is
        // then one contiguous stretch of memory.
        const int64_t tile = cpu::kConvTileChannels;
        const int64_t total_tiles = ceil_div(sh.d_inner, tile);
        const int64_t tok_block = sh.n_s * total_tiles >= 8 * use ? sh.n_t : std::min<int64_t>(sh.n_t, 64);
        const int64_t tok_blocks = ceil_div(sh.n_t, tok_block);
        int64_t ch_tiles = std::max<int64_t>(1, 16 * 1024 / (tile * (tok_block + sh.d_conv)));
        const int64_t want_tasks = 4 * use;
        const int64_t per_seq = std::max<int64_t>(1, ceil_div(want_tasks, sh.n_s * tok_blocks));
        ch_tiles = std::min(ch_tiles, std::max<int64_t>(1, total_tiles / per_seq));
        const int64_t ch_block = ch_tiles * tile;
        const int64_t ch_blocks = ceil_div(sh.d_inner, ch_block);

        auto task = [&](int64_t id, int) {
            const int64_t s = id / (ch_blocks * tok_blocks);
            const int64_t r = id % (ch_blocks * tok_blocks);
            const int64_t cb = r / tok_blocks, tb = r % tok_blocks;
            cpu::conv_geom gs = g;
            gs.sx = a.sx.ptr<float>(0, 0, s);
            gs.out = a.out.ptr<float>(0, 0, s);
            cpu::conv_range(gs, cb * ch_block, std::min(sh.d_inner, (cb + 1) * ch_block), tb * tok_block,
                            std::min(sh.n_t, (tb + 1) * tok_block));
        };
        pool_.run(sh.n_s * ch_blocks * tok_blocks, use, task);
    }

    void scan(const scan_args& a) override {
        const scan_shape& sh = a.shape;
        cpu::scan_geom g;
        g.N = sh.d_state;
        g.P = sh.head_dim;
        g.H = sh.n_head;
        g.T = sh.n_t;
        g.K = sh.n_keep;
        g.heads_per_group = sh.n_head / sh.n_group;
        g.mamba1 = sh.mamba1;
        g.s = static_cast<const float*>(a.s.data);
        g.x = static_cast<const char*>(a.x.data);
        g.x_nb2 = a.x.nb[2];
        g.x_nb3 = a.x.nb[3];
        g.dt = static_cast<const float*>(a.dt.data);
        g.A = static_cast<const float*>(a.A.data);
        g.B = static_cast<const char*>(a.B.data);
        g.B_nb2 = a.B.nb[2];
        g.B_nb3 = a.B.nb[3];
        g.C = static_cast<const char*>(a.C.data);
        g.C_nb2 = a.C.nb[2];
        g.C_nb3 = a.C.nb[3];
        g.ids = static_cast<const int32_t*>(a.ids.data);
        g.y = static_cast<float*>(a.out.data);
        g.states = g.y + sh.y_elements();
        g.state_elements = sh.state_elements();
        g.stream_states = sh.n_t == 1 && 4.0 * sh.n_keep * sh.state_elements() >= kStreamBytes;

        const bool chunked = use_chunked(sh);
        const int64_t S = sh.n_seqs, H = sh.n_head, P = sh.head_dim;
        const int64_t work = sh.d_state * P * H * S * sh.n_t;
        const int use = static_cast<int>(std::clamp<int64_t>(work / kScanElementsPerThread, 1, threads_));

        // Tasks: (sequence, run of heads, run of rows). Whole heads when there are enough of
        // them (the per-token factors are computed once per head); otherwise split the rows, in
        // multiples of the chunked kernel's register tile.
        const int64_t want = 8 * use;
        const int64_t row_unit = chunked ? cpu::scan_chunked_rows() : 1;
        int64_t heads_per_task = 1, rows_per_task = P;
        if (S * H >= want) {
            // Chunked: a few heads per task share each token block's G and x/y rows, while
            // their states (N*P floats each) still fit in L2.
            heads_per_task = chunked ? std::clamp<int64_t>(S * H / (kTaskDiv * use), 1, std::min<int64_t>(H, 8))
                                     : std::min<int64_t>(H, std::max<int64_t>(1, S * H / want));
            // Decode: one contiguous run of heads per thread (a sequence's heads are contiguous in
            // s and in the output), the split ggml uses, instead of 8 tasks per thread claimed one
            // by one. Hot caches, 2 threads, Zen 4 VM, an in-process driver alternating the two
            // builds 8 rounds (best p5 / median of the medians / median of the means, us): granite
            // 1 x 1 23.5 / 28.6 / 30.6 -> 20.7 / 25.9 / 27.2; 1 x 8 and Nemotron-H 1 x 1 within noise.
            if (!chunked && sh.n_t == 1) heads_per_task = std::min<int64_t>(H, ceil_div(S * H, use));
        } else {
            const int64_t splits = std::min(ceil_div(P, row_unit), ceil_div(want, S * H));
            rows_per_task = ceil_div(ceil_div(P, splits), row_unit) * row_unit;
        }
        const int64_t head_runs = ceil_div(H, heads_per_task);
        const int64_t row_runs = ceil_div(P, rows_per_task);

        const float* gram = nullptr;
        if (chunked) {
            // G = C B^T per (sequence, group, token block), once for all heads of the group.
            const int64_t nblk = cpu::scan_gram_blocks(g), G = sh.n_group;
            gram_.resize(static_cast<size_t>(S * G * std::max<int64_t>(nblk, 1) * cpu::scan_gram_block_floats()));
            auto gtask = [&](int64_t id, int) {
                cpu::scan_gram(g, id / (G * nblk), (id / nblk) % G, id % nblk, gram_.data());
            };
            pool_.run(S * G * nblk, use, gtask);
            gram = gram_.data();
        }

        auto task = [&](int64_t id, int) {
            const int64_t q = id / (head_runs * row_runs);
            const int64_t r = id % (head_runs * row_runs);
            const int64_t h0 = (r / row_runs) * heads_per_task, p0 = (r % row_runs) * rows_per_task;
            const int64_t h1 = std::min(H, h0 + heads_per_task), p1 = std::min(P, p0 + rows_per_task);
            if (chunked) cpu::scan_chunked(g, q, h0, h1, p0, p1, gram);
            else cpu::scan_direct(g, q, h0, h1, p0, p1);
        };
        // One decode task per thread, pinned, when the states are small enough to stay in cache:
        // each thread then updates the same states every token and finds them in its core's L2
        // (granite: 0.8 MB in + 0.8 MB out per thread). Hot, 2 threads, Intel Xeon VM (2 MB L2),
        // 3 alternated rounds: granite 1 x 1 45-50 -> 23-29 us. Streamed states (>= 4 MiB, written
        // past the cache) gain nothing from it, and Nemotron-H 1 x 1 measured 149-159 -> 177-184.
        const int64_t n_tasks = S * head_runs * row_runs;
        if (!chunked && sh.n_t == 1 && !g.stream_states && n_tasks == use) pool_.run_pinned(use, task);
        else pool_.run(n_tasks, use, task);
    }

protected:
    int threads() const override { return threads_; }

private:
    bool use_chunked(const scan_shape& sh) const {
        if (sh.mamba1) return false;  // per-state decays: nothing to factor out
        switch (path_) {
            case scan_path::sequential: return false;
            case scan_path::chunked: return true;
            case scan_path::automatic: break;
        }
        // The chunked form pays a transposed copy of the state and per-block set-up (G, decay
        // matrix) per head; measured on granite shapes it wins from about 12 tokens on
        // (T=8: 500 vs 1000 us, T=16: 1080 vs 810 us, one thread). Rows must fill most of the
        // column tile.
        return sh.n_t >= 12 && sh.head_dim * 2 >= cpu::scan_chunked_rows();
    }

    int threads_;
    scan_path path_;
    std::vector<float> gram_;  // scratch of the chunked scan, kept between calls
    mutable cpu::thread_pool pool_;
};

}  // namespace

std::unique_ptr<backend> make_cpu_backend(const backend_options& opts) {
    return std::make_unique<cpu_backend>(opts);
}

}  // namespace ssmkit
