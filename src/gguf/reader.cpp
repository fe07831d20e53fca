// gguf::reader: maps the file read-only, lets parse() check it, then serves metadata and tensors
// straight from the mapping.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>

#include "format.h"
#include "parse.h"

namespace ssmkit::gguf {
namespace {

using detail::fail;

std::string errno_text(int err) { return std::string(std::strerror(err)); }

// Closes the descriptor on every path out of the constructor; the mapping outlives it.
struct fd_guard {
    int fd;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
};

std::string type_mismatch(const std::string& key, const value& v, const char* wanted) {
    std::string actual = value_type_name(v.type);
    if (v.type == value_type::array) actual += std::string(" of ") + value_type_name(v.elem_type);
    return "key '" + key + "' is " + actual + ", not " + wanted;
}

// An integer value as int64, or false when it does not fit (u64 above INT64_MAX).
bool integer_of(const value& v, int64_t* out) {
    if (!detail::is_integer_type(v.type)) return false;
    switch (v.type) {
        case value_type::u8:
        case value_type::u16:
        case value_type::u32:
        case value_type::u64:
            if (v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
            *out = static_cast<int64_t>(v.u);
            return true;
        default: *out = v.i; return true;
    }
}

}  // namespace

reader::reader(const std::string& path) : path_(path) {
    fd_guard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (fd.fd < 0) fail(path_, "cannot open: " + errno_text(errno));
    struct stat st;
    if (::fstat(fd.fd, &st) != 0) fail(path_, "cannot stat: " + errno_text(errno));
    if (!S_ISREG(st.st_mode)) fail(path_, "cannot read: not a regular file");
    // mmap rejects a zero length, and every GGUF file has at least a 24-byte header.
    if (st.st_size == 0) fail(path_, "truncated: the file is empty");
    map_size_ = static_cast<size_t>(st.st_size);
    void* m = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd.fd, 0);
    if (m == MAP_FAILED) fail(path_, "cannot map: " + errno_text(errno));
    map_ = m;
    try {
        detail::parsed_file f =
            detail::parse(static_cast<const unsigned char*>(map_), map_size_, path_);
        version_ = f.version;
        alignment_ = f.alignment;
        kv_ = std::move(f.kv);
        tensors_ = std::move(f.tensors);
        tensor_index_ = std::move(f.tensor_index);
    } catch (...) {
        // The destructor does not run for a constructor that throws.
        ::munmap(map_, map_size_);
        map_ = nullptr;
        throw;
    }
}

reader::~reader() {
    if (map_) ::munmap(map_, map_size_);
}

const value* reader::find(const std::string& key) const {
    const auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
}

namespace {
const value& require(const reader& r, const std::string& key) {
    const value* v = r.find(key);
    if (!v) fail(r.path(), "key '" + key + "' not found");
    return *v;
}
}  // namespace

std::string reader::get_string(const std::string& key) const {
    const value& v = require(*this, key);
    if (v.type != value_type::string) fail(path_, type_mismatch(key, v, "a string"));
    return v.s;
}

int64_t reader::get_int(const std::string& key) const {
    const value& v = require(*this, key);
    if (!detail::is_integer_type(v.type)) fail(path_, type_mismatch(key, v, "an integer"));
    int64_t out = 0;
    if (!integer_of(v, &out))
        fail(path_, "key '" + key + "' value " + std::to_string(v.u) + " does not fit in int64");
    return out;
}

double reader::get_float(const std::string& key) const {
    const value& v = require(*this, key);
    if (v.type != value_type::f32 && v.type != value_type::f64)
        fail(path_, type_mismatch(key, v, "a float"));
    return v.f;
}

bool reader::get_bool(const std::string& key) const {
    const value& v = require(*this, key);
    if (v.type != value_type::boolean) fail(path_, type_mismatch(key, v, "a bool"));
    return v.u != 0;
}

std::vector<int64_t> reader::get_int_array(const std::string& key) const {
    const value& v = require(*this, key);
    if (v.type != value_type::array || !detail::is_integer_type(v.elem_type))
        fail(path_, type_mismatch(key, v, "an array of integers"));
    std::vector<int64_t> out(v.arr.size());
    for (size_t k = 0; k < v.arr.size(); ++k)
        if (!integer_of(v.arr[k], &out[k]))
            fail(path_, "key '" + key + "' element " + std::to_string(k) + " value " +
                            std::to_string(v.arr[k].u) + " does not fit in int64");
    return out;
}

const tensor_info* reader::find_tensor(const std::string& name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const tensor_info& reader::tensor(const std::string& name) const {
    const tensor_info* t = find_tensor(name);
    if (!t) fail(path_, "no tensor named '" + name + "'");
    return *t;
}

tensor_view reader::view(const std::string& name) const {
    const tensor_info& t = tensor(name);
    tensor_view v;
    if (t.type == tensor_type::f32) {
        v.type = dtype::f32;
    } else if (t.type == tensor_type::i32) {
        v.type = dtype::i32;
    } else {
        fail(path_, "tensor '" + name + "' is " + tensor_type_name(t.type) +
                        "; view() gives only f32 or i32 tensors (use to_f32)");
    }
    // With general.alignment below 4 the data may sit at an odd address, where reading it as
    // float or int32 would be undefined behaviour.
    if (reinterpret_cast<uintptr_t>(t.data) % 4 != 0)
        fail(path_, "tensor '" + name + "' data is not 4-byte aligned (file alignment " +
                        std::to_string(alignment_) + "); copy it instead of viewing it");
    v.data = const_cast<void*>(t.data);
    v.device = device_kind::host;
    size_t stride = dtype_size(v.type);
    for (int d = 0; d < 4; ++d) {
        v.ne[d] = t.ne[d];
        v.nb[d] = stride;
        stride *= static_cast<size_t>(t.ne[d]);
    }
    return v;
}

host_tensor reader::to_f32(const std::string& name) const {
    const tensor_info& t = tensor(name);
    if (t.type == tensor_type::i32)
        fail(path_, "tensor '" + name + "' is i32; to_f32 converts only f32, f16, bf16 and q8_0");
    host_tensor out(dtype::f32, std::vector<int64_t>(t.ne, t.ne + t.n_dims));
    float* dst = out.data<float>();
    const auto* src = static_cast<const unsigned char*>(t.data);
    const size_t n = static_cast<size_t>(out.nelements());
    // memcpy per element: the mapping gives no alignment guarantee below the file's alignment.
    switch (t.type) {
        case tensor_type::f32: std::memcpy(dst, src, n * sizeof(float)); break;
        case tensor_type::f16:
        case tensor_type::bf16: {
            const bool half = t.type == tensor_type::f16;
            for (size_t k = 0; k < n; ++k) {
                uint16_t h;
                std::memcpy(&h, src + 2 * k, 2);
                dst[k] = half ? f16_to_f32(h) : bf16_to_f32(h);
            }
            break;
        }
        case tensor_type::q8_0: {
            const size_t blocks = n / detail::kQ8Block;
            for (size_t b = 0; b < blocks; ++b) {
                const unsigned char* blk = src + b * detail::kQ8BlockBytes;
                uint16_t h;
                std::memcpy(&h, blk, 2);
                const float d = f16_to_f32(h);
                const auto* q = reinterpret_cast<const int8_t*>(blk + 2);
                for (int64_t k = 0; k < detail::kQ8Block; ++k)
                    dst[b * detail::kQ8Block + k] = d * static_cast<float>(q[k]);
            }
            break;
        }
        default: break;  // i32 rejected above; parse() admits no other type
    }
    return out;
}

}  // namespace ssmkit::gguf
