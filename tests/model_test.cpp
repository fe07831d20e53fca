// The hybrid model runner on the tiny synthetic presets: batching, micro-batching and single
// steps must agree; GGUF round trips must be exact; bad files must fail with a clear message.
//
// Token ids are drawn from a fresh seed each run (SSMKIT_TEST_SEED=N repeats one); every
// failure prints the seed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "ssmkit/backend.h"
#include "ssmkit/gguf.h"
#include "ssmkit/model.h"

using namespace ssmkit;
namespace fs = std::filesystem;

namespace {

uint64_t test_seed() {
    static const uint64_t seed = [] {
        if (const char* s = std::getenv("SSMKIT_TEST_SEED")) return uint64_t(std::strtoull(s, nullptr, 10));
        return (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
    }();
    return seed;
}

std::string seed_note() { return "token seed " + std::to_string(test_seed()) + " (rerun with SSMKIT_TEST_SEED)"; }

std::vector<int32_t> random_tokens(std::mt19937_64& rng, int64_t n_vocab, size_t n) {
    std::uniform_int_distribution<int32_t> d(0, int32_t(n_vocab - 1));
    std::vector<int32_t> t(n);
    for (auto& v : t) v = d(rng);
    return t;
}

double nmse(const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const double d = double(got[i]) - want[i];
        num += d * d;
        den += double(want[i]) * want[i];
    }
    return den > 0 ? num / den : num;
}

// Rows [begin, end) of a [rows][V] logits buffer.
std::vector<float> rows(const std::vector<float>& l, int64_t V, int64_t begin, int64_t end) {
    return std::vector<float>(l.begin() + begin * V, l.begin() + end * V);
}

const model::model& tiny(const std::string& preset) {
    static model::model granite = model::make_synthetic("tiny", 7);
    static model::model mamba = model::make_synthetic("mamba2-tiny", 7);
    return preset == "tiny" ? granite : mamba;
}

model::context_params params(int n_slots, int n_ctx, const std::string& backend = "") {
    model::context_params p;
    p.n_slots = n_slots;
    p.n_ctx = n_ctx;
    p.backend = backend;
    p.threads = 1;
    return p;
}

fs::path temp_file(const std::string& name) {
    return fs::path(::testing::TempDir()) / ("ssmkit_model_test_" + std::to_string(::getpid()) + "_" + name);
}

class Presets : public ::testing::TestWithParam<std::string> {};

TEST_P(Presets, LogitsAreFiniteAndNonTrivial) {
    SCOPED_TRACE(seed_note());
    const auto& m = tiny(GetParam());
    std::mt19937_64 rng(test_seed());
    model::context ctx(m, params(1, 64));
    std::vector<float> l;
    ctx.decode({random_tokens(rng, m.hp.n_vocab, 32)}, {0}, 512, true, l);
    double sum = 0, sq = 0;
    for (float v : l) {
        ASSERT_TRUE(std::isfinite(v));
        sum += v;
        sq += double(v) * v;
    }
    const double mean = sum / double(l.size()), var = sq / double(l.size()) - mean * mean;
    EXPECT_GT(var, 1e-4) << "logits are (nearly) constant";
    EXPECT_LT(var, 1e4) << "logits blew up";
}

// (a) A prompt evaluated at once equals the same tokens fed one at a time, on every backend.
TEST_P(Presets, PrefillEqualsSingleSteps) {
    SCOPED_TRACE(seed_note());
    const auto& m = tiny(GetParam());
    const int64_t V = m.hp.n_vocab;
    std::mt19937_64 rng(test_seed() + 1);
    const auto toks = random_tokens(rng, V, 24);
    for (const auto& be : available_backends()) {
        SCOPED_TRACE("backend " + be);
        model::context whole(m, params(1, 64, be)), steps(m, params(1, 64, be));
        std::vector<float> all, one;
        whole.decode({toks}, {0}, 512, true, all);
        for (size_t t = 0; t < toks.size(); ++t) {
            const int32_t tok = toks[t];
            const int slot = 0;
            steps.decode_ubatch(&tok, &slot, 1, 1, true, one);
            EXPECT_LE(nmse(one, rows(all, V, int64_t(t), int64_t(t) + 1)), 1e-6) << "token " << t;
        }
        EXPECT_EQ(whole.n_past(0), 24);
        EXPECT_EQ(steps.n_past(0), 24);
    }
}

// (b) Sequences batched together (in permuted slots) equal each one run alone, through prefill
// and generation.
TEST_P(Presets, BatchedEqualsAlone) {
    SCOPED_TRACE(seed_note());
    const auto& m = tiny(GetParam());
    const int64_t V = m.hp.n_vocab;
    std::mt19937_64 rng(test_seed() + 2);
    const int B = 3;
    std::vector<std::vector<int32_t>> prompts, gen;
    for (int j = 0; j < B; ++j) {
        prompts.push_back(random_tokens(rng, V, 16));
        gen.push_back(random_tokens(rng, V, 5));
    }
    const std::vector<int> slots = {2, 0, 1};

    model::context batched(m, params(B, 32));
    std::vector<float> lb;
    batched.decode(prompts, slots, 512, false, lb);
    std::vector<std::vector<float>> batched_steps = {lb};
    for (size_t i = 0; i < 5; ++i) {
        std::vector<std::vector<int32_t>> step;
        for (int j = 0; j < B; ++j) step.push_back({gen[size_t(j)][i]});
        batched.decode(step, slots, 512, false, lb);
        batched_steps.push_back(lb);
    }

    for (int j = 0; j < B; ++j) {
        SCOPED_TRACE("sequence " + std::to_string(j));
        model::context alone(m, params(1, 32));
        std::vector<float> la;
        alone.decode({prompts[size_t(j)]}, {0}, 512, false, la);
        EXPECT_LE(nmse(la, rows(batched_steps[0], V, j, j + 1)), 1e-6) << "after the prompt";
        for (size_t i = 0; i < 5; ++i) {
            alone.decode({{gen[size_t(j)][i]}}, {0}, 512, false, la);
            EXPECT_LE(nmse(la, rows(batched_steps[i + 1], V, j, j + 1)), 1e-6) << "generated token " << i;
        }
    }
}

// (c) Results do not depend on the micro-batch size (which changes how many sequences and
// tokens each SSM_CONV / SSM_SCAN call sees).
TEST_P(Presets, UbatchSizeDoesNotMatter) {
    SCOPED_TRACE(seed_note());
    const auto& m = tiny(GetParam());
    const int64_t V = m.hp.n_vocab;
    std::mt19937_64 rng(test_seed() + 3);
    const std::vector<std::vector<int32_t>> prompts = {random_tokens(rng, V, 20), random_tokens(rng, V, 20)};
    const auto more = std::vector<std::vector<int32_t>>{random_tokens(rng, V, 6), random_tokens(rng, V, 6)};
    std::vector<float> ref_a, ref_b;
    {
        model::context ctx(m, params(2, 32));
        ctx.decode(prompts, {0, 1}, 512, true, ref_a);
        ctx.decode(more, {0, 1}, 512, true, ref_b);
    }
    for (int ub : {1, 2, 3, 7, 13, 40}) {
        SCOPED_TRACE("ubatch " + std::to_string(ub));
        model::context ctx(m, params(2, 32));
        std::vector<float> a, b;
        ctx.decode(prompts, {0, 1}, ub, true, a);
        ctx.decode(more, {0, 1}, ub, true, b);
        EXPECT_LE(nmse(a, ref_a), 1e-6);
        EXPECT_LE(nmse(b, ref_b), 1e-6);
    }
}

// clear_slot forgets a sequence completely.
TEST_P(Presets, ClearedSlotStartsFresh) {
    SCOPED_TRACE(seed_note());
    const auto& m = tiny(GetParam());
    std::mt19937_64 rng(test_seed() + 4);
    const auto a = random_tokens(rng, m.hp.n_vocab, 12), b = random_tokens(rng, m.hp.n_vocab, 9);
    model::context ctx(m, params(1, 32)), fresh(m, params(1, 32));
    std::vector<float> l1, l2;
    ctx.decode({a}, {0}, 512, false, l1);
    ctx.clear_slot(0);
    EXPECT_EQ(ctx.n_past(0), 0);
    ctx.decode({b}, {0}, 512, false, l1);
    fresh.decode({b}, {0}, 512, false, l2);
    EXPECT_EQ(l1, l2);
}

// (d) A model written as f32 GGUF and read back gives bit-identical logits; quantized copies load
// and stay close.
TEST_P(Presets, GgufRoundTrip) {
    SCOPED_TRACE(seed_note());
    const auto& m = tiny(GetParam());
    std::mt19937_64 rng(test_seed() + 5);
    const auto toks = random_tokens(rng, m.hp.n_vocab, 16);
    auto run = [&](const model::model& mm) {
        model::context ctx(mm, params(1, 32));
        std::vector<float> l;
        ctx.decode({toks}, {0}, 512, true, l);
        return l;
    };
    const auto want = run(m);
    struct kind { gguf::tensor_type type; double bound; };
    for (auto k : {kind{gguf::tensor_type::f32, 0.0}, kind{gguf::tensor_type::f16, 1e-4},
                   kind{gguf::tensor_type::bf16, 1e-2}, kind{gguf::tensor_type::q8_0, 1e-2}}) {
        SCOPED_TRACE(std::string("stored as ") + gguf::tensor_type_name(k.type));
        const auto path = temp_file(GetParam() + "_" + gguf::tensor_type_name(k.type) + ".gguf");
        model::save_gguf(m, path.string(), k.type);
        const model::model back = model::load(path.string());
        EXPECT_EQ(back.hp.n_layer, m.hp.n_layer);
        EXPECT_EQ(back.hp.n_head_kv, m.hp.n_head_kv);
        EXPECT_EQ(back.hp.d_state, m.hp.d_state);
        EXPECT_EQ(back.hp.n_group, m.hp.n_group);
        EXPECT_EQ(back.hp.embedding_scale, m.hp.embedding_scale);
        EXPECT_EQ(back.hp.logit_scale, m.hp.logit_scale);
        EXPECT_EQ(back.tied_output(), m.tied_output());
        const auto got = run(back);
        if (k.bound == 0.0)
            EXPECT_EQ(got, want);
        else
            EXPECT_LE(nmse(got, want), k.bound);
        fs::remove(path);
    }
}

INSTANTIATE_TEST_SUITE_P(Model, Presets, ::testing::Values("tiny", "mamba2-tiny"),
                         [](const auto& info) { return info.param == "tiny" ? std::string("granite_tiny") : std::string("mamba2_tiny"); });

// ---- (e) bad files ----

// Copies a GGUF, letting `edit` change metadata and tensors on the way.
struct gguf_copy {
    std::map<std::string, gguf::value> kv;
    struct t { std::string name; gguf::tensor_type type; std::vector<int64_t> ne; std::vector<unsigned char> bytes; };
    std::vector<t> tensors;

    explicit gguf_copy(const std::string& path) {
        gguf::reader r(path);
        kv = r.metadata();
        for (const auto& ti : r.tensors()) {
            const auto* p = static_cast<const unsigned char*>(ti.data);
            tensors.push_back({ti.name, ti.type, std::vector<int64_t>(ti.ne, ti.ne + std::max(ti.n_dims, 1)),
                               std::vector<unsigned char>(p, p + ti.nbytes)});
        }
    }
    void write(const std::string& path) const {
        gguf::writer w;
        for (const auto& [k, v] : kv)
            if (k.rfind("GGUF.", 0) != 0) w.set_value(k, v);
        for (const auto& x : tensors) w.add_tensor(x.name, x.type, x.ne, x.bytes.data(), x.bytes.size());
        w.write(path);
    }
};

class BadFiles : public ::testing::Test {
protected:
    void SetUp() override {
        good_ = temp_file("good.gguf");
        model::save_gguf(tiny("tiny"), good_.string());
        bad_ = temp_file("bad.gguf");
    }
    void TearDown() override {
        fs::remove(good_);
        fs::remove(bad_);
    }
    // Loads `bad_` and returns the error message (fails the test when it loads).
    std::string load_error() {
        try {
            model::load(bad_.string());
        } catch (const ssmkit::error& e) {
            return e.what();
        } catch (const std::exception& e) {
            ADD_FAILURE() << "not an ssmkit::error: " << e.what();
            return e.what();
        }
        ADD_FAILURE() << "the bad file loaded";
        return "";
    }
    fs::path good_, bad_;
};

TEST_F(BadFiles, GoodFileLoads) { EXPECT_NO_THROW(model::load(good_.string())); }

TEST_F(BadFiles, MissingTensor) {
    gguf_copy c(good_.string());
    c.tensors.erase(std::remove_if(c.tensors.begin(), c.tensors.end(),
                                   [](const auto& t) { return t.name == "blk.1.ssm_in.weight"; }),
                    c.tensors.end());
    c.write(bad_.string());
    const std::string msg = load_error();
    EXPECT_NE(msg.find("missing tensor 'blk.1.ssm_in.weight'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(bad_.string()), std::string::npos) << msg;
}

TEST_F(BadFiles, WrongArchitecture) {
    gguf_copy c(good_.string());
    c.kv["general.architecture"].s = "llama";
    c.write(bad_.string());
    const std::string msg = load_error();
    EXPECT_NE(msg.find("'llama'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("granitehybrid"), std::string::npos) << msg;
}

TEST_F(BadFiles, WrongShape) {
    gguf_copy c(good_.string());
    for (auto& t : c.tensors)
        if (t.name == "blk.0.ssm_out.weight") std::swap(t.ne[0], t.ne[1]);  // transposed
    c.write(bad_.string());
    const std::string msg = load_error();
    EXPECT_NE(msg.find("'blk.0.ssm_out.weight' has shape [64,128], expected [128,64]"), std::string::npos) << msg;
}

TEST_F(BadFiles, MissingKey) {
    gguf_copy c(good_.string());
    c.kv.erase("granitehybrid.ssm.state_size");
    c.write(bad_.string());
    const std::string msg = load_error();
    EXPECT_NE(msg.find("granitehybrid.ssm.state_size"), std::string::npos) << msg;
}

TEST_F(BadFiles, RopeAttentionIsRefused) {
    gguf_copy c(good_.string());
    c.kv["granitehybrid.rope.scaling.finetuned"].u = 1;
    c.kv["granitehybrid.rope.scaling.finetuned"].i = 1;
    c.write(bad_.string());
    const std::string msg = load_error();
    EXPECT_NE(msg.find("RoPE"), std::string::npos) << msg;
}

TEST_F(BadFiles, UnsupportedTensor) {
    gguf_copy c(good_.string());
    c.tensors.push_back({"blk.2.attn_output.bias", gguf::tensor_type::f32, {64}, std::vector<unsigned char>(256, 0)});
    c.write(bad_.string());
    const std::string msg = load_error();
    EXPECT_NE(msg.find("blk.2.attn_output.bias"), std::string::npos) << msg;
}

TEST_F(BadFiles, TruncatedFile) {
    const auto size = fs::file_size(good_);
    fs::copy_file(good_, bad_, fs::copy_options::overwrite_existing);
    fs::resize_file(bad_, size / 2);
    const std::string msg = load_error();
    EXPECT_NE(msg.find(bad_.string()), std::string::npos) << msg;
}

TEST_F(BadFiles, NotAGgufFile) {
    std::ofstream(bad_) << "this is not a model\n";
    const std::string msg = load_error();
    EXPECT_NE(msg.find(bad_.string()), std::string::npos) << msg;
}

TEST(ModelErrors, UnknownPreset) {
    try {
        model::load("synthetic:no-such-model");
        FAIL() << "loaded";
    } catch (const model::model_error& e) {
        EXPECT_NE(std::string(e.what()).find("no-such-model"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("tiny"), std::string::npos) << e.what();
    }
}

TEST(ModelErrors, ContextLimitsAreChecked) {
    const auto& m = tiny("tiny");
    model::context ctx(m, params(2, 8));
    std::vector<float> l;
    EXPECT_THROW(ctx.decode({std::vector<int32_t>(9, 1)}, {0}, 512, false, l), ssmkit::error);   // past n_ctx
    EXPECT_THROW(ctx.decode({{1}}, {2}, 512, false, l), ssmkit::error);                           // no slot 2
    EXPECT_THROW(ctx.decode({{int32_t(m.hp.n_vocab)}}, {0}, 512, false, l), ssmkit::error);       // bad token
    EXPECT_EQ(ctx.n_past(0), 0) << "a rejected batch must not change the state";
}

}  // namespace
