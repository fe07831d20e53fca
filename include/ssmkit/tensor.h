// Tensor views in ggml's convention: ne[0] is the fastest dimension, nb[i] the byte stride of
// dimension i. A view never owns memory; `host_tensor` is the small owning type for tools and tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace ssmkit {

enum class dtype { f32, f16, bf16, i32 };

const char* dtype_name(dtype t);
size_t dtype_size(dtype t);

// Where a view's bytes live. Kernels of a backend accept only views on that backend's device.
enum class device_kind { host, cuda };

struct tensor_view {
    void* data = nullptr;
    dtype type = dtype::f32;
    int64_t ne[4] = {1, 1, 1, 1};
    size_t nb[4] = {0, 0, 0, 0};
    device_kind device = device_kind::host;

    // A contiguous view over `data` with the given sizes (missing trailing sizes are 1).
    static tensor_view contiguous(void* data, dtype type, std::initializer_list<int64_t> ne,
                                  device_kind device = device_kind::host);

    int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    bool is_contiguous() const;
    // Bytes from the first to one past the last element addressed by the view.
    size_t span_bytes() const;
    std::string shape_string() const;  // "[a,b,c,d]"

    template <typename T>
    T* ptr(int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const {
        return reinterpret_cast<T*>(static_cast<char*>(data) + i0 * nb[0] + i1 * nb[1] +
                                    i2 * nb[2] + i3 * nb[3]);
    }
};

// Owning, host-resident, contiguous tensor.
class host_tensor {
public:
    host_tensor() = default;
    host_tensor(dtype type, std::vector<int64_t> ne);

    tensor_view view() const;
    // A view of the same bytes with other sizes and strides (for x/B/C views into one buffer).
    tensor_view view(std::initializer_list<int64_t> ne, std::initializer_list<size_t> nb,
                     size_t offset_bytes = 0) const;

    dtype type() const { return type_; }
    const int64_t* ne() const { return ne_; }
    int64_t nelements() const { return ne_[0] * ne_[1] * ne_[2] * ne_[3]; }
    size_t nbytes() const { return bytes_.size(); }

    template <typename T> T* data() { return reinterpret_cast<T*>(bytes_.data()); }
    template <typename T> const T* data() const { return reinterpret_cast<const T*>(bytes_.data()); }
    void* raw() { return bytes_.data(); }
    const void* raw() const { return bytes_.data(); }

private:
    dtype type_ = dtype::f32;
    int64_t ne_[4] = {1, 1, 1, 1};
    std::vector<unsigned char> bytes_;
};

}  // namespace ssmkit
