// Names and sizes of the value and tensor types.
#include <limits>

#include "format.h"

namespace ssmkit::gguf {

const char* value_type_name(value_type t) {
    switch (t) {
        case value_type::u8: return "u8";
        case value_type::i8: return "i8";
        case value_type::u16: return "u16";
        case value_type::i16: return "i16";
        case value_type::u32: return "u32";
        case value_type::i32: return "i32";
        case value_type::f32: return "f32";
        case value_type::boolean: return "bool";
        case value_type::string: return "string";
        case value_type::array: return "array";
        case value_type::u64: return "u64";
        case value_type::i64: return "i64";
        case value_type::f64: return "f64";
    }
    return "unknown";
}

const char* tensor_type_name(tensor_type t) {
    switch (t) {
        case tensor_type::f32: return "f32";
        case tensor_type::f16: return "f16";
        case tensor_type::q8_0: return "q8_0";
        case tensor_type::i32: return "i32";
        case tensor_type::bf16: return "bf16";
    }
    return "unknown";
}

size_t row_bytes(tensor_type t, int64_t n) {
    if (n < 0) throw gguf_error("gguf: row_bytes: negative row length " + std::to_string(n));
    const uint64_t un = static_cast<uint64_t>(n);
    uint64_t elem = 0;
    switch (t) {
        case tensor_type::f32:
        case tensor_type::i32: elem = 4; break;
        case tensor_type::f16:
        case tensor_type::bf16: elem = 2; break;
        case tensor_type::q8_0:
            if (n % detail::kQ8Block != 0)
                throw gguf_error(
                    "gguf: row_bytes: a q8_0 row needs a multiple of 32 elements, got " +
                    std::to_string(n));
            // n / 32 blocks of 34 bytes never overflows 64 bits.
            return static_cast<size_t>(un / detail::kQ8Block * detail::kQ8BlockBytes);
        default:
            throw gguf_error("gguf: row_bytes: unknown tensor type " +
                             std::to_string(static_cast<uint32_t>(t)));
    }
    if (un > std::numeric_limits<size_t>::max() / elem)
        throw gguf_error("gguf: row_bytes: " + std::to_string(n) + " elements overflow size_t");
    return static_cast<size_t>(un * elem);
}

namespace detail {

bool is_known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(value_type::f64); }

bool is_known_tensor_type(uint32_t t) {
    switch (static_cast<tensor_type>(t)) {
        case tensor_type::f32:
        case tensor_type::f16:
        case tensor_type::q8_0:
        case tensor_type::i32:
        case tensor_type::bf16: return true;
    }
    return false;
}

bool is_integer_type(value_type t) {
    switch (t) {
        case value_type::u8:
        case value_type::i8:
        case value_type::u16:
        case value_type::i16:
        case value_type::u32:
        case value_type::i32:
        case value_type::u64:
        case value_type::i64: return true;
        default: return false;
    }
}

size_t min_encoded_size(value_type t) {
    switch (t) {
        case value_type::u8:
        case value_type::i8:
        case value_type::boolean: return 1;
        case value_type::u16:
        case value_type::i16: return 2;
        case value_type::u32:
        case value_type::i32:
        case value_type::f32: return 4;
        case value_type::u64:
        case value_type::i64:
        case value_type::f64: return 8;
        case value_type::string: return 8;      // the length, even when empty
        case value_type::array: return 4 + 8;   // element type and count
    }
    return 1;
}

}  // namespace detail
}  // namespace ssmkit::gguf
