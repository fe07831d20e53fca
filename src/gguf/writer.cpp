// gguf::writer: collects metadata and tensor bytes, then streams a v3 file in one pass.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "format.h"

namespace ssmkit::gguf {
namespace {

using detail::fail;

[[noreturn]] void fail_writer(const std::string& what) {
    throw gguf_error("gguf: writer: " + what);
}

// Catches values that would be silently truncated or unreadable once written.
void check_value(const std::string& key, const value& v, int depth) {
    const auto range = [&](bool ok) {
        if (!ok)
            fail_writer("key '" + key + "': value does not fit its type " +
                        value_type_name(v.type));
    };
    switch (v.type) {
        case value_type::u8: range(v.u <= std::numeric_limits<uint8_t>::max()); break;
        case value_type::u16: range(v.u <= std::numeric_limits<uint16_t>::max()); break;
        case value_type::u32: range(v.u <= std::numeric_limits<uint32_t>::max()); break;
        case value_type::i8: range(v.i >= INT8_MIN && v.i <= INT8_MAX); break;
        case value_type::i16: range(v.i >= INT16_MIN && v.i <= INT16_MAX); break;
        case value_type::i32: range(v.i >= INT32_MIN && v.i <= INT32_MAX); break;
        case value_type::boolean: range(v.u <= 1); break;
        case value_type::u64:
        case value_type::i64:
        case value_type::f32:
        case value_type::f64:
        case value_type::string: break;
        case value_type::array:
            if (!detail::is_known_value_type(static_cast<uint32_t>(v.elem_type)))
                fail_writer("key '" + key + "': array of unknown element type " +
                            std::to_string(static_cast<uint32_t>(v.elem_type)));
            if (depth + 1 >= detail::kMaxArrayDepth && v.elem_type == value_type::array)
                fail_writer("key '" + key + "': arrays nested deeper than " +
                            std::to_string(detail::kMaxArrayDepth) + " levels");
            for (const value& e : v.arr) {
                if (e.type != v.elem_type)
                    fail_writer("key '" + key + "': array of " + value_type_name(v.elem_type) +
                                " holds an element of type " + value_type_name(e.type));
                check_value(key, e, depth + 1);
            }
            break;
        default:
            fail_writer("key '" + key + "': unknown value type " +
                        std::to_string(static_cast<uint32_t>(v.type)));
    }
}

// A FILE* that turns every failed write into a gguf_error naming the file.
class out_file {
public:
    explicit out_file(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "wb")) {
        if (!f_) fail(path_, "cannot create: " + std::string(std::strerror(errno)));
    }
    ~out_file() {
        if (f_) {  // only after a failure: drop the partial file
            std::fclose(f_);
            std::remove(path_.c_str());
        }
    }
    void bytes(const void* p, size_t n) {
        if (n && std::fwrite(p, 1, n, f_) != n)
            fail(path_, "write failed: " + std::string(std::strerror(errno)));
        pos_ += n;
    }
    template <typename T>
    void pod(T v) { bytes(&v, sizeof v); }
    void str(const std::string& s) {
        pod<uint64_t>(s.size());
        bytes(s.data(), s.size());
    }
    void pad_to(uint64_t alignment) {
        static const unsigned char zeros[256] = {};
        uint64_t n = detail::align_up(pos_, alignment) - pos_;
        while (n) {
            const size_t k = n < sizeof zeros ? static_cast<size_t>(n) : sizeof zeros;
            bytes(zeros, k);
            n -= k;
        }
    }
    void close() {
        FILE* f = f_;
        f_ = nullptr;
        if (std::fclose(f) != 0) {
            const int err = errno;
            std::remove(path_.c_str());
            fail(path_, "write failed on close: " + std::string(std::strerror(err)));
        }
    }

private:
    std::string path_;
    FILE* f_;
    uint64_t pos_ = 0;
};

void write_payload(out_file& o, const value& v) {
    switch (v.type) {
        case value_type::u8: o.pod(static_cast<uint8_t>(v.u)); break;
        case value_type::i8: o.pod(static_cast<int8_t>(v.i)); break;
        case value_type::u16: o.pod(static_cast<uint16_t>(v.u)); break;
        case value_type::i16: o.pod(static_cast<int16_t>(v.i)); break;
        case value_type::u32: o.pod(static_cast<uint32_t>(v.u)); break;
        case value_type::i32: o.pod(static_cast<int32_t>(v.i)); break;
        case value_type::u64: o.pod(v.u); break;
        case value_type::i64: o.pod(v.i); break;
        case value_type::f32: o.pod(static_cast<float>(v.f)); break;
        case value_type::f64: o.pod(v.f); break;
        case value_type::boolean: o.pod(static_cast<uint8_t>(v.u ? 1 : 0)); break;
        case value_type::string: o.str(v.s); break;
        case value_type::array:
            o.pod(static_cast<uint32_t>(v.elem_type));
            o.pod<uint64_t>(v.arr.size());
            for (const value& e : v.arr) write_payload(o, e);
            break;
    }
}

value scalar(value_type t) {
    value v;
    v.type = t;
    return v;
}

}  // namespace

void writer::set_value(const std::string& key, const value& v) {
    check_value(key, v, 0);
    // The alignment has one owner, alignment_, so the key and the layout cannot disagree.
    if (key == detail::kAlignmentKey) {
        if (v.type != value_type::u32)
            fail_writer(std::string(detail::kAlignmentKey) + " must be u32, got " +
                        value_type_name(v.type));
        set_alignment(static_cast<uint32_t>(v.u));
        return;
    }
    for (auto& kv : kv_)
        if (kv.first == key) {
            kv.second = v;
            return;
        }
    kv_.emplace_back(key, v);
}

void writer::set_string(const std::string& key, const std::string& s) {
    value v = scalar(value_type::string);
    v.s = s;
    set_value(key, v);
}

void writer::set_u32(const std::string& key, uint32_t x) {
    value v = scalar(value_type::u32);
    v.u = x;
    set_value(key, v);
}

void writer::set_i32(const std::string& key, int32_t x) {
    value v = scalar(value_type::i32);
    v.i = x;
    set_value(key, v);
}

void writer::set_u64(const std::string& key, uint64_t x) {
    value v = scalar(value_type::u64);
    v.u = x;
    set_value(key, v);
}

void writer::set_f32(const std::string& key, float x) {
    value v = scalar(value_type::f32);
    v.f = x;
    set_value(key, v);
}

void writer::set_bool(const std::string& key, bool x) {
    value v = scalar(value_type::boolean);
    v.u = x ? 1 : 0;
    set_value(key, v);
}

void writer::set_i32_array(const std::string& key, const std::vector<int32_t>& xs) {
    value v = scalar(value_type::array);
    v.elem_type = value_type::i32;
    v.arr.reserve(xs.size());
    for (int32_t x : xs) {
        value e = scalar(value_type::i32);
        e.i = x;
        v.arr.push_back(std::move(e));
    }
    set_value(key, v);
}

void writer::set_string_array(const std::string& key, const std::vector<std::string>& xs) {
    value v = scalar(value_type::array);
    v.elem_type = value_type::string;
    v.arr.reserve(xs.size());
    for (const std::string& x : xs) {
        value e = scalar(value_type::string);
        e.s = x;
        v.arr.push_back(std::move(e));
    }
    set_value(key, v);
}

void writer::add_tensor(const std::string& name, tensor_type type, std::vector<int64_t> ne,
                        const void* data, size_t nbytes) {
    const std::string tn = "tensor '" + name + "'";
    if (!detail::is_known_tensor_type(static_cast<uint32_t>(type)))
        fail_writer(tn + ": unsupported tensor type " +
                    std::to_string(static_cast<uint32_t>(type)));
    if (ne.empty() || ne.size() > static_cast<size_t>(detail::kMaxDims))
        fail_writer(tn + ": needs 1 to 4 dimensions, got " + std::to_string(ne.size()));
    int64_t count = 1;
    for (size_t d = 0; d < ne.size(); ++d) {
        if (ne[d] <= 0)
            fail_writer(tn + ": ne[" + std::to_string(d) + "] = " + std::to_string(ne[d]) +
                        " (sizes must be positive)");
        if (__builtin_mul_overflow(count, ne[d], &count))
            fail_writer(tn + ": the element count overflows");
    }
    if (type == tensor_type::q8_0 && ne[0] % detail::kQ8Block != 0)
        fail_writer(tn + ": q8_0 needs ne[0] to be a multiple of 32, got " + std::to_string(ne[0]));
    size_t expected = 0;
    if (__builtin_mul_overflow(row_bytes(type, ne[0]), static_cast<uint64_t>(count / ne[0]),
                               &expected))
        fail_writer(tn + ": the byte size overflows");
    if (nbytes != expected)
        fail_writer(tn + ": got " + std::to_string(nbytes) + " bytes, but a " +
                    tensor_type_name(type) + " tensor of this shape has " +
                    std::to_string(expected));
    if (!data) fail_writer(tn + ": data is null");
    for (const pending& p : tensors_)
        if (p.name == name) fail_writer("duplicate tensor name '" + name + "'");
    const auto* b = static_cast<const unsigned char*>(data);
    tensors_.push_back(
        pending{name, type, std::move(ne), std::vector<unsigned char>(b, b + nbytes)});
}

void writer::add_tensor(const std::string& name, const host_tensor& t) {
    tensor_type type = tensor_type::f32;
    switch (t.type()) {
        case dtype::f32: type = tensor_type::f32; break;
        case dtype::i32: type = tensor_type::i32; break;
        case dtype::f16: type = tensor_type::f16; break;
        case dtype::bf16: type = tensor_type::bf16; break;
    }
    // Trailing sizes of 1 are left out, as ggml writes them; readers treat them as 1 again.
    int n_dims = 4;
    while (n_dims > 1 && t.ne()[n_dims - 1] == 1) --n_dims;
    add_tensor(name, type, std::vector<int64_t>(t.ne(), t.ne() + n_dims), t.raw(), t.nbytes());
}

void writer::set_alignment(uint32_t a) {
    if (!detail::is_power_of_two(a))
        fail_writer("alignment " + std::to_string(a) + " is not a nonzero power of two");
    alignment_ = a;
}

void writer::write(const std::string& path) const {
    const bool alignment_key = alignment_ != detail::kDefaultAlignment;
    out_file o(path);
    o.bytes(detail::kMagic, 4);
    o.pod<uint32_t>(detail::kWriteVersion);
    o.pod<uint64_t>(tensors_.size());
    o.pod<uint64_t>(kv_.size() + (alignment_key ? 1 : 0));
    if (alignment_key) {
        o.str(detail::kAlignmentKey);
        o.pod(static_cast<uint32_t>(value_type::u32));
        o.pod<uint32_t>(alignment_);
    }
    for (const auto& kv : kv_) {
        o.str(kv.first);
        o.pod(static_cast<uint32_t>(kv.second.type));
        write_payload(o, kv.second);
    }
    uint64_t offset = 0;
    for (const pending& t : tensors_) {
        o.str(t.name);
        o.pod<uint32_t>(static_cast<uint32_t>(t.ne.size()));
        for (int64_t n : t.ne) o.pod<uint64_t>(static_cast<uint64_t>(n));
        o.pod(static_cast<uint32_t>(t.type));
        o.pod<uint64_t>(offset);
        offset = detail::align_up(offset + t.bytes.size(), alignment_);
    }
    o.pad_to(alignment_);
    for (const pending& t : tensors_) {
        o.bytes(t.bytes.data(), t.bytes.size());
        o.pad_to(alignment_);  // the data section starts aligned, so file offsets align too
    }
    o.close();
}

}  // namespace ssmkit::gguf
