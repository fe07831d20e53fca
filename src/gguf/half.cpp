// IEEE binary16 and bfloat16 conversions in integer arithmetic, so the results do not depend on
// the compiler's or the CPU's half-precision support. f32 -> 16 bit rounds to nearest, ties to
// even, as hardware conversions do; NaNs stay NaNs (quiet) and keep their sign.
#include <cstring>

#include "ssmkit/gguf.h"

namespace ssmkit::gguf {
namespace {

uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

float float_of(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

}  // namespace

float f16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return float_of(sign | 0x7f800000u | (mant << 13));  // inf, NaN (payload kept)
    if (exp != 0) return float_of(sign | ((exp + 127 - 15) << 23) | (mant << 13));
    if (mant == 0) return float_of(sign);
    // Subnormal half: every one is a normal float, so shift the leading 1 into the implicit bit.
    int32_t e = 1 - 15;
    while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --e;
    }
    return float_of(sign | (static_cast<uint32_t>(e + 127) << 23) | ((mant & 0x3ffu) << 13));
}

uint16_t f32_to_f16(float f) {
    const uint32_t x = bits_of(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u)  // NaN: force the quiet bit so a payload in the low bits cannot vanish
        return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    // 65520 is halfway between 65504 (largest half) and 65536; the tie goes to the even
    // neighbour, which is the overflow, so everything from there on is infinity.
    if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
    if (a >= 0x38800000u) {  // normal half range (>= 2^-14)
        // Adding 0xfff plus the lowest kept bit rounds to nearest-even; a carry out of the
        // mantissa correctly bumps the exponent.
        const uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - (static_cast<uint32_t>(127 - 15) << 23);
        return static_cast<uint16_t>(sign | (r >> 13));
    }
    // Subnormal half (or zero): the result counts units of 2^-24.
    const uint32_t e = a >> 23;
    const uint32_t shift = 126 - e;  // >= 14 here
    if (e == 0 || shift > 24) return sign;  // below 2^-25, or exactly 2^-25 (tie to even: 0)
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // may reach 0x400, the smallest normal
    return static_cast<uint16_t>(sign | q);
}

float bf16_to_f32(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
    const uint32_t x = bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)  // NaN: rounding could carry it into infinity
        return static_cast<uint16_t>((x >> 16) | 0x0040u);
    return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace ssmkit::gguf
