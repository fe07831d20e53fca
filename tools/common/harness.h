// Test and benchmark harness shared by test-ops and the GoogleTest suite: cases, random inputs,
// running an op on any backend (inputs copied to its device with their strides kept, the output
// poisoned with NaN first) and the error metric.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ssmkit/backend.h"
#include "ssmkit/tensor.h"

namespace ssmkit::harness {

// A host buffer and a view into it (views may be strided, or share one buffer).
// Not copyable: the view points into this object's own buffer.
struct host_input {
    host_tensor buf;
    tensor_view view;

    host_input() = default;
    host_input(host_input&&) = default;
    host_input& operator=(host_input&&) = default;
    host_input(const host_input&) = delete;
    host_input& operator=(const host_input&) = delete;
};

struct conv_case {
    int64_t d_conv = 4, n_t = 1, d_inner = 1, n_s = 1;
    bool bias_silu = false;
    int64_t seq_pad = 0;  // extra floats between sequences of sx (a strided nb[2])

    // test-backend-ops style: SSM_CONV(type=f32,ne_a=[..],ne_b=[..])
    std::string name() const;
    // Bytes the op must move: every input read once, the output written once.
    double bytes() const;
};

enum class init_kind { uniform, model_like };

struct scan_case {
    int64_t d_state = 16, head_dim = 1, n_head = 1, n_group = 1, n_t = 1, n_seqs = 1;
    int64_t n_slots = 0;  // 0: n_seqs; more gives spare slots and permuted ids
    int n_keep = 1;
    bool mamba1 = false;
    bool fused_xbc = false;  // x, B, C as views into one [P*H + 2*G*N, T, S] buffer
    init_kind init = init_kind::uniform;

    int64_t slots() const { return n_slots > 0 ? n_slots : n_seqs; }
    std::string name() const;  // SSM_SCAN(type=f32,d_state=..,...)
    scan_shape shape() const;
    double bytes() const;       // minimum bytes moved (state read once, inputs, output)
    double flops() const;       // 5 per state element per token: h*a + B*xdt (3), y += h*C (2)
};

struct conv_inputs {
    host_input sx, c, bias;
};

struct scan_inputs {
    host_input s, x, dt, A, B, C, ids;
};

// Uniform [-1, 1] data (model-like scans: dt in [-6, 3] with a few above 20, A = -exp(U[0, 2.77])).
conv_inputs make_conv_inputs(const conv_case& cc, uint64_t seed);
scan_inputs make_scan_inputs(const scan_case& sc, uint64_t seed);

// The random Mamba-2 cases of ops_property_test (iteration iter of its loop, drawn from rng);
// tools/ssd-precision draws the same ones from the same seed.
scan_case random_mamba2_case(std::mt19937_64& rng, int iter);

// The bytes a host view spans, copied to a backend's device, the view re-pointed at them
// (strides kept).
class device_input {
public:
    device_input(backend& be, const tensor_view& host_view);
    const tensor_view& view() const { return view_; }

private:
    device_buffer buf_;
    tensor_view view_;
};

// Runs the op once on `be` with outputs poisoned with NaN; returns the output on the host.
std::vector<float> run_conv(backend& be, const conv_case& cc, const conv_inputs& in);
std::vector<float> run_scan(backend& be, const scan_case& sc, const scan_inputs& in);

// Device-resident copies of a case's inputs and output, for repeated (timed) runs.
struct conv_on_device {
    conv_on_device(backend& be, const conv_case& cc, const conv_inputs& in);
    void run();
    backend& be;
    conv_case cc;
    device_input sx, c;
    std::unique_ptr<device_input> bias;
    device_buffer out;
};
struct scan_on_device {
    scan_on_device(backend& be, const scan_case& sc, const scan_inputs& in);
    void run();
    backend& be;
    scan_case sc;
    device_input s, x, dt, A, B, C, ids;
    device_buffer out;
};

// An implementation independent of cpu-ref (token-outer loops over whole states, flat index
// arithmetic on the host buffers), used to check cpu-ref itself.
std::vector<float> oracle_conv(const conv_case& cc, const conv_inputs& in);
std::vector<float> oracle_scan(const scan_case& sc, const scan_inputs& in);

// One golden file (see ../shared/golden/README.md) run on `be` with a NaN-poisoned output:
// the NMSE against the file's `out` (y and the kept-state blocks k < n_t, which the file defines)
// and the bound the backend declares for it. Throws ssmkit::error on a malformed file.
struct golden_result {
    std::string op;  // golden.op: ssm_conv or ssm_scan
    double nmse = 0;
    double bound = 1e-7;
};
golden_result run_golden(backend& be, const std::string& path);

// Normalized mean squared error sum((a-b)^2) / sum(b^2), as ggml's tests compute it;
// +infinity when `a` holds a non-finite value (an unwritten, NaN-poisoned element).
double nmse(const float* a, const float* b, size_t n);

// Fresh seed from the clock and the process id.
uint64_t fresh_seed();

// The random tests' seed: SSMKIT_TEST_SEED when set (to replay a failure, whose message prints
// the seed), else fresh_seed(). Throws ssmkit::error when the variable is not a number.
uint64_t test_seed();

}  // namespace ssmkit::harness
