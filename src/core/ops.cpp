// Entry points: validate, check that the data lives where the backend computes, dispatch.
#include "ssmkit/ops.h"

#include "ssmkit/backend.h"
#include "ssmkit/error.h"

namespace ssmkit {
namespace {

void require_device(const char* op, const backend& be, const tensor_view& v) {
    if (v.device != be.device())
        throw backend_error(std::string(op) + ": backend '" + be.name() + "' computes on " +
                            (be.device() == device_kind::host ? "host" : "cuda") +
                            " memory but the tensors live on " +
                            (v.device == device_kind::host ? "host" : "cuda") + " memory");
}

}  // namespace

void ssm_conv(backend& be, const tensor_view& sx, const tensor_view& c, const tensor_view& out) {
    conv_args a;
    a.shape = validate_conv("ssm_conv", sx, c, nullptr, out);
    require_device("ssm_conv", be, sx);
    a.sx = sx;
    a.c = c;
    a.out = out;
    be.conv(a);
}

void ssm_conv_bias_silu(backend& be, const tensor_view& sx, const tensor_view& c,
                        const tensor_view& bias, const tensor_view& out) {
    conv_args a;
    a.shape = validate_conv("ssm_conv_bias_silu", sx, c, &bias, out);
    require_device("ssm_conv_bias_silu", be, sx);
    a.sx = sx;
    a.c = c;
    a.bias = bias;
    a.out = out;
    a.fuse_bias_silu = true;
    be.conv(a);
}

void ssm_scan(backend& be, const tensor_view& s, const tensor_view& x, const tensor_view& dt,
              const tensor_view& A, const tensor_view& B, const tensor_view& C,
              const tensor_view& ids, const tensor_view& out, int n_keep) {
    scan_args a;
    a.shape = validate_scan(s, x, dt, A, B, C, ids, out, n_keep);
    require_device("ssm_scan", be, s);
    a.s = s;
    a.x = x;
    a.dt = dt;
    a.A = A;
    a.B = B;
    a.C = C;
    a.ids = ids;
    a.out = out;
    be.scan(a);
}

}  // namespace ssmkit
