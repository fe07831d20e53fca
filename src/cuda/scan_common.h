// Host-side helpers shared by the scan launchers.
#pragma once

#include <cstdint>
#include <string>

#include "cuda/scan_kernels.cuh"
#include "ssmkit/backend.h"
#include "ssmkit/error.h"

namespace ssmkit::cuda {

inline int64_t floats_of(size_t nb, const char* what) {
    if (nb % 4 != 0) throw backend_error(std::string("cuda ssm_scan: stride of '") + what + "' is not a multiple of 4 bytes");
    return int64_t(nb / 4);
}

inline scan_params make_scan_params(const scan_args& a) {
    const scan_shape& sh = a.shape;
    scan_params p{};
    p.s = static_cast<const float*>(a.s.data);
    p.x = static_cast<const float*>(a.x.data);
    p.dt = static_cast<const float*>(a.dt.data);
    p.A = static_cast<const float*>(a.A.data);
    p.B = static_cast<const float*>(a.B.data);
    p.C = static_cast<const float*>(a.C.data);
    p.ids = static_cast<const int32_t*>(a.ids.data);
    p.out = static_cast<float*>(a.out.data);
    if (sh.d_state > INT32_MAX || sh.head_dim > INT32_MAX || sh.n_head > INT32_MAX || sh.n_t > INT32_MAX ||
        sh.n_seqs > INT32_MAX)
        throw backend_error("cuda ssm_scan: a size exceeds 2^31");
    p.N = int(sh.d_state);
    p.P = int(sh.head_dim);
    p.H = int(sh.n_head);
    p.G = int(sh.n_group);
    p.T = int(sh.n_t);
    p.S = int(sh.n_seqs);
    p.K = int(sh.n_keep);
    p.mamba1 = sh.mamba1 ? 1 : 0;
    p.n_slots = sh.n_slots;
    // Strides of dimensions of size 1 are never used; taking them as 0 keeps alignment checks honest.
    p.x_nb2 = sh.n_t > 1 ? floats_of(a.x.nb[2], "x") : 0;
    p.x_nb3 = sh.n_seqs > 1 ? floats_of(a.x.nb[3], "x") : 0;
    p.B_nb2 = sh.n_t > 1 ? floats_of(a.B.nb[2], "B") : 0;
    p.B_nb3 = sh.n_seqs > 1 ? floats_of(a.B.nb[3], "B") : 0;
    p.C_nb2 = sh.n_t > 1 ? floats_of(a.C.nb[2], "C") : 0;
    p.C_nb3 = sh.n_seqs > 1 ? floats_of(a.C.nb[3], "C") : 0;
    return p;
}

inline bool al16(const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15u) == 0; }

// State loads and stores are float4: s and the output's state blocks must be 16-byte aligned.
inline bool states_aligned(const scan_params& p) {
    const float* states = p.out + int64_t(p.P) * p.H * p.T * p.S;
    return p.N % 4 == 0 && al16(p.s) && al16(states);
}

inline bool bc_aligned(const scan_params& p) {
    return al16(p.B) && al16(p.C) && p.B_nb2 % 4 == 0 && p.B_nb3 % 4 == 0 && p.C_nb2 % 4 == 0 && p.C_nb3 % 4 == 0;
}

}  // namespace ssmkit::cuda

#include <algorithm>

#include "cuda/check.h"
#include "cuda/kernel_registry.h"
#include "cuda/launch.h"

namespace ssmkit::cuda {

// Registers a specialization the first time it is asked for and logs its first use.
inline void note_kernel(const char* op, int width, int tile, const void* fn, const char* name) {
    auto& reg = kernel_registry::get();
    const kernel_key key{op, width, tile};
    const kernel_entry* e = reg.find(key);
    if (!e) {
        reg.add(key, fn, name);
        e = reg.find(key);
    }
    reg.note_use(key, *e);
}

inline int pow2_floor(int64_t v) {
    int r = 1;
    while (int64_t(r) * 2 <= v) r *= 2;
    return r;
}

// Launches the sequential kernel for rows_per_group rows that share a B/C group (Mamba-1) or a
// head (Mamba-2). R (rows per block) is the largest power of two that divides that span and fits
// 256 threads (RT rows per thread), halved while the grid would leave SMs idle.
template <int N, int E, bool M1, int RT = 1>
bool launch_seq(const scan_params& p, int64_t span, cudaStream_t stream, const char* op, const char* name) {
    constexpr int LPR = N / E;
    if (span % RT != 0) return false;
    int R = RT;
    while (R * 2 * LPR / RT <= 256 && span % (R * 2) == 0) R *= 2;
    const int64_t PH = int64_t(p.P) * p.H;
    const int sms = info_for_current_device().sm_count;
    while (R > RT && R * LPR / RT > 64 && (PH / R) * p.S < 2 * sms) R /= 2;
    const int DR = M1 ? R : 1;
    const int bytes_per_token = (2 * N + R + DR) * 4;
    int TT = std::clamp(pow2_floor(24576 / bytes_per_token), 2, 64);
    while (TT / 2 >= p.T && TT > 2) TT /= 2;
    const size_t smem = size_t(seq_smem{TT, R, DR, N}.total_floats()) * sizeof(float);
    const void* fn = reinterpret_cast<const void*>(&scan_seq_kernel<N, E, M1, RT>);
    note_kernel(op, N, E * RT, fn, name);
    if (smem > info_for_current_device().smem_optin) return false;
    if (smem > 48 * 1024)
        check(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
              "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
    const int vec = bc_aligned(p) ? 1 : 0;
    if (p.S > 65535) return false;  // grid.y limit; the generic kernel takes it
    const dim3 grid(unsigned(PH / R), unsigned(p.S));
    launch_pdl(name, scan_seq_kernel<N, E, M1, RT>, grid, dim3(unsigned(R * LPR / RT)), smem, stream, p, R, TT, vec);
    return true;
}

}  // namespace ssmkit::cuda
