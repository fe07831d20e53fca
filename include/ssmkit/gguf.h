// GGUF v3: a memory-mapped reader and a writer. Used by test-ops for golden files and by the
// model loader. Any malformed input raises ssmkit::gguf_error naming the file and the problem.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ssmkit/tensor.h"

namespace ssmkit::gguf {

// Metadata value types, numbered as in the file format.
enum class value_type : uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
    string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};
const char* value_type_name(value_type t);

// Tensor element types, numbered as ggml numbers them.
enum class tensor_type : uint32_t { f32 = 0, f16 = 1, q8_0 = 8, i32 = 26, bf16 = 30 };
const char* tensor_type_name(tensor_type t);
// Bytes of a row of n elements (q8_0 needs n % 32 == 0).
size_t row_bytes(tensor_type t, int64_t n);

struct value {
    value_type type = value_type::u8;
    // Exactly one of these is meaningful, chosen by `type`: integers (and bool) in i or u,
    // floats in f, strings in s, arrays in arr (with their element type in elem_type).
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    std::string s;
    value_type elem_type = value_type::u8;
    std::vector<value> arr;

    std::string to_string() const;  // for printing; arrays are shortened
};

struct tensor_info {
    std::string name;
    int n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // missing trailing dimensions are 1
    tensor_type type = tensor_type::f32;
    uint64_t offset = 0;           // from the start of the data section
    size_t nbytes = 0;
    const void* data = nullptr;    // into the mapping
};

class reader {
public:
    explicit reader(const std::string& path);  // maps the file, parses and checks everything
    ~reader();
    reader(const reader&) = delete;
    reader& operator=(const reader&) = delete;

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }

    const std::map<std::string, value>& metadata() const { return kv_; }
    const value* find(const std::string& key) const;  // nullptr when absent
    // Typed getters throw gguf_error naming the key when it is absent or of another type
    // (integers of any width convert when the value fits).
    std::string get_string(const std::string& key) const;
    int64_t get_int(const std::string& key) const;
    double get_float(const std::string& key) const;
    bool get_bool(const std::string& key) const;
    std::vector<int64_t> get_int_array(const std::string& key) const;

    const std::vector<tensor_info>& tensors() const { return tensors_; }
    const tensor_info* find_tensor(const std::string& name) const;  // nullptr when absent
    const tensor_info& tensor(const std::string& name) const;       // throws when absent
    // A zero-copy view of an f32 or i32 tensor (read only; do not write through it).
    tensor_view view(const std::string& name) const;
    // Any supported type converted to a new f32 tensor (f16, bf16 and q8_0 dequantized).
    host_tensor to_f32(const std::string& name) const;

private:
    std::string path_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    std::map<std::string, value> kv_;
    std::vector<tensor_info> tensors_;
    std::map<std::string, size_t> tensor_index_;
    void* map_ = nullptr;
    size_t map_size_ = 0;
};

class writer {
public:
    void set_string(const std::string& key, const std::string& v);
    void set_u32(const std::string& key, uint32_t v);
    void set_i32(const std::string& key, int32_t v);
    void set_u64(const std::string& key, uint64_t v);
    void set_f32(const std::string& key, float v);
    void set_bool(const std::string& key, bool v);
    void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
    void set_string_array(const std::string& key, const std::vector<std::string>& v);
    void set_value(const std::string& key, const value& v);

    // Copies nbytes (row_bytes(type, ne[0]) * rows) from data. ne: up to 4 sizes.
    void add_tensor(const std::string& name, tensor_type type, std::vector<int64_t> ne,
                    const void* data, size_t nbytes);
    void add_tensor(const std::string& name, const host_tensor& t);  // f32 or i32

    void set_alignment(uint32_t a);
    void write(const std::string& path) const;  // throws gguf_error on I/O failure

private:
    struct pending {
        std::string name;
        tensor_type type;
        std::vector<int64_t> ne;
        std::vector<unsigned char> bytes;
    };
    std::vector<std::pair<std::string, value>> kv_;
    std::vector<pending> tensors_;
    uint32_t alignment_ = 32;
};

// IEEE half and bfloat16 conversions (also used by the model loader).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

}  // namespace ssmkit::gguf
