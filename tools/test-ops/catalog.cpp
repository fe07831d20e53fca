#include "catalog.h"

#include <algorithm>
#include <cctype>
#include <regex>

namespace ssmkit::testops {

using harness::conv_case;
using harness::init_kind;
using harness::scan_case;

std::string op_case::name() const {
    return std::visit([](const auto& c) { return c.name(); }, c);
}

std::string op_case::op() const {
    if (auto* cc = std::get_if<conv_case>(&c)) return cc->bias_silu ? "SSM_CONV_BIAS_SILU" : "SSM_CONV";
    return "SSM_SCAN";
}

double op_case::bytes() const {
    return std::visit([](const auto& c) { return c.bytes(); }, c);
}

double op_case::flops() const {
    if (auto* sc = std::get_if<scan_case>(&c)) return sc->flops();
    return 0;
}

bool op_case::is_prefill_scan() const {
    auto* sc = std::get_if<scan_case>(&c);
    return sc && sc->n_t > 1;
}

namespace {

scan_case scan(int64_t N, int64_t P, int64_t H, int64_t G, int64_t T, int64_t S) {
    scan_case sc;
    sc.d_state = N;
    sc.head_dim = P;
    sc.n_head = H;
    sc.n_group = G;
    sc.n_t = T;
    sc.n_seqs = S;
    return sc;
}

scan_case mamba1(int64_t channels, int64_t T, int64_t S) {
    scan_case sc = scan(16, 1, channels, 1, T, S);
    sc.mamba1 = true;
    return sc;
}

conv_case conv(int64_t d_conv, int64_t n_t, int64_t d_inner, int64_t n_s, bool bias = false) {
    conv_case cc;
    cc.d_conv = d_conv;
    cc.n_t = n_t;
    cc.d_inner = d_inner;
    cc.n_s = n_s;
    cc.bias_silu = bias;
    return cc;
}

}  // namespace

std::vector<op_case> test_catalog() {
    std::vector<op_case> out;
    for (bool bias : {false, true})
        for (int64_t w = 2; w <= 5; ++w)
            for (int64_t ch : {1, 7, 1024, 1536, 2048, 3328})
                for (int64_t nt : {int64_t(1), int64_t(2), w, int64_t(64), int64_t(257), int64_t(515)})
                    for (int64_t ns : {1, 4}) {
                        conv_case cc = conv(w, nt, ch, ns, bias);
                        if (ns > 1 && ch == 7) cc.seq_pad = 5;  // a strided sequence dimension
                        out.push_back({cc});
                    }

    // Mamba-1: uniform and model-like data, spare slots.
    {
        scan_case a = mamba1(1024, 32, 4);
        a.n_slots = 6;
        out.push_back({a});
        scan_case b = mamba1(1024, 32, 4);
        b.init = init_kind::model_like;
        out.push_back({b});
        out.push_back({mamba1(37, 1, 3)});
        // Three groups and a channel count that leaves vector tails in every group.
        scan_case c = mamba1(1029, 40, 2);
        c.n_group = 3;
        c.init = init_kind::model_like;
        out.push_back({c});
    }
    // Mamba-2 with 2 groups, x/B/C as views into one buffer.
    {
        scan_case a = scan(128, 64, 16, 2, 32, 4);
        a.fused_xbc = true;
        a.n_slots = 7;
        out.push_back({a});
        scan_case b = scan(128, 64, 16, 2, 32, 4);
        b.init = init_kind::model_like;
        b.n_keep = 4;
        out.push_back({b});
    }
    // Falcon-H1 and Nemotron-H shapes.
    {
        scan_case f = scan(256, 64, 8, 2, 64, 2);
        f.init = init_kind::model_like;
        out.push_back({f});
        for (int64_t T : {256, 512}) {
            scan_case n = scan(128, 80, 128, 1, T, 1);
            n.init = init_kind::model_like;
            out.push_back({n});
        }
    }
    // granite-4.0-h-1b at decode and prefill sizes.
    {
        const struct { int64_t T, S; int K; bool fused; int64_t slots; } g[] = {
            {1, 1, 1, false, 0}, {1, 4, 1, true, 9}, {1, 8, 3, false, 10}, {7, 3, 4, true, 5},
            {7, 1, 3, false, 0}, {300, 2, 4, true, 3}, {512, 1, 1, true, 2}, {512, 1, 3, false, 0},
        };
        for (const auto& e : g) {
            scan_case sc = scan(128, 64, 48, 1, e.T, e.S);
            sc.n_keep = e.K;
            sc.fused_xbc = e.fused;
            sc.n_slots = e.slots;
            sc.init = init_kind::model_like;
            out.push_back({sc});
        }
    }
    // Odd sizes that leave vector tails everywhere.
    {
        scan_case o = scan(17, 3, 5, 5, 13, 2);
        o.n_keep = 2;
        o.n_slots = 4;
        out.push_back({o});
        scan_case k = scan(33, 7, 6, 3, 2, 3);
        k.n_keep = 4;  // more kept states than tokens
        k.fused_xbc = true;
        out.push_back({k});
        // d_state padded to 128 and head_dim tiles cut short in the chunked walks (both of them),
        // the last of three chunks partial, two groups, kept states inside it
        scan_case w = scan(100, 40, 6, 2, 150, 2);
        w.n_keep = 3;
        w.n_slots = 5;
        w.init = init_kind::model_like;
        out.push_back({w});
        // y's size (135 floats) leaves the state blocks after it off 16-byte alignment.
        scan_case u = scan(16, 3, 5, 1, 9, 1);
        u.n_keep = 2;
        out.push_back({u});
    }
    return out;
}

std::vector<op_case> perf_catalog() {
    std::vector<op_case> out;
    for (auto [nt, ns] : {std::pair<int64_t, int64_t>{512, 1}, {4096, 1}, {512, 8}, {1, 1}, {1, 8}, {1, 64}})
        out.push_back({conv(4, nt, 3328, ns)});
    out.push_back({conv(4, 512, 3328, 1, true)});
    out.push_back({conv(4, 1, 3328, 1, true)});
    for (auto [T, S] : {std::pair<int64_t, int64_t>{512, 1}, {4096, 1}, {512, 8}, {1, 1}, {1, 8}, {1, 64}}) {
        scan_case sc = scan(128, 64, 48, 1, T, S);
        sc.init = init_kind::model_like;
        out.push_back({sc});
    }
    for (int64_t T : {512, 1}) {
        scan_case sc = scan(128, 80, 128, 1, T, 1);
        sc.init = init_kind::model_like;
        out.push_back({sc});
    }
    for (int64_t T : {512, 1}) {
        scan_case sc = mamba1(8192, T, 1);
        sc.init = init_kind::model_like;
        out.push_back({sc});
    }
    return out;
}

bool case_selected(const op_case& c, const std::string& op_filter, const std::string& regex) {
    if (!op_filter.empty()) {
        std::string want = op_filter;
        std::transform(want.begin(), want.end(), want.begin(), [](unsigned char ch) { return std::toupper(ch); });
        if (want != c.op()) return false;
    }
    if (!regex.empty() && !std::regex_search(c.name(), std::regex(regex))) return false;
    return true;
}

}  // namespace ssmkit::testops
