// Every rule of the spec, checked before any work. A violation throws shape_error naming the
// op, the tensor, the field and the expected and actual values.
#include <cstdint>
#include <string>

#include "ssmkit/error.h"
#include "ssmkit/ops.h"

namespace ssmkit {
namespace {

std::string str(int64_t v) { return std::to_string(v); }
std::string ne_field(int d) { return "ne[" + std::to_string(d) + "]"; }
std::string nb_field(int d) { return "nb[" + std::to_string(d) + "]"; }

struct checker {
    const char* op;

    void fail(const char* t, const std::string& field, const std::string& expected,
              const std::string& actual) const {
        throw shape_error(op, t, field, expected, actual);
    }

    void present(const char* t, const tensor_view& v) const {
        if (v.data == nullptr) fail(t, "data", "a non-null pointer", "nullptr");
        for (int d = 0; d < 4; ++d)
            if (v.ne[d] < 1) fail(t, ne_field(d), ">= 1", str(v.ne[d]));
    }
    void type(const char* t, const tensor_view& v, dtype want) const {
        if (v.type != want) fail(t, "type", dtype_name(want), dtype_name(v.type));
    }
    void ne(const char* t, const tensor_view& v, int d, int64_t want) const {
        if (v.ne[d] != want) fail(t, ne_field(d), str(want), str(v.ne[d]));
    }
    void shape(const char* t, const tensor_view& v, int64_t n0, int64_t n1, int64_t n2, int64_t n3) const {
        const int64_t want[4] = {n0, n1, n2, n3};
        for (int d = 0; d < 4; ++d) ne(t, v, d, want[d]);
    }
    void nb(const char* t, const tensor_view& v, int d, size_t want) const {
        if (v.ne[d] > 1 && v.nb[d] != want)
            fail(t, nb_field(d), std::to_string(want) + " (rows contiguous)", std::to_string(v.nb[d]));
    }
    // A free stride must at least step over the dimensions below it, so elements never alias.
    void nb_at_least(const char* t, const tensor_view& v, int d, size_t want) const {
        if (v.ne[d] > 1 && v.nb[d] < want)
            fail(t, nb_field(d), ">= " + std::to_string(want) + " (no overlap)", std::to_string(v.nb[d]));
    }
    void contiguous(const char* t, const tensor_view& v) const {
        size_t expect = dtype_size(v.type);
        for (int d = 0; d < 4; ++d) {
            nb(t, v, d, expect);
            expect *= static_cast<size_t>(v.ne[d]);
        }
    }
    void same_device(const char* t, const tensor_view& v, const tensor_view& ref) const {
        if (v.device != ref.device)
            fail(t, "device", ref.device == device_kind::host ? "host" : "cuda",
                 v.device == device_kind::host ? "host" : "cuda");
    }
    // The output must not share bytes with an input: the op reads inputs after writing output.
    void disjoint(const char* out_name, const tensor_view& out, const char* in_name,
                  const tensor_view& in) const {
        const char* o0 = static_cast<const char*>(out.data);
        const char* o1 = o0 + out.span_bytes();
        const char* i0 = static_cast<const char*>(in.data);
        const char* i1 = i0 + in.span_bytes();
        if (o0 < i1 && i0 < o1)
            fail(out_name, "memory", std::string("no overlap with '") + in_name + "'", "overlapping");
    }
};

}  // namespace

conv_shape validate_conv(const char* op, const tensor_view& sx, const tensor_view& c,
                         const tensor_view* bias, const tensor_view& out) {
    checker k{op};
    k.present("sx", sx);
    k.present("c", c);
    k.present("out", out);
    k.type("sx", sx, dtype::f32);
    k.type("c", c, dtype::f32);
    k.type("out", out, dtype::f32);

    conv_shape sh;
    sh.d_conv = c.ne[0];
    sh.d_inner = c.ne[1];
    k.ne("c", c, 2, 1);
    k.ne("c", c, 3, 1);
    k.contiguous("c", c);

    k.ne("sx", sx, 1, sh.d_inner);
    k.ne("sx", sx, 3, 1);
    if (sx.ne[0] < sh.d_conv)
        k.fail("sx", ne_field(0), ">= d_conv = " + str(sh.d_conv) + " (d_conv-1 state columns + n_t >= 1 tokens)",
               str(sx.ne[0]));
    k.nb("sx", sx, 0, 4);
    k.nb("sx", sx, 1, static_cast<size_t>(sx.ne[0]) * 4);
    k.nb_at_least("sx", sx, 2, static_cast<size_t>(sx.ne[0] * sx.ne[1]) * 4);
    sh.n_t = sx.ne[0] - (sh.d_conv - 1);
    sh.n_s = sx.ne[2];

    k.shape("out", out, sh.d_inner, sh.n_t, sh.n_s, 1);
    k.contiguous("out", out);
    k.same_device("c", c, sx);
    k.same_device("out", out, sx);
    k.disjoint("out", out, "sx", sx);
    k.disjoint("out", out, "c", c);

    if (bias) {
        k.present("bias", *bias);
        k.type("bias", *bias, dtype::f32);
        k.shape("bias", *bias, sh.d_inner, 1, 1, 1);
        k.contiguous("bias", *bias);
        k.same_device("bias", *bias, sx);
        k.disjoint("out", out, "bias", *bias);
    }
    return sh;
}

scan_shape validate_scan(const tensor_view& s, const tensor_view& x, const tensor_view& dt,
                         const tensor_view& A, const tensor_view& B, const tensor_view& C,
                         const tensor_view& ids, const tensor_view& out, int n_keep) {
    checker k{"ssm_scan"};
    const std::pair<const char*, const tensor_view*> all[] = {
        {"s", &s}, {"x", &x}, {"dt", &dt}, {"A", &A}, {"B", &B}, {"C", &C}, {"ids", &ids}, {"out", &out}};
    for (auto& [name, v] : all) {
        k.present(name, *v);
        k.type(name, *v, v == &ids ? dtype::i32 : dtype::f32);
        k.same_device(name, *v, s);
    }

    scan_shape sh;
    sh.d_state = s.ne[0];
    sh.head_dim = s.ne[1];
    sh.n_head = s.ne[2];
    sh.n_slots = s.ne[3];
    k.contiguous("s", s);

    sh.n_t = x.ne[2];
    sh.n_seqs = x.ne[3];
    k.ne("x", x, 0, sh.head_dim);
    k.ne("x", x, 1, sh.n_head);
    k.nb("x", x, 0, 4);
    k.nb("x", x, 1, static_cast<size_t>(sh.head_dim) * 4);
    k.nb_at_least("x", x, 2, static_cast<size_t>(sh.head_dim * sh.n_head) * 4);
    k.nb_at_least("x", x, 3, static_cast<size_t>(sh.head_dim * sh.n_head) * 4);

    k.shape("dt", dt, sh.n_head, sh.n_t, sh.n_seqs, 1);
    k.contiguous("dt", dt);

    if (A.ne[0] != 1 && A.ne[0] != sh.d_state)
        k.fail("A", ne_field(0), "1 (Mamba-2) or d_state = " + str(sh.d_state) + " (Mamba-1)", str(A.ne[0]));
    sh.mamba1 = A.ne[0] != 1;
    k.ne("A", A, 1, sh.n_head);
    k.ne("A", A, 2, 1);
    k.ne("A", A, 3, 1);
    k.contiguous("A", A);
    if (sh.mamba1) k.ne("x", x, 0, 1);  // Mamba-1 has head_dim 1

    sh.n_group = B.ne[1];
    for (auto [name, v] : {std::pair<const char*, const tensor_view*>{"B", &B}, {"C", &C}}) {
        k.shape(name, *v, sh.d_state, sh.n_group, sh.n_t, sh.n_seqs);
        k.nb(name, *v, 0, 4);
        k.nb(name, *v, 1, static_cast<size_t>(sh.d_state) * 4);
        k.nb_at_least(name, *v, 2, static_cast<size_t>(sh.d_state * sh.n_group) * 4);
        k.nb_at_least(name, *v, 3, static_cast<size_t>(sh.d_state * sh.n_group) * 4);
    }
    if (sh.n_head % sh.n_group != 0)
        k.fail("B", ne_field(1), "a divisor of n_head = " + str(sh.n_head), str(sh.n_group));

    k.shape("ids", ids, sh.n_seqs, 1, 1, 1);
    k.contiguous("ids", ids);
    if (sh.n_slots < sh.n_seqs)
        k.fail("s", ne_field(3), ">= n_seqs = " + str(sh.n_seqs) + " (one slot per sequence at least)",
               str(sh.n_slots));
    if (n_keep < 1) k.fail("out", "K", ">= 1", str(n_keep));
    if (sh.mamba1 && n_keep != 1) k.fail("out", "K", "1 (Mamba-1 keeps only the final state)", str(n_keep));
    sh.n_keep = n_keep;

    k.contiguous("out", out);
    if (out.nelements() != sh.out_elements())
        k.fail("out", "elements",
               str(sh.out_elements()) + " (y " + str(sh.y_elements()) + " + K=" + str(n_keep) + " x states " +
                   str(sh.state_elements()) + ")",
               str(out.nelements()));
    for (auto& [name, v] : all)
        if (v != &out) k.disjoint("out", out, name, *v);

    // Slot numbers can be checked only where the host can read them; device backends check
    // them in the kernel.
    if (ids.device == device_kind::host) {
        for (int64_t q = 0; q < sh.n_seqs; ++q) {
            const int32_t id = *ids.ptr<int32_t>(q);
            if (id < 0 || id >= sh.n_slots)
                k.fail("ids", "value[" + str(q) + "]", "a slot in [0, " + str(sh.n_slots) + ")", str(id));
        }
    }
    return sh;
}

}  // namespace ssmkit
