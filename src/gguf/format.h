// Internal: constants of the file format and helpers shared by the reader and the writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ssmkit/error.h"
#include "ssmkit/gguf.h"

// The reader hands out pointers into the mapping as f32/i32 data, and both sides copy integers
// with memcpy: that is only right on a little-endian host.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ssmkit's GGUF code assumes a little-endian host"
#endif

namespace ssmkit::gguf::detail {

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint32_t kWriteVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr const char* kAlignmentKey = "general.alignment";
constexpr int kMaxDims = 4;
// Nested arrays are parsed recursively; a cap keeps a hostile file from exhausting the stack.
constexpr int kMaxArrayDepth = 16;
constexpr int64_t kQ8Block = 32;
constexpr size_t kQ8BlockBytes = 2 + 32;  // f16 scale, then 32 int8

inline bool is_power_of_two(uint64_t a) { return a != 0 && (a & (a - 1)) == 0; }

// a must be a power of two. Callers have checked that x + a cannot overflow.
inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

bool is_known_value_type(uint32_t t);
bool is_known_tensor_type(uint32_t t);
bool is_integer_type(value_type t);
// Fewest bytes one value of this type takes in a file (used to reject absurd counts early).
size_t min_encoded_size(value_type t);

[[noreturn]] inline void fail(const std::string& path, const std::string& what) {
    throw gguf_error("gguf: " + path + ": " + what);
}

}  // namespace ssmkit::gguf::detail
