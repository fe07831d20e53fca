// The GGUF header parser. Every read goes through `cursor`, which checks the remaining length
// first, so no input can make the parser touch memory past the end of the file; counts and
// lengths are compared with what is left before anything is allocated for them.
#include "parse.h"

#include <cstdio>
#include <cstring>
#include <limits>

#include "format.h"

namespace ssmkit::gguf::detail {
namespace {

// The smallest possible metadata pair: empty key (8-byte length), value type, a 1-byte value.
constexpr size_t kMinKvBytes = 8 + 4 + 1;
// The smallest possible tensor info: empty name, n_dims, one dimension, type, offset.
constexpr size_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

class cursor {
public:
    cursor(const unsigned char* base, size_t size, const std::string& path)
        : base_(base), size_(size), path_(path) {}

    size_t pos() const { return pos_; }
    size_t remaining() const { return size_ - pos_; }
    const std::string& path() const { return path_; }

    void need(size_t n, const std::string& what) const {
        if (n > remaining())
            fail(path_, "truncated: the file ends while reading " + what + " at offset " +
                            std::to_string(pos_) + " (needs " + std::to_string(n) + " bytes, " +
                            std::to_string(remaining()) + " left)");
    }

    template <typename T>
    T read(const std::string& what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, base_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    std::string read_string(const std::string& what) {
        const size_t at = pos_;
        const uint64_t len = read<uint64_t>("the length of " + what);
        if (len > remaining())
            fail(path_, "truncated: " + what + " at offset " + std::to_string(at) +
                            " claims a length of " + std::to_string(len) +
                            " bytes, more than the " + std::to_string(remaining()) +
                            " bytes left in the file");
        std::string s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
        pos_ += static_cast<size_t>(len);
        return s;
    }

    // Rejects `count` items of at least `min_bytes` each when they cannot fit in what is left.
    void check_count(uint64_t count, size_t min_bytes, const std::string& what) const {
        if (count > remaining() / min_bytes)
            fail(path_, what + " " + std::to_string(count) + " cannot fit in the remaining " +
                            std::to_string(remaining()) +
                            " bytes of the file (truncated or corrupt)");
    }

private:
    const unsigned char* base_;
    size_t size_;
    size_t pos_ = 0;
    const std::string& path_;
};

value read_value(cursor& c, value_type type, const std::string& what, int depth) {
    value v;
    v.type = type;
    switch (type) {
        case value_type::u8: v.u = c.read<uint8_t>(what); break;
        case value_type::i8: v.i = c.read<int8_t>(what); break;
        case value_type::u16: v.u = c.read<uint16_t>(what); break;
        case value_type::i16: v.i = c.read<int16_t>(what); break;
        case value_type::u32: v.u = c.read<uint32_t>(what); break;
        case value_type::i32: v.i = c.read<int32_t>(what); break;
        case value_type::u64: v.u = c.read<uint64_t>(what); break;
        case value_type::i64: v.i = c.read<int64_t>(what); break;
        case value_type::f32: v.f = c.read<float>(what); break;
        case value_type::f64: v.f = c.read<double>(what); break;
        case value_type::boolean: {
            const size_t at = c.pos();
            const uint8_t b = c.read<uint8_t>(what);
            if (b > 1)
                fail(c.path(), what + " at offset " + std::to_string(at) +
                                   " is a bool with byte value " + std::to_string(b) +
                                   " (must be 0 or 1)");
            v.u = b;
            break;
        }
        case value_type::string: v.s = c.read_string(what); break;
        case value_type::array: {
            const uint32_t et = c.read<uint32_t>("the element type of " + what);
            if (!is_known_value_type(et))
                fail(c.path(), what + " is an array of unknown value type " + std::to_string(et));
            v.elem_type = static_cast<value_type>(et);
            if (v.elem_type == value_type::array && depth + 1 >= kMaxArrayDepth)
                fail(c.path(), what + " nests arrays deeper than " +
                                   std::to_string(kMaxArrayDepth) + " levels");
            const uint64_t n = c.read<uint64_t>("the length of " + what);
            c.check_count(n, min_encoded_size(v.elem_type), "the array length of " + what);
            v.arr.reserve(static_cast<size_t>(n));
            const std::string elem_what = "an element of " + what;
            for (uint64_t k = 0; k < n; ++k)
                v.arr.push_back(read_value(c, v.elem_type, elem_what, depth + 1));
            break;
        }
        default:
            fail(c.path(), what + " has unknown value type " +
                               std::to_string(static_cast<uint32_t>(type)));
    }
    return v;
}

std::string hex_bytes(const unsigned char* p, size_t n) {
    std::string out;
    char buf[4];
    for (size_t k = 0; k < n; ++k) {
        std::snprintf(buf, sizeof buf, k ? " %02x" : "%02x", p[k]);
        out += buf;
    }
    return out;
}

uint32_t byte_swap(uint32_t x) {
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

uint32_t read_version(cursor& c, const unsigned char* bytes) {
    c.need(4, "the magic");
    if (std::memcmp(bytes, kMagic, 4) != 0)
        fail(c.path(), "bad magic: expected \"GGUF\" (47 47 55 46), found " + hex_bytes(bytes, 4) +
                           " (not a GGUF file)");
    c.read<uint32_t>("the magic");
    const uint32_t version = c.read<uint32_t>("the version");
    // v2 has the same layout; v3 only added big-endian files, which the check below reports.
    if (version == 2 || version == 3) return version;
    if (byte_swap(version) == 2 || byte_swap(version) == 3)
        fail(c.path(), "big-endian GGUF files are not supported (version field reads " +
                           std::to_string(version) + ")");
    if (version == 1)
        fail(c.path(),
             "unsupported GGUF version 1 (32-bit counts; only versions 2 and 3 are read)");
    fail(c.path(), "unsupported GGUF version " + std::to_string(version) +
                       " (only versions 2 and 3 are read)");
}

void read_metadata(cursor& c, uint64_t n_kv, parsed_file& out) {
    for (uint64_t k = 0; k < n_kv; ++k) {
        std::string key = c.read_string("the key of metadata pair #" + std::to_string(k));
        const std::string what = "the value of key " + quoted(key);
        const uint32_t type = c.read<uint32_t>("the value type of key " + quoted(key));
        if (!is_known_value_type(type))
            fail(c.path(),
                 "key " + quoted(key) + " has unknown value type " + std::to_string(type));
        value v = read_value(c, static_cast<value_type>(type), what, 0);
        if (!out.kv.emplace(key, std::move(v)).second)
            fail(c.path(), "duplicate key " + quoted(key));
    }
}

uint64_t alignment_of(const parsed_file& f, const std::string& path) {
    const auto it = f.kv.find(kAlignmentKey);
    if (it == f.kv.end()) return kDefaultAlignment;
    const value& v = it->second;
    if (v.type != value_type::u32)
        fail(path, std::string(kAlignmentKey) + " has type " + value_type_name(v.type) +
                       ", expected u32");
    if (!is_power_of_two(v.u))
        fail(path, std::string(kAlignmentKey) + " is " + std::to_string(v.u) +
                       ", must be a nonzero power of two");
    return v.u;
}

std::string shape_of(const tensor_info& t) {
    std::string s = "[";
    for (int d = 0; d < t.n_dims; ++d) s += (d ? "," : "") + std::to_string(t.ne[d]);
    return s + "]";
}

tensor_info read_tensor_info(cursor& c, uint64_t index) {
    tensor_info t;
    t.name = c.read_string("the name of tensor #" + std::to_string(index));
    const std::string tn = "tensor " + quoted(t.name);
    const uint32_t n_dims = c.read<uint32_t>("n_dims of " + tn);
    if (n_dims == 0 || n_dims > static_cast<uint32_t>(kMaxDims))
        fail(c.path(), tn + " has n_dims " + std::to_string(n_dims) + " (must be 1 to 4)");
    t.n_dims = static_cast<int>(n_dims);
    int64_t count = 1;
    for (int d = 0; d < t.n_dims; ++d) {
        const uint64_t n = c.read<uint64_t>("ne[" + std::to_string(d) + "] of " + tn);
        if (n == 0) fail(c.path(), tn + " has a zero dimension: ne[" + std::to_string(d) + "] = 0");
        if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            fail(c.path(), tn + " has a negative dimension: ne[" + std::to_string(d) + "] = " +
                               std::to_string(static_cast<int64_t>(n)));
        t.ne[d] = static_cast<int64_t>(n);
        if (__builtin_mul_overflow(count, t.ne[d], &count))
            fail(c.path(), tn + ": the element count of shape " + shape_of(t) + " overflows");
    }
    const uint32_t type = c.read<uint32_t>("the type of " + tn);
    if (!is_known_tensor_type(type))
        fail(c.path(), tn + " has unsupported tensor type " + std::to_string(type) +
                           " (supported: f32=0, f16=1, q8_0=8, i32=26, bf16=30)");
    t.type = static_cast<tensor_type>(type);
    if (t.type == tensor_type::q8_0 && t.ne[0] % kQ8Block != 0)
        fail(c.path(), tn + " is q8_0 with ne[0] = " + std::to_string(t.ne[0]) +
                           ", not a multiple of the block size 32");
    t.offset = c.read<uint64_t>("the data offset of " + tn);
    // Sized in units (one element, or one q8_0 block) so the overflow check names this tensor
    // rather than surfacing from row_bytes.
    const bool q8 = t.type == tensor_type::q8_0;
    const uint64_t units = static_cast<uint64_t>(q8 ? count / kQ8Block : count);
    const uint64_t unit_bytes = q8 ? kQ8BlockBytes : row_bytes(t.type, 1);
    size_t nbytes = 0;
    if (__builtin_mul_overflow(units, unit_bytes, &nbytes))
        fail(c.path(), tn + ": the byte size of shape " + shape_of(t) + " overflows");
    t.nbytes = nbytes;
    return t;
}

}  // namespace

parsed_file parse(const unsigned char* bytes, size_t size, const std::string& path) {
    parsed_file out;
    cursor c(bytes, size, path);
    out.version = read_version(c, bytes);
    const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
    const uint64_t n_kv = c.read<uint64_t>("the metadata count");
    c.check_count(n_tensors, kMinTensorInfoBytes, "the tensor count");
    c.check_count(n_kv, kMinKvBytes, "the metadata count");

    read_metadata(c, n_kv, out);
    out.alignment = alignment_of(out, path);

    c.check_count(n_tensors, kMinTensorInfoBytes, "the tensor count");
    out.tensors.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t k = 0; k < n_tensors; ++k) {
        tensor_info t = read_tensor_info(c, k);
        if (!out.tensor_index.emplace(t.name, out.tensors.size()).second)
            fail(path, "duplicate tensor name " + quoted(t.name));
        out.tensors.push_back(std::move(t));
    }

    // pos <= size and alignment <= 2^31, so this cannot overflow 64 bits.
    const uint64_t data_start = align_up(c.pos(), out.alignment);
    const uint64_t data_size = data_start <= size ? size - data_start : 0;
    for (tensor_info& t : out.tensors) {
        const std::string tn = "tensor " + quoted(t.name);
        if (t.offset % out.alignment != 0)
            fail(path, tn + " has data offset " + std::to_string(t.offset) +
                           ", not a multiple of the alignment " + std::to_string(out.alignment));
        if (data_start > size || t.offset > data_size || t.nbytes > data_size - t.offset)
            fail(path, tn + " data (offset " + std::to_string(t.offset) + ", " +
                           std::to_string(t.nbytes) + " bytes) extends past the end of the file "
                           "(the data section starting at byte " + std::to_string(data_start) +
                           " holds " + std::to_string(data_size) + " bytes)");
        t.data = bytes + data_start + t.offset;
    }
    return out;
}

}  // namespace ssmkit::gguf::detail
