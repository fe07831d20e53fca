// value::to_string: a one-line, human-readable form of a metadata value.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "format.h"

namespace ssmkit::gguf {
namespace {

// Arrays such as tokenizer vocabularies have 100k+ entries; print only their head.
constexpr size_t kShownElements = 8;

// The shortest %g form that reads back as the same number, so 0.1f prints as 0.1 and not as
// 0.100000001, while distinct values never print alike.
std::string format_float(double v, bool single) {
    char buf[40];
    for (int prec = 6; prec <= 17; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*g", prec, v);
        const double back = std::strtod(buf, nullptr);
        if (single ? static_cast<float>(back) == static_cast<float>(v) : back == v) break;
    }
    return buf;  // NaN never compares equal and ends at precision 17, which prints "nan" anyway
}

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\x%02x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out + "\"";
}

}  // namespace

std::string value::to_string() const {
    switch (type) {
        case value_type::u8:
        case value_type::u16:
        case value_type::u32:
        case value_type::u64: return std::to_string(u);
        case value_type::i8:
        case value_type::i16:
        case value_type::i32:
        case value_type::i64: return std::to_string(i);
        case value_type::boolean: return u ? "true" : "false";
        case value_type::f32: return format_float(f, true);
        case value_type::f64: return format_float(f, false);
        case value_type::string: return quote(s);
        case value_type::array: {
            std::string out = "[";
            const size_t shown = arr.size() < kShownElements ? arr.size() : kShownElements;
            for (size_t k = 0; k < shown; ++k) {
                if (k) out += ", ";
                out += arr[k].to_string();
            }
            if (shown < arr.size())
                out += ", ... (" + std::to_string(arr.size()) + " " + value_type_name(elem_type) +
                       " items)";
            return out + "]";
        }
    }
    return "<unknown type " + std::to_string(static_cast<uint32_t>(type)) + ">";
}

}  // namespace ssmkit::gguf
