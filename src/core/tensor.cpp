#include "ssmkit/tensor.h"

#include <sstream>

#include "ssmkit/error.h"

namespace ssmkit {

const char* dtype_name(dtype t) {
    switch (t) {
        case dtype::f32: return "f32";
        case dtype::f16: return "f16";
        case dtype::bf16: return "bf16";
        case dtype::i32: return "i32";
    }
    return "?";
}

size_t dtype_size(dtype t) {
    switch (t) {
        case dtype::f32: return 4;
        case dtype::f16: return 2;
        case dtype::bf16: return 2;
        case dtype::i32: return 4;
    }
    return 0;
}

tensor_view tensor_view::contiguous(void* data, dtype type, std::initializer_list<int64_t> ne,
                                    device_kind device) {
    if (ne.size() > 4) throw error("tensor_view::contiguous: more than 4 dimensions");
    tensor_view v;
    v.data = data;
    v.type = type;
    v.device = device;
    int i = 0;
    for (int64_t n : ne) v.ne[i++] = n;
    v.nb[0] = dtype_size(type);
    for (int d = 1; d < 4; ++d) v.nb[d] = v.nb[d - 1] * static_cast<size_t>(v.ne[d - 1]);
    return v;
}

bool tensor_view::is_contiguous() const {
    size_t expect = dtype_size(type);
    for (int d = 0; d < 4; ++d) {
        if (ne[d] > 1 && nb[d] != expect) return false;
        expect *= static_cast<size_t>(ne[d]);
    }
    return true;
}

size_t tensor_view::span_bytes() const {
    if (nelements() == 0) return 0;
    size_t last = 0;
    for (int d = 0; d < 4; ++d) last += static_cast<size_t>(ne[d] - 1) * nb[d];
    return last + dtype_size(type);
}

std::string tensor_view::shape_string() const {
    std::ostringstream os;
    os << '[' << ne[0] << ',' << ne[1] << ',' << ne[2] << ',' << ne[3] << ']';
    return os.str();
}

host_tensor::host_tensor(dtype type, std::vector<int64_t> ne) : type_(type) {
    if (ne.size() > 4) throw error("host_tensor: more than 4 dimensions");
    size_t n = 1;
    for (size_t i = 0; i < ne.size(); ++i) {
        if (ne[i] < 0) throw error("host_tensor: negative size");
        ne_[i] = ne[i];
        n *= static_cast<size_t>(ne[i]);
    }
    bytes_.assign(n * dtype_size(type), 0);
}

tensor_view host_tensor::view() const {
    return tensor_view::contiguous(const_cast<unsigned char*>(bytes_.data()), type_,
                                   {ne_[0], ne_[1], ne_[2], ne_[3]});
}

tensor_view host_tensor::view(std::initializer_list<int64_t> ne, std::initializer_list<size_t> nb,
                              size_t offset_bytes) const {
    if (ne.size() > 4 || nb.size() != ne.size())
        throw error("host_tensor::view: ne and nb must have the same length (at most 4)");
    tensor_view v = tensor_view::contiguous(nullptr, type_, ne);
    int i = 0;
    for (size_t s : nb) v.nb[i++] = s;
    v.data = const_cast<unsigned char*>(bytes_.data()) + offset_bytes;
    if (offset_bytes + v.span_bytes() > bytes_.size())
        throw error("host_tensor::view: view " + v.shape_string() + " reaches past the buffer");
    return v;
}

}  // namespace ssmkit
