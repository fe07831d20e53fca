// batched-bench: prompt processing and generation throughput of a hybrid Mamba-2 / attention
// model for B parallel sequences, in the manner of llama.cpp's llama-batched-bench.
//
// For every (PP, TG, B): B sequences of PP prompt tokens are prefilled in micro-batches of -ub
// tokens (T_PP), then TG tokens are generated for all B sequences, one token per sequence per
// step (T_TG). The recurrent state, conv state and KV cache are per sequence.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ssmkit/backend.h"
#include "ssmkit/model.h"

using namespace ssmkit;
using clock_type = std::chrono::steady_clock;

namespace {

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// CLI11 takes single-dash names of one letter only; llama.cpp's -npp, -ntg, -npl, -ngl and -ub
// are rewritten to their long forms before parsing.
std::vector<std::string> rewrite_args(int argc, char** argv) {
    static const std::map<std::string, std::string> alias = {
        {"-npp", "--n-prompt"}, {"-ntg", "--n-gen"}, {"-npl", "--n-parallel"},
        {"-ngl", "--n-gpu-layers"}, {"-ub", "--ubatch-size"}, {"-fa", "--flash-attn"}};
    std::vector<std::string> out;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        const auto eq = a.find('=');
        const std::string head = a.substr(0, eq);
        auto it = alias.find(head);
        if (it != alias.end()) a = it->second + (eq == std::string::npos ? "" : a.substr(eq));
        out.push_back(a);
    }
    std::reverse(out.begin(), out.end());  // CLI11's parse(vector) consumes from the back
    return out;
}

int32_t argmax(const float* v, int64_t n) {
    return int32_t(std::max_element(v, v + n) - v);
}

struct result {
    int pp, tg, pl;
    int64_t n_kv;
    double t_pp, t_tg;
    model::profile prof;
};

void print_profile_line(FILE* f, const result& r) {
    const double tot = r.prof.total();
    auto pct = [&](double v) { return tot > 0 ? 100.0 * v / tot : 0.0; };
    std::fprintf(f,
                 "| %5d | %5d | %4d | %6.1f%% | %7.1f%% | %7.1f%% | %8.1f%% | %5.1f%% |\n",
                 r.pp, r.tg, r.pl, pct(r.prof.gemm), pct(r.prof.ssm_conv), pct(r.prof.ssm_scan),
                 pct(r.prof.attention), pct(r.prof.other));
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "batched-bench: throughput of prompt processing (PP) and text generation (TG) for B parallel sequences "
        "of a hybrid Mamba-2 / attention model (GGUF 'granitehybrid' or 'mamba2', or a built-in synthetic model), "
        "as llama.cpp's llama-batched-bench reports it.\n"
        "Columns: S_PP = B*PP/T_PP, S_TG = B*TG/T_TG, N_KV = B*(PP+TG), S = N_KV/T.\n"
        "llama.cpp's single-dash names are accepted: -npp, -ntg, -npl, -ngl, -ub."};

    std::string model_spec = "synthetic:granite-4.0-h-1b";
    int n_ctx = 4096, n_batch = 2048, n_ubatch = 512, ngl = 0, threads = 0;
    std::vector<int> npp = {128}, ntg = {16}, npl = {1, 2};
    std::string output_format = "md", backend, save_path, save_type = "f32";
    bool profile = false, list_presets = false, flash_attn = false;
    uint64_t seed = 42;

    app.add_option("-m,--model", model_spec,
                   "GGUF file, or synthetic:NAME for random weights with a preset's shapes (see --list-presets)")
        ->capture_default_str();
    app.add_option("-c,--ctx-size", n_ctx, "Total KV/context budget in tokens; every B*(PP+TG) must fit")
        ->capture_default_str();
    app.add_option("-b,--batch-size", n_batch, "Logical batch size (tokens per decode call)")->capture_default_str();
    app.add_option("--ubatch-size", n_ubatch, "Micro-batch size: tokens evaluated together (also -ub)")
        ->capture_default_str();
    app.add_option("--n-prompt", npp, "Prompt lengths PP, comma-separated (also -npp)")->delimiter(',')->capture_default_str();
    app.add_option("--n-gen", ntg, "Generated tokens TG, comma-separated (also -ntg)")->delimiter(',')->capture_default_str();
    app.add_option("--n-parallel", npl, "Parallel sequences B, comma-separated (also -npl)")->delimiter(',')->capture_default_str();
    app.add_option("--n-gpu-layers", ngl, "Layers on the GPU (also -ngl); only 0 (CPU) is built so far")
        ->capture_default_str();
    app.add_flag("--flash-attn", flash_attn, "Accepted for llama.cpp compatibility (also -fa); no effect");
    app.add_option("-t,--threads", threads, "CPU threads for GEMMs and the SSM backend (0 = all cores)")
        ->capture_default_str();
    app.add_option("--backend", backend, "ssmkit backend for SSM_CONV/SSM_SCAN: cpu or cpu-ref (default: cpu if built, else cpu-ref)");
    app.add_option("--output-format", output_format, "Results as a markdown table (md) or JSON lines (jsonl)")
        ->check(CLI::IsMember({"md", "jsonl"}))
        ->capture_default_str();
    app.add_flag("--profile", profile, "Also report the share of time per op kind: GEMM, SSM_CONV, SSM_SCAN, attention, other");
    app.add_option("--seed", seed, "Seed for synthetic weights and prompt tokens")->capture_default_str();
    app.add_option("--save", save_path, "Write the model as GGUF to this file before benchmarking (e.g. to keep a synthetic model)");
    app.add_option("--save-type", save_type, "Weight type for --save: f32, f16, bf16 or q8_0")
        ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}))
        ->capture_default_str();
    app.add_flag("--list-presets", list_presets, "List the synthetic models and exit");

    try {
        auto args = rewrite_args(argc, argv);
        app.parse(args);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
    if (list_presets) {
        for (const auto& p : model::synthetic_presets()) std::printf("synthetic:%s\n", p.c_str());
        return 0;
    }
    if (ngl != 0) {
        std::fprintf(stderr,
                     "batched-bench: -ngl %d asks for GPU layers, but the model's GPU path is not built yet; "
                     "use -ngl 0 (CPU)\n", ngl);
        return 2;
    }
    auto positive = [](const std::vector<int>& v, const char* name) {
        for (int x : v)
            if (x < (std::string(name) == "-ntg" ? 0 : 1)) {
                std::fprintf(stderr, "batched-bench: %s values must be %s, got %d\n", name,
                             std::string(name) == "-ntg" ? ">= 0" : ">= 1", x);
                return false;
            }
        return !v.empty();
    };
    if (!positive(npp, "-npp") || !positive(ntg, "-ntg") || !positive(npl, "-npl")) return 2;
    if (n_batch < 1 || n_ubatch < 1) {
        std::fprintf(stderr, "batched-bench: -b and -ub must be >= 1\n");
        return 2;
    }
    // Every configuration must fit in the context budget, as llama.cpp's KV cache would need.
    int max_pl = 0, max_seq = 0;
    for (int pp : npp)
        for (int tg : ntg)
            for (int pl : npl) {
                const int64_t need = int64_t(pl) * (pp + tg);
                if (need > n_ctx) {
                    std::fprintf(stderr,
                                 "batched-bench: -c %d is too small: PP=%d TG=%d B=%d needs B*(PP+TG) = %lld tokens; "
                                 "raise -c to at least %lld\n",
                                 n_ctx, pp, tg, pl, (long long)need, (long long)need);
                    return 2;
                }
                max_pl = std::max(max_pl, pl);
                max_seq = std::max(max_seq, pp + tg);
            }
    const int ub = std::min(n_batch, n_ubatch);  // a logical batch is split into micro-batches

    try {
        const bool md = output_format == "md";
        FILE* info = md ? stdout : stderr;
        const auto t_load = clock_type::now();
        std::fprintf(stderr, "%s model %s ...\n",
                     model_spec.rfind("synthetic:", 0) == 0 ? "building synthetic" : "loading", model_spec.c_str());
        model::model m = model::load(model_spec, seed, threads);
        std::fprintf(stderr, "model ready in %.1f s\n", seconds_since(t_load));
        if (!save_path.empty()) {
            const auto t_save = clock_type::now();
            const std::map<std::string, gguf::tensor_type> types = {{"f32", gguf::tensor_type::f32},
                                                                     {"f16", gguf::tensor_type::f16},
                                                                     {"bf16", gguf::tensor_type::bf16},
                                                                     {"q8_0", gguf::tensor_type::q8_0}};
            model::save_gguf(m, save_path, types.at(save_type));
            std::fprintf(stderr, "saved %s (%s) in %.1f s\n", save_path.c_str(), save_type.c_str(), seconds_since(t_save));
        }

        model::context_params cp;
        cp.n_slots = max_pl;
        cp.n_ctx = max_seq;
        cp.backend = backend;
        cp.threads = threads;
        cp.profile = profile;
        model::context ctx(m, cp);

        std::fprintf(info, "model: %s\n%s\n", m.name.c_str(), m.describe().c_str());
        std::fprintf(info, "backend: %s (%s); GEMM: OpenBLAS sgemm; weights f32 in memory\n",
                     ctx.backend_name().c_str(), ctx.backend_description().c_str());
        std::fprintf(info, "n_kv_max = %d, n_batch = %d, n_ubatch = %d, n_gpu_layers = %d, n_threads = %d, seed = %llu\n\n",
                     n_ctx, n_batch, n_ubatch, ngl, threads, (unsigned long long)seed);

        std::mt19937_64 rng(seed ^ 0x5eedull);
        std::uniform_int_distribution<int32_t> tok(0, int32_t(m.hp.n_vocab - 1));
        std::vector<float> logits;

        // Warm-up: thread pools and first-touch of the weights, outside the timings.
        {
            std::fprintf(stderr, "warming up ...\n");
            ctx.decode({{tok(rng)}}, {0}, ub, false, logits);
            ctx.clear();
            ctx.reset_profile();
        }

        if (md) {
            std::printf("|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |\n");
            std::printf("|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|\n");
            std::fflush(stdout);
        }
        std::vector<result> results;
        bool non_finite = false;
        for (int pp : npp)
            for (int tg : ntg)
                for (int pl : npl) {
                    std::fprintf(stderr, "running PP=%d TG=%d B=%d ...\n", pp, tg, pl);
                    ctx.clear();
                    ctx.reset_profile();
                    std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(pl), std::vector<int32_t>(static_cast<size_t>(pp)));
                    for (auto& p : prompts)
                        for (auto& t : p) t = tok(rng);
                    std::vector<int> slots(static_cast<size_t>(pl));
                    for (int j = 0; j < pl; ++j) slots[size_t(j)] = j;

                    const auto t0 = clock_type::now();
                    // Logical batches of n_batch tokens, each split into micro-batches of -ub.
                    ctx.decode(prompts, slots, ub, false, logits);
                    const double t_pp = seconds_since(t0);

                    const int64_t V = m.hp.n_vocab;
                    std::vector<std::vector<int32_t>> next(static_cast<size_t>(pl), std::vector<int32_t>(1));
                    const auto t1 = clock_type::now();
                    for (int i = 0; i < tg; ++i) {
                        for (int j = 0; j < pl; ++j) next[size_t(j)][0] = argmax(logits.data() + j * V, V);  // greedy
                        ctx.decode(next, slots, ub, false, logits);
                    }
                    const double t_tg = seconds_since(t1);
                    for (float v : logits) non_finite |= !std::isfinite(v);

                    result r{pp, tg, pl, int64_t(pl) * (pp + tg), t_pp, t_tg, ctx.get_profile()};
                    results.push_back(r);
                    const double t = t_pp + t_tg;
                    const double s_pp = pl * double(pp) / t_pp, s_tg = tg > 0 ? pl * double(tg) / t_tg : 0.0;
                    if (md) {
                        std::printf("| %5d | %6d | %4d | %6lld | %8.3f | %8.2f | %8.3f | %8.2f | %8.3f | %8.2f |\n", pp, tg, pl,
                                    (long long)r.n_kv, t_pp, s_pp, t_tg, s_tg, t, double(r.n_kv) / t);
                    } else {
                        std::printf("{\"model\": \"%s\", \"backend\": \"%s\", \"n_kv_max\": %d, \"n_batch\": %d, \"n_ubatch\": %d, "
                                    "\"n_gpu_layers\": %d, \"n_threads\": %d, \"pp\": %d, \"tg\": %d, \"pl\": %d, \"n_kv\": %lld, "
                                    "\"t_pp\": %f, \"speed_pp\": %f, \"t_tg\": %f, \"speed_tg\": %f, \"t\": %f, \"speed\": %f",
                                    m.name.c_str(), ctx.backend_name().c_str(), n_ctx, n_batch, n_ubatch, ngl, threads, pp, tg,
                                    pl, (long long)r.n_kv, t_pp, s_pp, t_tg, s_tg, t, double(r.n_kv) / t);
                        if (profile) {
                            const auto& p = r.prof;
                            std::printf(", \"profile_s\": {\"gemm\": %f, \"ssm_conv\": %f, \"ssm_scan\": %f, \"attention\": %f, \"other\": %f}",
                                        p.gemm, p.ssm_conv, p.ssm_scan, p.attention, p.other);
                        }
                        std::printf("}\n");
                    }
                    std::fflush(stdout);
                }
        if (profile && md) {
            std::printf("\nshare of time per op kind (PP + TG):\n\n");
            std::printf("|    PP |    TG |    B |    GEMM | SSM_CONV | SSM_SCAN | attention |  other |\n");
            std::printf("|-------|-------|------|---------|----------|----------|-----------|--------|\n");
            for (const auto& r : results) print_profile_line(stdout, r);
        }
        {
            // A health check of the activations: the last logits should be finite and spread out.
            double sum = 0, sq = 0;
            for (float v : logits) sum += v, sq += double(v) * v;
            const double n = double(std::max<size_t>(1, logits.size())), mean = sum / n;
            std::fprintf(stderr, "last logits: mean %.4g, std %.4g%s\n", mean, std::sqrt(std::max(0.0, sq / n - mean * mean)),
                         non_finite ? ", NON-FINITE values" : ", all finite");
        }
        if (non_finite) {
            std::fprintf(stderr, "batched-bench: warning: non-finite logits were produced\n");
            return 1;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "batched-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
