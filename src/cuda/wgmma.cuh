// Warpgroup matrix multiply (sm_90a wgmma) on fp16 operands in shared memory, fp32 accumulators
// in registers. Both operands are K-major tiles in the 128-byte swizzled layout: rows of 64
// halves (128 bytes) whose 16-byte pieces are permuted by XOR with the row index mod 8, tiles
// 1024-byte aligned; a K wider than 64 is stored as consecutive 64-column blocks of all rows.
// The accumulator of m64nN: warp w of the group holds rows 16 w + lane/4 (+8), and for each n8
// tile j columns 8 j + 2 (lane % 4) (+1), the mma.sync m16n8 layout: acc[4 j + e].
// The instructions exist only in sm_90a code; other passes (the portable compute_90 PTX) compile
// them to a trap, and the host selects the kernels that use them only where sm_90a code runs.
#pragma once

#include <cstdint>

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SSMKIT_WG_ASM(...) __trap()
#else
#define SSMKIT_WG_ASM(...) asm volatile(__VA_ARGS__)
#endif

namespace ssmkit::cuda::wg {

// Byte offset of element (row, k) in a swizzled K-major tile of `rows` rows.
__host__ __device__ constexpr uint32_t sw128_offset(uint32_t row, uint32_t k, uint32_t rows) {
    return (k / 64) * rows * 128 + row * 128 + ((((k % 64) / 8) ^ (row % 8)) * 16) + (k % 8) * 2;
}

// The same for a tile of one 64-column block (K <= 64), cheaper: no block term.
__host__ __device__ constexpr uint32_t sw128_offset_k64(uint32_t row, uint32_t k) {
    return row * 128 + ((((k >> 3) ^ row) & 7) << 4) + ((k & 7) << 1);
}

// Descriptor of a swizzled tile at smem address `tile` (1024-byte aligned), for its first 8-row
// groups and K columns [0, 16).
__device__ __forceinline__ uint64_t sw128_desc(uint32_t tile) {
    uint64_t d = (tile & 0x3FFFFu) >> 4;          // start address, 16-byte units
    d |= uint64_t(1) << 16;                       // leading-dimension offset: unused when swizzled
    d |= uint64_t(1024 >> 4) << 32;               // stride between 8-row groups: 1024 bytes
    d |= uint64_t(1) << 62;                       // 128-byte swizzle
    return d;
}
// The descriptor moved to rows [row0, ...) (a multiple of 8) and K columns [k0, k0 + 16) of a
// tile of `rows` rows: a byte offset added to the start address (no carry: shared-memory
// addresses stay below 2^18). Constant when its arguments are.
__host__ __device__ constexpr uint64_t sw128_step(uint32_t rows, uint32_t row0, uint32_t k0) {
    return uint64_t(((k0 / 64) * rows * 128 + row0 * 128 + (k0 % 64) * 2) >> 4);
}
__device__ __forceinline__ uint64_t sw128_desc(uint32_t tile, uint32_t rows, uint32_t row0, uint32_t k0) {
    return sw128_desc(tile) + sw128_step(rows, row0, k0);
}

// Orders this thread's register and shared-memory writes before the group's next wgmma.
__device__ __forceinline__ void fence() { SSMKIT_WG_ASM("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { SSMKIT_WG_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wait() { SSMKIT_WG_ASM("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
// Generic-proxy writes to shared memory (st.shared) become visible to wgmma's reads.
__device__ __forceinline__ void fence_smem_for_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Keeps the compiler from moving accumulator reads or writes across the asynchronous mma.
template <int R>
__device__ __forceinline__ void pin(float (&acc)[R]) {
#pragma unroll
    for (int i = 0; i < R; ++i) asm volatile("" : "+f"(acc[i])::"memory");
}

// acc (+)= A (64 x 16) * B^T (N x 16); accumulate = false overwrites.
__device__ __forceinline__ void mma_m64n16(float (&d)[8], uint64_t da, uint64_t db, bool accumulate) {
    SSMKIT_WG_ASM(
        "{\n .reg .pred p;\n setp.ne.b32 p, %10, 0;\n"
        " wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7}, %8, %9, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
        : "l"(da), "l"(db), "r"(int(accumulate)));
}
__device__ __forceinline__ void mma_m64n32(float (&d)[16], uint64_t da, uint64_t db, bool accumulate) {
    SSMKIT_WG_ASM(
        "{\n .reg .pred p;\n setp.ne.b32 p, %18, 0;\n"
        " wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15},"
        " %16, %17, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(da), "l"(db), "r"(int(accumulate)));
}
__device__ __forceinline__ void mma_m64n64(float (&d)[32], uint64_t da, uint64_t db, bool accumulate) {
    SSMKIT_WG_ASM(
        "{\n .reg .pred p;\n setp.ne.b32 p, %34, 0;\n"
        " wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(int(accumulate)));
}
// The same with A stored MN-major (rows of the tile along K, M contiguous: the transpose of
// the K-major layout), as a 128-byte-swizzled tile whose k-step starts 16 rows further.
__device__ __forceinline__ void mma_m64n64_mn_a(float (&d)[32], uint64_t da, uint64_t db, bool accumulate) {
    SSMKIT_WG_ASM(
        "{\n .reg .pred p;\n setp.ne.b32 p, %34, 0;\n"
        " wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(int(accumulate)));
}
template <int N>
__device__ __forceinline__ void mma_m64(float (&d)[N / 2], uint64_t da, uint64_t db, bool accumulate) {
    if constexpr (N == 16) mma_m64n16(d, da, db, accumulate);
    else if constexpr (N == 32) mma_m64n32(d, da, db, accumulate);
    else mma_m64n64(d, da, db, accumulate);
}


// The same with A (64 x 16) from registers, the m16n8k16 A-fragment layout per warp of the
// group (which is also the m64nN accumulator layout, so an accumulator converted to fp16 feeds
// the next product directly).
// A (64 x 16, registers) * B^T (N x 16, swizzled shared memory) into d; accumulate = false
// overwrites. A holds rows 16 w + lane/4 (+8), columns 2 (lane%4) (+1) and +8 (+9).
__device__ __forceinline__ void mma_rs_m64n64(float (&d)[32], const uint32_t (&a)[4], uint64_t db, bool accumulate) {
    SSMKIT_WG_ASM(
        "{\n .reg .pred p;\n setp.ne.b32 p, %37, 0;\n"
        " wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(int(accumulate)));
}
// The same with B stored MN-major (rows along K, N contiguous).
__device__ __forceinline__ void mma_rs_m64n64_mn_b(float (&d)[32], const uint32_t (&a)[4], uint64_t db, bool accumulate) {
    SSMKIT_WG_ASM(
        "{\n .reg .pred p;\n setp.ne.b32 p, %37, 0;\n"
        " wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(int(accumulate)));
}
__device__ __forceinline__ void mma_rs_m64n128(float (&d)[64], const uint32_t (&a)[4], uint64_t db) {
    SSMKIT_WG_ASM(
        "{\n .reg .pred p;\n setp.ne.b32 p, %69, 0;\n"
        " wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,"
        "%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63},"
        " {%64,%65,%66,%67}, %68, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

// Keeps register A fragments (R k-steps) in their registers until the wgmma reading them has
// completed: the compiler does not know the read is asynchronous.
template <int R>
__device__ __forceinline__ void pin(uint32_t (&a)[R][4]) {
#pragma unroll
    for (int i = 0; i < R; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(a[i][e])::"memory");
}

}  // namespace ssmkit::cuda::wg
