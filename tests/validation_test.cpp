// One test per validation rule: the error names the tensor and field, and the output is untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "common/harness.h"
#include "ssmkit/error.h"
#include "ssmkit/ops.h"

using namespace ssmkit;
using namespace ssmkit::harness;

namespace {

constexpr float kSentinel = 12345.f;

struct conv_fixture {
    conv_case cc;
    conv_inputs in;
    host_tensor out;
    tensor_view sx, c, bias, o;
    conv_fixture() {
        cc.d_conv = 4;
        cc.n_t = 5;
        cc.d_inner = 6;
        cc.n_s = 2;
        in = make_conv_inputs(cc, 7);
        out = host_tensor(dtype::f32, {cc.d_inner, cc.n_t, cc.n_s});
        for (int64_t i = 0; i < out.nelements(); ++i) out.data<float>()[i] = kSentinel;
        sx = in.sx.view;
        c = in.c.view;
        bias = in.bias.view;
        o = out.view();
    }
    bool untouched() const {
        for (int64_t i = 0; i < out.nelements(); ++i)
            if (out.data<float>()[i] != kSentinel) return false;
        return true;
    }
};

struct scan_fixture {
    scan_case sc;
    scan_inputs in;
    host_tensor out;
    tensor_view s, x, dt, A, B, C, ids, o;
    int K = 2;
    scan_fixture() {
        sc.d_state = 8;
        sc.head_dim = 4;
        sc.n_head = 6;
        sc.n_group = 2;
        sc.n_t = 3;
        sc.n_seqs = 2;
        sc.n_slots = 3;
        sc.n_keep = K;
        in = make_scan_inputs(sc, 11);
        out = host_tensor(dtype::f32, {sc.shape().out_elements()});
        for (int64_t i = 0; i < out.nelements(); ++i) out.data<float>()[i] = kSentinel;
        s = in.s.view; x = in.x.view; dt = in.dt.view; A = in.A.view;
        B = in.B.view; C = in.C.view; ids = in.ids.view; o = out.view();
    }
    void run() { ssm_scan(*make_backend("cpu-ref"), s, x, dt, A, B, C, ids, o, K); }
    bool untouched() const {
        for (int64_t i = 0; i < out.nelements(); ++i)
            if (out.data<float>()[i] != kSentinel) return false;
        return true;
    }
};

// Runs f, expects a shape_error naming `tensor` and `field`, returns its message.
std::string expect_shape_error(const std::function<void()>& f, const std::string& tensor, const std::string& field) {
    try {
        f();
    } catch (const shape_error& e) {
        EXPECT_EQ(e.tensor(), tensor) << e.what();
        EXPECT_EQ(e.field(), field) << e.what();
        EXPECT_NE(std::string(e.what()).find("expected"), std::string::npos);
        return e.what();
    }
    ADD_FAILURE() << "no shape_error for tensor '" << tensor << "' " << field;
    return "";
}

#define CONV_RULE(test_name, mutate, tensor, field)                                          \
    TEST(ConvValidation, test_name) {                                                        \
        conv_fixture f;                                                                      \
        mutate;                                                                              \
        auto be = make_backend("cpu-ref");                                                   \
        expect_shape_error([&] { ssm_conv_bias_silu(*be, f.sx, f.c, f.bias, f.o); }, tensor, field); \
        EXPECT_TRUE(f.untouched());                                                          \
    }

CONV_RULE(SxType, f.sx.type = dtype::f16, "sx", "type")
CONV_RULE(CType, f.c.type = dtype::i32, "c", "type")
CONV_RULE(OutType, f.o.type = dtype::bf16, "out", "type")
CONV_RULE(SxNull, f.sx.data = nullptr, "sx", "data")
CONV_RULE(SxChannels, f.sx.ne[1] = 5, "sx", "ne[1]")
CONV_RULE(SxFourthDim, f.sx.ne[3] = 2, "sx", "ne[3]")
CONV_RULE(SxTooShort, f.sx.ne[0] = 3, "sx", "ne[0]")
CONV_RULE(SxElementStride, f.sx.nb[0] = 8, "sx", "nb[0]")
CONV_RULE(SxRowStride, f.sx.nb[1] += 4, "sx", "nb[1]")
CONV_RULE(SxSeqStrideOverlaps, f.sx.nb[2] = 4, "sx", "nb[2]")
CONV_RULE(CNotContiguous, f.c.nb[1] = 20, "c", "nb[1]")
CONV_RULE(CThirdDim, f.c.ne[2] = 2, "c", "ne[2]")
CONV_RULE(OutTokens, f.o.ne[1] = 4, "out", "ne[1]")
CONV_RULE(OutChannels, f.o.ne[0] = 7, "out", "ne[0]")
CONV_RULE(OutSequences, f.o.ne[2] = 1, "out", "ne[2]")
CONV_RULE(OutNotContiguous, f.o.nb[1] = 100, "out", "nb[1]")
CONV_RULE(BiasLength, f.bias.ne[0] = 5, "bias", "ne[0]")
CONV_RULE(BiasType, f.bias.type = dtype::f16, "bias", "type")
CONV_RULE(OutOverlapsInput, f.o.data = f.sx.data, "out", "memory")
CONV_RULE(DeviceMismatch, f.c.device = device_kind::cuda, "c", "device")

TEST(ConvValidation, MessageNamesExpectedAndActual) {
    conv_fixture f;
    f.sx.ne[1] = 5;
    auto be = make_backend("cpu-ref");
    const std::string msg = expect_shape_error([&] { ssm_conv(*be, f.sx, f.c, f.o); }, "sx", "ne[1]");
    EXPECT_NE(msg.find("ssm_conv"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected 6"), std::string::npos) << msg;
    EXPECT_NE(msg.find("got 5"), std::string::npos) << msg;
}

#define SCAN_RULE(test_name, mutate, tensor, field)                    \
    TEST(ScanValidation, test_name) {                                  \
        scan_fixture f;                                                \
        mutate;                                                        \
        expect_shape_error([&] { f.run(); }, tensor, field);           \
        EXPECT_TRUE(f.untouched());                                    \
    }

SCAN_RULE(SType, f.s.type = dtype::f16, "s", "type")
SCAN_RULE(IdsType, f.ids.type = dtype::f32, "ids", "type")
SCAN_RULE(SNotContiguous, f.s.nb[1] = 4, "s", "nb[1]")
SCAN_RULE(XHeadDim, f.x.ne[0] = 3, "x", "ne[0]")
SCAN_RULE(XHeads, f.x.ne[1] = 5, "x", "ne[1]")
SCAN_RULE(XElementStride, f.x.nb[0] = 8, "x", "nb[0]")
SCAN_RULE(XRowStride, f.x.nb[1] = 20, "x", "nb[1]")
SCAN_RULE(XTokenStrideOverlaps, f.x.nb[2] = 4, "x", "nb[2]")
SCAN_RULE(DtTokens, f.dt.ne[1] = 2, "dt", "ne[1]")
SCAN_RULE(DtHeads, f.dt.ne[0] = 7, "dt", "ne[0]")
SCAN_RULE(ANeitherForm, f.A.ne[0] = 3, "A", "ne[0]")
SCAN_RULE(AHeads, f.A.ne[1] = 5, "A", "ne[1]")
SCAN_RULE(BStateSize, f.B.ne[0] = 7, "B", "ne[0]")
SCAN_RULE(CGroups, f.C.ne[1] = 3, "C", "ne[1]")
SCAN_RULE(BRowStride, f.B.nb[1] = 4, "B", "nb[1]")
SCAN_RULE(GroupsDivideHeads, (f.B.ne[1] = 4, f.C.ne[1] = 4, f.B.nb[2] = f.C.nb[2] = 4 * 8 * 4), "B", "ne[1]")
SCAN_RULE(IdsLength, f.ids.ne[0] = 3, "ids", "ne[0]")
SCAN_RULE(TooFewSlots, f.s.ne[3] = 1, "s", "ne[3]")
SCAN_RULE(IdOutOfRange, f.in.ids.buf.data<int32_t>()[1] = 3, "ids", "value[1]")
SCAN_RULE(NegativeId, f.in.ids.buf.data<int32_t>()[0] = -1, "ids", "value[0]")
SCAN_RULE(OutSize, f.o.ne[0] -= 1, "out", "elements")
SCAN_RULE(KeepZero, f.K = 0, "out", "K")
SCAN_RULE(OutOverlapsState, f.o.data = f.s.data, "out", "memory")
SCAN_RULE(DeviceMismatch, f.dt.device = device_kind::cuda, "dt", "device")

TEST(ScanValidation, Mamba1KeepsOneState) {
    scan_case sc;
    sc.mamba1 = true;
    sc.d_state = 16;
    sc.n_head = 8;
    sc.n_t = 2;
    sc.n_keep = 1;
    auto in = make_scan_inputs(sc, 3);
    host_tensor out(dtype::f32, {sc.shape().y_elements() + 2 * sc.shape().state_elements()});
    expect_shape_error(
        [&] {
            ssm_scan(*make_backend("cpu-ref"), in.s.view, in.x.view, in.dt.view, in.A.view, in.B.view, in.C.view,
                     in.ids.view, out.view(), 2);
        },
        "out", "K");
}

TEST(BackendRegistry, UnknownBackendNamesTheChoices) {
    try {
        make_backend("tpu");
        FAIL() << "no error for an unknown backend";
    } catch (const backend_error& e) {
        EXPECT_NE(std::string(e.what()).find("cpu-ref"), std::string::npos) << e.what();
    }
}

TEST(BackendRegistry, HostBackendRejectsDeviceTensors) {
    conv_fixture f;
    f.sx.device = f.c.device = f.o.device = f.bias.device = device_kind::cuda;
    EXPECT_THROW(ssm_conv(*make_backend("cpu-ref"), f.sx, f.c, f.o), backend_error);
    EXPECT_TRUE(f.untouched());
}

}  // namespace
