// SSM_CONV (and the fused conv + bias + SiLU) on CUDA.
//
// Bytes, not flops, set the floor: sx is read once and out written once (4 taps per output are
// ~8 flops per 8 bytes). Two kernels:
//  - decode (n_t = 1): one thread per (channel, sequence); for width 4 the window (d_conv-1+1 = 4
//    floats) and the filter are one 16-byte load each when the run-time alignment allows.
//  - tile (n_t > 1): a block copies a [channels x (tile + width - 1)] window of sx into shared
//    memory with time-fastest (coalesced) loads, then writes outputs channel-fastest (coalesced);
//    the shared copy is the transpose. The tile is the smallest power of two >= n_t, capped at
//    256, so short prompts do not pay for an empty 256-token tile.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>

#include "cuda/check.h"
#include "cuda/device_common.cuh"
#include "cuda/kernel_registry.h"
#include "cuda/knobs.h"
#include "cuda/launch.h"
#include "cuda/pdl.cuh"

namespace ssmkit::cuda {
namespace {

constexpr int kThreads = 256;

// Channels per block: enough outputs per block (>= 2048) to amortize the block's set-up, at least
// one warp of channels so every store instruction covers 128 contiguous bytes.
__host__ __device__ constexpr int channels_per_block(int tile) { return tile >= 64 ? 32 : 2048 / tile; }

struct conv_params {
    const float* sx;
    size_t seq_stride;  // floats between sequences of sx
    const float* c;
    const float* bias;
    float* out;
    int d_conv, n_t, d_inner, row;  // row = d_conv - 1 + n_t, floats per sx row
    int cc;                         // channels per block (tile kernel), <= channels_per_block(tile)
    int span;                       // tokens per block (tile kernel), <= tile
    int tiles_fast;                 // grid x walks token tiles (else channel groups)
};

// The fused op's bias of channel ch (0 for the plain conv). Loaded once per thread where a thread
// owns a channel: inside the store loop the load sat on every output's dependent chain.
template <bool FUSE>
__device__ __forceinline__ float bias_of(const conv_params& p, int ch) {
    if constexpr (FUSE) return __ldg(p.bias + ch);
    return 0.0f;
}

template <bool FUSE>
__device__ __forceinline__ float finish(float acc, float bias) {
    if constexpr (FUSE) return silu_f(acc + bias);
    return acc;
}

// Long tiles (>= 64 tokens, 32 channels, width known): the block's span is walked in sub-tiles
// of SUBW - (W - 1) tokens whose windows (32 channels x SUBW floats) pass through shared memory
// one at a time, with the next sub-tile's loads in registers while this one is computed and
// stored. Loading the whole span first and storing it after meant every block read, then wrote,
// in step with all the others (one wave), so DRAM saw reads and writes in turns.
// SUBW = 128: each load round reads pieces of up to 512 bytes of 32 sx rows (a 256-token span:
// three rounds of 89 floats, 356 bytes). With 64 (up to 256-byte pieces, the previous default)
// the large shapes stayed at ~78% of the H200's copy line; 128 measured 87% on [4099,3328,1]
// (33.1 -> 29.8 us) and 65% on [515,3328,1] (5.47 -> 5.01 us cold), same call.
// SSMKIT_CUDA_CONV_SUBW=64 selects the previous window for 256-token tiles of width 4 (its own
// kernel), for measurements. Also measured and dropped: 131 (spans of 256 in 2 rounds of 128)
// and 259 (one round): [4099] 29.9 / 29.8 us, equal; [515 x 8] 30.6 / 30.7 vs 30.0; [515] with
// bias + SiLU 6.8 / 8.1 vs 5.4.
constexpr int kSubWindowDefault = 128;
constexpr int kLongChannels = 32;
// Floats per row of a window in shared memory: whole 32-float load chunks, plus one so that the
// pitch is odd (32 channels at one token hit 32 banks).
__host__ __device__ constexpr int sub_chunks(int subw) { return (subw + 31) / 32; }
__host__ __device__ constexpr int sub_pitch(int subw) { return sub_chunks(subw) * 32 + 1; }

template <int W, bool FUSE, int SUBW>
__device__ __forceinline__ void conv_long_tile(const conv_params& p, float* win) {
    constexpr int kSubPitch = sub_pitch(SUBW);
    constexpr int WARPS = kThreads / 32;
    constexpr int ROWS = kLongChannels / WARPS;   // channel rows each warp loads
    constexpr int CHUNKS = sub_chunks(SUBW);
    constexpr int SUB = SUBW - (W - 1);           // tokens per sub-tile
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int c0 = (p.tiles_fast ? blockIdx.y : blockIdx.x) * kLongChannels;
    const int t0 = (p.tiles_fast ? blockIdx.x : blockIdx.y) * p.span;
    const int s = blockIdx.z;
    const float* base = p.sx + size_t(s) * p.seq_stride + size_t(c0) * p.row + t0;
    const int nc = min(kLongChannels, p.d_inner - c0);
    const int nt_block = min(p.span, p.n_t - t0);
    // Rounds of equal length: a span of 256 in sub-tiles of up to 125 tokens is 86 + 85 + 85, not
    // 125 + 125 + 6 (a nearly empty last round costs a whole round trip).
    const int rounds = (nt_block + SUB - 1) / SUB;
    const int sub = (nt_block + rounds - 1) / rounds;

    float v[ROWS][CHUNKS];
    auto load = [&](int ts) {  // the window of the sub-tile starting ts tokens into the span
        const int need = min(sub, nt_block - ts) + W - 1;
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            const int cc = warp + r * WARPS;
#pragma unroll
            for (int q = 0; q < CHUNKS; ++q) {
                const int j = q * 32 + lane;
                v[r][q] = (cc < nc && j < need) ? __ldg(base + size_t(cc) * p.row + ts + j) : 0.0f;
            }
        }
    };

    const int cc = tid % 32, ch = c0 + cc;   // the channel this thread computes
    float f[W];
#pragma unroll
    for (int k = 0; k < W; ++k) f[k] = cc < nc ? __ldg(p.c + size_t(ch) * W + k) : 0.0f;
    const float bias = cc < nc ? bias_of<FUSE>(p, ch) : 0.0f;
    float* out = p.out + (size_t(s) * p.n_t + t0) * p.d_inner + c0;

    load(0);
    for (int ts = 0; ts < nt_block; ts += sub) {
        __syncthreads();  // the previous sub-tile's reads of win are done
#pragma unroll
        for (int r = 0; r < ROWS; ++r)
#pragma unroll
            for (int q = 0; q < CHUNKS; ++q) win[(warp + r * WARPS) * kSubPitch + q * 32 + lane] = v[r][q];
        __syncthreads();
        if (ts + sub < nt_block) load(ts + sub);
        const int n_here = min(sub, nt_block - ts);
        if (cc < nc) {
            const float* wrow = win + cc * kSubPitch;
#pragma unroll 4
            for (int t = tid / 32; t < n_here; t += WARPS) {
                float acc = 0.0f;
#pragma unroll
                for (int k = 0; k < W; ++k) acc = fmaf(wrow[t + k], f[k], acc);
                out[size_t(ts + t) * p.d_inner + cc] = finish<FUSE>(acc, bias);
            }
        }
    }
}

// W = 0: width known only at run time.
template <int W, int TILE, bool FUSE, int SUBW = kSubWindowDefault>
__global__ void __launch_bounds__(kThreads) conv_tile_kernel(conv_params p) {
    pdl_begin();
    constexpr int CC = channels_per_block(TILE);  // the most channels a block may take
    extern __shared__ float win[];
    if constexpr (W > 0 && CC == kLongChannels) {
        conv_long_tile<W, FUSE, SUBW>(p, win);
        return;
    }
    // Fewer channels per block when the grid would otherwise leave SMs short of blocks (each
    // block loads, then computes and stores: overlap comes only from other resident blocks).
    const int ccb = CC <= kThreads ? p.cc : CC;
    const int w = W > 0 ? W : p.d_conv;
    const int span = p.span;      // tokens of this block: TILE, or less when the launcher balances SMs
    const int seg = span + w - 1;  // floats of one channel's window
    // An odd pitch makes a warp's reads of 32 channels at the same token hit 32 distinct banks.
    const int pitch = seg | 1;

    const int c0 = (p.tiles_fast ? blockIdx.y : blockIdx.x) * ccb;
    const int t0 = (p.tiles_fast ? blockIdx.x : blockIdx.y) * span;
    const int s = blockIdx.z;
    const float* base = p.sx + size_t(s) * p.seq_stride + size_t(c0) * p.row + t0;
    const int nc = min(ccb, p.d_inner - c0);
    const int seg_valid = min(seg, p.row - t0);
    const int tid = threadIdx.x;

    if constexpr (W > 0) {
        // Compile-time trip count and divisor: all loads are issued before the first store, so
        // each thread keeps ~ITERS loads in flight.
        constexpr int SEG = TILE + W - 1;
        constexpr int ITERS = (CC * SEG + kThreads - 1) / kThreads;
        float v[ITERS];
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            const int j = tid + it * kThreads;
            const int cc = j / SEG, k = j - cc * SEG;
            v[it] = (j < ccb * SEG && cc < nc && k < seg_valid) ? __ldg(base + size_t(cc) * p.row + k) : 0.0f;
        }
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            const int j = tid + it * kThreads;
            const int cc = j / SEG, k = j - cc * SEG;
            if (j < ccb * SEG) win[cc * pitch + k] = v[it];
        }
    } else {
#pragma unroll 4
        for (int j = tid; j < ccb * seg; j += kThreads) {
            const int cc = j / seg, k = j - cc * seg;
            win[cc * pitch + k] = (cc < nc && k < seg_valid) ? __ldg(base + size_t(cc) * p.row + k) : 0.0f;
        }
    }
    __syncthreads();

    const int nt_here = min(span, p.n_t - t0);
    float* out = p.out + (size_t(s) * p.n_t + t0) * p.d_inner + c0;
    if constexpr (CC <= kThreads) {
        // Each thread owns one channel: its filter stays in registers.
        const int cc = tid & (ccb - 1);
        const int ch = c0 + cc;
        const int t_first = tid / ccb, t_step = kThreads / ccb;
        if (cc >= nc) return;
        const float bias = bias_of<FUSE>(p, ch);
        const float* wrow = win + cc * pitch;
        if constexpr (W > 0) {
            float f[W];
#pragma unroll
            for (int k = 0; k < W; ++k) f[k] = __ldg(p.c + size_t(ch) * W + k);
#pragma unroll 4
            for (int t = t_first; t < nt_here; t += t_step) {
                float acc = 0.0f;
#pragma unroll
                for (int k = 0; k < W; ++k) acc = fmaf(wrow[t + k], f[k], acc);
                out[size_t(t) * p.d_inner + cc] = finish<FUSE>(acc, bias);
            }
        } else {
            const float* f = p.c + size_t(ch) * w;
            for (int t = t_first; t < nt_here; t += t_step) {
                float acc = 0.0f;
                for (int k = 0; k < w; ++k) acc = fmaf(wrow[t + k], __ldg(f + k), acc);
                out[size_t(t) * p.d_inner + cc] = finish<FUSE>(acc, bias);
            }
        }
    } else {
        for (int j = tid; j < CC * nt_here; j += kThreads) {
            const int cc = j % CC, t = j / CC;
            if (cc >= nc) continue;
            const int ch = c0 + cc;
            const float* wrow = win + cc * pitch;
            const float* f = p.c + size_t(ch) * w;
            float acc = 0.0f;
            for (int k = 0; k < w; ++k) acc = fmaf(wrow[t + k], __ldg(f + k), acc);
            out[size_t(t) * p.d_inner + cc] = finish<FUSE>(acc, bias_of<FUSE>(p, ch));
        }
    }
}

// n_t = 1: a thread per (channel, sequence); consecutive threads take consecutive channels, so the
// output store is coalesced and each warp reads 32 adjacent windows (contiguous for width 4).
template <bool VEC4, bool FUSE>
__global__ void __launch_bounds__(kThreads) conv_decode_kernel(conv_params p, int n_s) {
    pdl_begin();
    const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    if (i >= int64_t(p.d_inner) * n_s) return;
    const int ch = int(i % p.d_inner);
    const int64_t s = i / p.d_inner;
    const float* row = p.sx + size_t(s) * p.seq_stride + size_t(ch) * p.row;
    float acc;
    if constexpr (VEC4) {
        const float4 x = __ldg(reinterpret_cast<const float4*>(row));
        const float4 f = __ldg(reinterpret_cast<const float4*>(p.c) + ch);
        acc = fmaf(x.w, f.w, fmaf(x.z, f.z, fmaf(x.y, f.y, x.x * f.x)));
    } else {
        acc = 0.0f;
        for (int k = 0; k < p.d_conv; ++k) acc = fmaf(__ldg(row + k), __ldg(p.c + size_t(ch) * p.d_conv + k), acc);
    }
    p.out[size_t(s) * p.d_inner + ch] = finish<FUSE>(acc, bias_of<FUSE>(p, ch));
}

// Any width, no shared memory: for filters so wide that a tile's window would not fit.
template <bool FUSE>
__global__ void __launch_bounds__(kThreads) conv_naive_kernel(conv_params p, int n_s) {
    pdl_begin();
    const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    const int64_t per_seq = int64_t(p.d_inner) * p.n_t;
    if (i >= per_seq * n_s) return;
    const int64_t s = i / per_seq;
    const int64_t r = i - s * per_seq;
    const int t = int(r / p.d_inner), ch = int(r % p.d_inner);
    const float* row = p.sx + size_t(s) * p.seq_stride + size_t(ch) * p.row + t;
    float acc = 0.0f;
    for (int k = 0; k < p.d_conv; ++k) acc = fmaf(__ldg(row + k), __ldg(p.c + size_t(ch) * p.d_conv + k), acc);
    p.out[size_t(i)] = finish<FUSE>(acc, bias_of<FUSE>(p, ch));
}

const char* op_name(bool fuse) { return fuse ? "ssm_conv_bias_silu" : "ssm_conv"; }

template <int W, int TILE, bool FUSE>
void add_tile(kernel_registry& r) {
    r.add({op_name(FUSE), W, TILE}, reinterpret_cast<const void*>(&conv_tile_kernel<W, TILE, FUSE>),
          "conv_tile<w" + std::to_string(W) + ",t" + std::to_string(TILE) + (FUSE ? ",bias_silu>" : ">"));
}

template <int W, bool FUSE>
void add_tiles(kernel_registry& r) {
    add_tile<W, 2, FUSE>(r);
    add_tile<W, 4, FUSE>(r);
    add_tile<W, 8, FUSE>(r);
    add_tile<W, 16, FUSE>(r);
    add_tile<W, 32, FUSE>(r);
    add_tile<W, 64, FUSE>(r);
    add_tile<W, 128, FUSE>(r);
    add_tile<W, 256, FUSE>(r);
}

// Registry keys: tile = 1 for the decode kernels (width 4 = the vectorized one), tile = 0 for the
// naive fallback.
void register_conv_kernels() {
    static std::once_flag once;
    std::call_once(once, [] {
        auto& r = kernel_registry::get();
        add_tiles<4, false>(r);
        add_tiles<4, true>(r);
        add_tiles<0, false>(r);
        add_tiles<0, true>(r);
        r.add({"ssm_conv", 4, 1}, reinterpret_cast<const void*>(&conv_decode_kernel<true, false>), "conv_decode<w4,vec4>");
        r.add({"ssm_conv_bias_silu", 4, 1}, reinterpret_cast<const void*>(&conv_decode_kernel<true, true>),
              "conv_decode<w4,vec4,bias_silu>");
        r.add({"ssm_conv", 0, 1}, reinterpret_cast<const void*>(&conv_decode_kernel<false, false>), "conv_decode<any>");
        r.add({"ssm_conv_bias_silu", 0, 1}, reinterpret_cast<const void*>(&conv_decode_kernel<false, true>),
              "conv_decode<any,bias_silu>");
        r.add({"ssm_conv", 0, 0}, reinterpret_cast<const void*>(&conv_naive_kernel<false>), "conv_naive");
        r.add({"ssm_conv_bias_silu", 0, 0}, reinterpret_cast<const void*>(&conv_naive_kernel<true>),
              "conv_naive<bias_silu>");
    });
}

// The measurement knob SSMKIT_CUDA_CONV_SUBW: (window, kernel) for 256-token tiles of width 4;
// the registry's kernel (window kSubWindowDefault) unless the knob names another.
std::pair<int, const void*> window_variant(bool fuse) {
    static const int w = knob_int("SSMKIT_CUDA_CONV_SUBW", kSubWindowDefault);
    auto pick = [&](auto plain, auto fused) {
        return fuse ? reinterpret_cast<const void*>(fused) : reinterpret_cast<const void*>(plain);
    };
    switch (w) {
        case 64: return {64, pick(&conv_tile_kernel<4, 256, false, 64>, &conv_tile_kernel<4, 256, true, 64>)};
        default: return {kSubWindowDefault, nullptr};
    }
}

int tile_for(int64_t n_t) {
    int t = 1;
    while (t < n_t && t < 256) t *= 2;
    return t;
}

constexpr int64_t kMaxGridYZ = 65535;

// Tokens per block for a long tile. ceil(n_t / tile) equal spans is the fewest blocks; with few
// blocks per SM the largest share decides the time (515 tokens x 3328 channels: 3 spans x 104
// channel groups = 312 blocks, 2.4 per SM on 132 SMs, so some SMs move 3 blocks' bytes while the
// average is 2.4). More, shorter spans can even the shares out; each span re-reads width - 1
// tokens of halo, so the score is balance x useful fraction of the reads.
// SSMKIT_CUDA_CONV_SPAN=tile turns balancing off, for measurements.
int span_for(int64_t n_t, int tile, int64_t blocks_per_span, int64_t d_conv, int sms) {
    if (tile < 64) return tile;
    static const bool unbalanced = knob_is("SSMKIT_CUDA_CONV_SPAN", "tile");
    if (unbalanced) return tile;
    const int64_t fewest = (n_t + tile - 1) / tile;
    int64_t best_spans = fewest;
    double best = -1;
    for (int64_t spans = fewest; spans <= 4 * fewest; ++spans) {
        const int64_t span = (n_t + spans - 1) / spans;
        if (span < 32 || spans > kMaxGridYZ) break;
        const int64_t blocks = ((n_t + span - 1) / span) * blocks_per_span;
        const int64_t per_sm = (blocks + sms - 1) / sms;
        const double balance = double(blocks) / double(per_sm * sms);
        const double useful = double(span) / double(span + d_conv - 1);
        if (balance * useful > best + 1e-3) {
            best = balance * useful;
            best_spans = spans;
        }
    }
    return int((n_t + best_spans - 1) / best_spans);
}

}  // namespace

void conv_launch(const conv_args& a, cudaStream_t stream) {
    register_conv_kernels();
    auto& reg = kernel_registry::get();
    const conv_shape& sh = a.shape;
    if (sh.d_inner * sh.n_t >= INT32_MAX || sh.d_conv - 1 + sh.n_t >= INT32_MAX)
        throw backend_error("cuda ssm_conv: a sequence of more than 2^31 elements is not supported");
    conv_params p{};
    p.sx = static_cast<const float*>(a.sx.data);
    p.seq_stride = sh.n_s > 1 ? a.sx.nb[2] / 4 : 0;
    p.c = static_cast<const float*>(a.c.data);
    p.bias = a.fuse_bias_silu ? static_cast<const float*>(a.bias.data) : nullptr;
    p.out = static_cast<float*>(a.out.data);
    p.d_conv = int(sh.d_conv);
    p.n_t = int(sh.n_t);
    p.d_inner = int(sh.d_inner);
    p.row = int(sh.d_conv - 1 + sh.n_t);
    const char* op = op_name(a.fuse_bias_silu);
    if (a.sx.nb[2] % 4 != 0) throw backend_error("cuda ssm_conv: sx nb[2] is not a multiple of 4 bytes");

    if (sh.n_t == 1) {
        const bool vec = sh.d_conv == 4 && aligned16(p.sx) && (p.seq_stride % 4 == 0) && aligned16(p.c);
        const kernel_key key{op, vec ? 4 : 0, 1};
        const kernel_entry* e = reg.find(key);
        reg.note_use(key, *e);
        const int64_t n = sh.d_inner * sh.n_s;
        const dim3 grid(unsigned((n + kThreads - 1) / kThreads));
        int n_s = int(sh.n_s);
        void* args[] = {&p, &n_s};
        launch_pdl(e->name.c_str(), e->fn, grid, dim3(kThreads), 0, stream, args);
        return;
    }

    const int tile = tile_for(sh.n_t);
    // 32 channels (128-byte output segments per token) measured best at every size, even where
    // the grid is short of blocks: 16 and 8 leave 64- and 32-byte segments (notes, run 2).
    const int cc = channels_per_block(tile);
    p.cc = cc;
    const unsigned groups = unsigned((sh.d_inner + cc - 1) / cc);
    p.span = span_for(sh.n_t, tile, int64_t(groups) * sh.n_s, sh.d_conv, info_for_current_device().sm_count);
    // SSMKIT_CUDA_CONV_ORDER=tiles: consecutive blocks take consecutive token tiles of the same
    // channels (longer contiguous reads, scattered writes), for measurements.
    static const bool tiles_fast = knob_is("SSMKIT_CUDA_CONV_ORDER", "tiles");
    p.tiles_fast = tiles_fast;
    const bool long_tile = sh.d_conv == 4 && channels_per_block(tile) == kLongChannels;
    const std::pair<int, const void*> window =
        long_tile && tile == 256 ? window_variant(a.fuse_bias_silu) : std::pair<int, const void*>{kSubWindowDefault, nullptr};
    size_t smem = long_tile ? size_t(kLongChannels) * sub_pitch(window.first) * sizeof(float)
                            : size_t(cc) * ((p.span + sh.d_conv - 1) | 1) * sizeof(float);
    const size_t smem_limit = info_for_current_device().smem_optin;
    if (smem > smem_limit) {
        const kernel_key key{op, 0, 0};
        const kernel_entry* e = reg.find(key);
        reg.note_use(key, *e);
        const int64_t n = sh.d_inner * sh.n_t * sh.n_s;
        int n_s = int(sh.n_s);
        void* args[] = {&p, &n_s};
        launch_pdl(e->name.c_str(), e->fn, dim3(unsigned((n + kThreads - 1) / kThreads)), dim3(kThreads), 0, stream, args);
        return;
    }
    const kernel_key key{op, sh.d_conv == 4 ? 4 : 0, tile};
    const kernel_entry* e = reg.find(key);
    reg.note_use(key, *e);
    const void* fn = window.second ? window.second : e->fn;
    const int64_t tiles = (sh.n_t + p.span - 1) / p.span;
    if (tiles > kMaxGridYZ) throw backend_error("cuda ssm_conv: n_t too large for one launch");
    // One launch's blocks (the first, when sequences take several launches) spread over the SMs.
    smem = smem_to_spread(fn, kThreads, smem, int64_t(groups) * tiles * std::min<int64_t>(sh.n_s, kMaxGridYZ));
    if (smem > 48 * 1024)
        check(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
              "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
    // Sequences beyond the grid's z limit go in further launches with the pointers moved on.
    for (int64_t s0 = 0; s0 < sh.n_s; s0 += kMaxGridYZ) {
        const int64_t ns = std::min<int64_t>(kMaxGridYZ, sh.n_s - s0);
        conv_params q = p;
        q.sx += size_t(s0) * p.seq_stride;
        q.out += size_t(s0) * sh.n_t * sh.d_inner;
        void* args[] = {&q};
        const dim3 grid = p.tiles_fast ? dim3(unsigned(tiles), groups, unsigned(ns)) : dim3(groups, unsigned(tiles), unsigned(ns));
        if (p.tiles_fast && groups > kMaxGridYZ) throw backend_error("cuda ssm_conv: too many channels for tile order");
        launch_pdl(e->name.c_str(), fn, grid, dim3(kThreads), smem, stream, args);
    }
}

}  // namespace ssmkit::cuda
