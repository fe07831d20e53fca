// Tests of the GGUF reader and writer: round trips, half-precision conversions, one test per
// kind of malformed file, truncation/corruption sweeps, and the project's golden files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ssmkit/error.h"
#include "ssmkit/gguf.h"
#include "ssmkit/tensor.h"

namespace fs = std::filesystem;
using namespace ssmkit;
using gguf::tensor_type;
using gguf::value;
using gguf::value_type;

namespace {

// ---------------------------------------------------------------------------------------------
// Helpers

// A file under the test temp dir, unique per process and test, removed when the test ends.
class temp_file {
public:
    temp_file() {
        static int counter = 0;
        const auto* info = testing::UnitTest::GetInstance()->current_test_info();
        std::string base = testing::TempDir();
        if (!base.empty() && base.back() != '/') base += '/';
        path_ = base + "ssmkit_gguf_" + std::to_string(::getpid()) + "_" +
                (info ? std::string(info->test_suite_name()) + "_" + info->name() : "x") + "_" +
                std::to_string(counter++) + ".gguf";
    }
    ~temp_file() { std::remove(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

void write_bytes(const std::string& path, const std::vector<unsigned char>& b) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    ASSERT_TRUE(f.good()) << "cannot write " << path;
}

std::vector<unsigned char> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), {});
}

// Expects reading `path` to fail with a gguf_error whose message names the file and contains
// `phrase`. Any other exception escapes and fails the test.
void expect_gguf_error(const std::string& path, const std::string& phrase) {
    try {
        gguf::reader r(path);
        ADD_FAILURE() << "reading succeeded; expected an error containing \"" << phrase << "\"";
    } catch (const gguf_error& e) {
        const std::string w = e.what();
        EXPECT_NE(w.find(phrase), std::string::npos) << "message: " << w;
        EXPECT_NE(w.find(path), std::string::npos) << "message lacks the path: " << w;
    }
}

template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const gguf_error& e) {
        return e.what();
    }
    return "<no gguf_error>";
}

uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float float_of(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

bool f16_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0; }
bool bf16_is_nan(uint16_t h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0; }

// A GGUF file assembled byte by byte, so malformed tests can break one field at a known place.
struct bytes_out {
    std::vector<unsigned char> b;
    template <typename T>
    bytes_out& pod(T v) {
        const auto* p = reinterpret_cast<const unsigned char*>(&v);
        b.insert(b.end(), p, p + sizeof v);
        return *this;
    }
    bytes_out& str(const std::string& s) {
        pod<uint64_t>(s.size());
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
};

std::vector<unsigned char> kv_string(const std::string& key, const std::string& v) {
    bytes_out o;
    o.str(key).pod<uint32_t>(8).str(v);
    return o.b;
}
std::vector<unsigned char> kv_u32(const std::string& key, uint32_t v) {
    bytes_out o;
    o.str(key).pod<uint32_t>(4).pod(v);
    return o.b;
}
std::vector<unsigned char> kv_raw(const std::string& key, uint32_t type,
                                  const std::vector<unsigned char>& payload) {
    bytes_out o;
    o.str(key).pod(type);
    o.b.insert(o.b.end(), payload.begin(), payload.end());
    return o.b;
}

struct raw_tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type = 0;
    uint64_t offset = 0;
    std::optional<uint32_t> n_dims;  // defaults to ne.size()
};

struct raw_file {
    std::string magic = "GGUF";
    uint32_t version = 3;
    std::optional<uint64_t> n_tensors, n_kv;  // default: the real counts
    std::vector<std::vector<unsigned char>> kv;
    std::vector<raw_tensor> tensors;
    uint64_t pad_alignment = 32;  // only used to place the data section
    size_t data_size = 0;

    std::vector<unsigned char> encode() const {
        bytes_out o;
        o.b.insert(o.b.end(), magic.begin(), magic.end());
        o.pod(version).pod<uint64_t>(n_tensors.value_or(tensors.size()));
        o.pod<uint64_t>(n_kv.value_or(kv.size()));
        for (const auto& p : kv) o.b.insert(o.b.end(), p.begin(), p.end());
        for (const auto& t : tensors) {
            o.str(t.name).pod<uint32_t>(t.n_dims.value_or(static_cast<uint32_t>(t.ne.size())));
            for (uint64_t n : t.ne) o.pod(n);
            o.pod(t.type).pod(t.offset);
        }
        while (o.b.size() % pad_alignment) o.b.push_back(0);
        for (size_t k = 0; k < data_size; ++k) o.b.push_back(static_cast<unsigned char>(k * 7));
        return o.b;
    }
};

// Valid: one string key and two tensors, "alpha" f32 [4,2] at 0 and "beta_tensor" i32 [3] at 32.
raw_file base_file() {
    raw_file f;
    f.kv.push_back(kv_string("general.name", "tiny"));
    f.tensors.push_back({"alpha", {4, 2}, 0, 0, {}});
    f.tensors.push_back({"beta_tensor", {3}, 26, 32, {}});
    f.data_size = 64;
    return f;
}

size_t find_bytes(const std::vector<unsigned char>& hay, const std::string& needle) {
    const auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end());
    return it == hay.end() ? std::string::npos : static_cast<size_t>(it - hay.begin());
}

void expect_raw_error(const raw_file& f, const std::string& phrase) {
    temp_file tmp;
    write_bytes(tmp.path(), f.encode());
    expect_gguf_error(tmp.path(), phrase);
}

void expect_truncated_error(const std::vector<unsigned char>& full, size_t keep,
                            const std::string& phrase) {
    ASSERT_LT(keep, full.size());
    temp_file tmp;
    write_bytes(tmp.path(), std::vector<unsigned char>(full.begin(), full.begin() + keep));
    expect_gguf_error(tmp.path(), phrase);
}

// q8_0 reference quantizer: per block of 32, scale = amax / 127 stored as f16.
std::vector<unsigned char> quantize_q8_0(const std::vector<float>& x) {
    std::vector<unsigned char> out;
    for (size_t b = 0; b < x.size() / 32; ++b) {
        float amax = 0;
        for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(x[b * 32 + k]));
        const float d = amax / 127.0f;
        const uint16_t dh = gguf::f32_to_f16(d);
        out.push_back(static_cast<unsigned char>(dh & 0xff));
        out.push_back(static_cast<unsigned char>(dh >> 8));
        for (int k = 0; k < 32; ++k) {
            const float q = d == 0 ? 0.0f : std::round(x[b * 32 + k] / d);
            const auto qi = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
            out.push_back(static_cast<unsigned char>(qi));
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(GgufRoundTrip, AllMetadataTypes) {
    gguf::writer w;
    w.set_string("str", "hello");
    w.set_string("str.empty", "");
    w.set_string("str.nul", std::string("a\0b", 3));
    w.set_u32("u32", 4000000000u);
    w.set_i32("i32", -123456);
    w.set_u64("u64", std::numeric_limits<uint64_t>::max());
    w.set_f32("f32", 0.1f);
    w.set_bool("bool.t", true);
    w.set_bool("bool.f", false);
    w.set_i32_array("arr.i32", {1, -2, std::numeric_limits<int32_t>::max(),
                                std::numeric_limits<int32_t>::min()});
    w.set_i32_array("arr.empty", {});
    w.set_string_array("arr.str", {"x", "", "unicode \xc3\xbc", std::string(300, 'z')});
    w.set_u32("replaced", 1);
    w.set_string("replaced", "now a string");

    auto scalar = [](value_type t) {
        value v;
        v.type = t;
        return v;
    };
    value u8 = scalar(value_type::u8);
    u8.u = 255;
    value i8 = scalar(value_type::i8);
    i8.i = -128;
    value u16 = scalar(value_type::u16);
    u16.u = 65535;
    value i16 = scalar(value_type::i16);
    i16.i = -32768;
    value i64 = scalar(value_type::i64);
    i64.i = std::numeric_limits<int64_t>::min();
    value f64 = scalar(value_type::f64);
    f64.f = 1.0 / 3.0;
    w.set_value("u8", u8);
    w.set_value("i8", i8);
    w.set_value("u16", u16);
    w.set_value("i16", i16);
    w.set_value("i64", i64);
    w.set_value("f64", f64);

    // An array of arrays of u8, an array of f64, an array of bool.
    value nested = scalar(value_type::array);
    nested.elem_type = value_type::array;
    for (int r = 0; r < 3; ++r) {
        value row = scalar(value_type::array);
        row.elem_type = value_type::u8;
        for (int k = 0; k <= r; ++k) {
            value e = scalar(value_type::u8);
            e.u = static_cast<uint64_t>(10 * r + k);
            row.arr.push_back(e);
        }
        nested.arr.push_back(row);
    }
    w.set_value("arr.nested", nested);
    value af = scalar(value_type::array);
    af.elem_type = value_type::f64;
    for (double d : {-1.5, 0.0, 1e300}) {
        value e = scalar(value_type::f64);
        e.f = d;
        af.arr.push_back(e);
    }
    w.set_value("arr.f64", af);
    value ab = scalar(value_type::array);
    ab.elem_type = value_type::boolean;
    for (int b : {1, 0, 1}) {
        value e = scalar(value_type::boolean);
        e.u = static_cast<uint64_t>(b);
        ab.arr.push_back(e);
    }
    w.set_value("arr.bool", ab);

    temp_file tmp;
    w.write(tmp.path());
    gguf::reader r(tmp.path());
    EXPECT_EQ(r.version(), 3u);
    EXPECT_EQ(r.alignment(), 32u);
    EXPECT_EQ(r.metadata().size(), 22u);
    EXPECT_EQ(r.find("general.alignment"), nullptr);  // default alignment: key not written

    EXPECT_EQ(r.get_string("str"), "hello");
    EXPECT_EQ(r.get_string("str.empty"), "");
    EXPECT_EQ(r.get_string("str.nul"), std::string("a\0b", 3));
    EXPECT_EQ(r.find("u32")->type, value_type::u32);
    EXPECT_EQ(r.get_int("u32"), 4000000000LL);
    EXPECT_EQ(r.get_int("i32"), -123456);
    EXPECT_EQ(r.find("u64")->u, std::numeric_limits<uint64_t>::max());
    EXPECT_EQ(r.find("f32")->type, value_type::f32);
    EXPECT_EQ(static_cast<float>(r.get_float("f32")), 0.1f);
    EXPECT_TRUE(r.get_bool("bool.t"));
    EXPECT_FALSE(r.get_bool("bool.f"));
    EXPECT_EQ(r.get_int_array("arr.i32"),
              (std::vector<int64_t>{1, -2, std::numeric_limits<int32_t>::max(),
                                    std::numeric_limits<int32_t>::min()}));
    EXPECT_EQ(r.find("arr.i32")->elem_type, value_type::i32);
    EXPECT_TRUE(r.get_int_array("arr.empty").empty());
    const value* sa = r.find("arr.str");
    ASSERT_NE(sa, nullptr);
    ASSERT_EQ(sa->type, value_type::array);
    EXPECT_EQ(sa->elem_type, value_type::string);
    ASSERT_EQ(sa->arr.size(), 4u);
    EXPECT_EQ(sa->arr[0].s, "x");
    EXPECT_EQ(sa->arr[1].s, "");
    EXPECT_EQ(sa->arr[2].s, "unicode \xc3\xbc");
    EXPECT_EQ(sa->arr[3].s, std::string(300, 'z'));
    EXPECT_EQ(r.get_string("replaced"), "now a string");

    EXPECT_EQ(r.get_int("u8"), 255);
    EXPECT_EQ(r.get_int("i8"), -128);
    EXPECT_EQ(r.get_int("u16"), 65535);
    EXPECT_EQ(r.get_int("i16"), -32768);
    EXPECT_EQ(r.get_int("i64"), std::numeric_limits<int64_t>::min());
    EXPECT_EQ(r.find("f64")->type, value_type::f64);
    EXPECT_EQ(r.get_float("f64"), 1.0 / 3.0);

    const value* n = r.find("arr.nested");
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->elem_type, value_type::array);
    ASSERT_EQ(n->arr.size(), 3u);
    for (int row = 0; row < 3; ++row) {
        ASSERT_EQ(n->arr[row].type, value_type::array);
        EXPECT_EQ(n->arr[row].elem_type, value_type::u8);
        ASSERT_EQ(n->arr[row].arr.size(), static_cast<size_t>(row + 1));
        for (int k = 0; k <= row; ++k)
            EXPECT_EQ(n->arr[row].arr[k].u, static_cast<uint64_t>(10 * row + k));
    }
    const value* f = r.find("arr.f64");
    ASSERT_EQ(f->arr.size(), 3u);
    EXPECT_EQ(f->arr[0].f, -1.5);
    EXPECT_EQ(f->arr[2].f, 1e300);
    const value* b = r.find("arr.bool");
    ASSERT_EQ(b->arr.size(), 3u);
    EXPECT_EQ(b->arr[0].u, 1u);
    EXPECT_EQ(b->arr[1].u, 0u);

    // Keys are written in insertion order; the replaced key keeps its first place.
    const auto bytes = read_bytes(tmp.path());
    const size_t p_str = find_bytes(bytes, "str"), p_u32 = find_bytes(bytes, "u32"),
                 p_repl = find_bytes(bytes, "replaced"), p_u8 = find_bytes(bytes, "u8"),
                 p_bool = find_bytes(bytes, "arr.bool");
    EXPECT_LT(p_str, p_u32);
    EXPECT_LT(p_u32, p_repl);
    EXPECT_LT(p_repl, p_u8);
    EXPECT_LT(p_u8, p_bool);
}

TEST(GgufRoundTrip, TensorsOfEveryType) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> uni(-2.0f, 2.0f);

    std::vector<float> f32(5 * 3 * 2);
    for (float& v : f32) v = uni(rng);
    std::vector<float> f16_src(7 * 3), bf16_src(4 * 4), q8_src(64 * 3);
    for (float& v : f16_src) v = uni(rng);
    for (float& v : bf16_src) v = uni(rng) * 1000.0f;
    for (float& v : q8_src) v = uni(rng);
    q8_src[5] = 0;  // exact zero survives
    std::vector<uint16_t> f16_bits, bf16_bits;
    for (float v : f16_src) f16_bits.push_back(gguf::f32_to_f16(v));
    for (float v : bf16_src) bf16_bits.push_back(gguf::f32_to_bf16(v));
    const std::vector<int32_t> i32 = {0, -1, 7, std::numeric_limits<int32_t>::max(),
                                      std::numeric_limits<int32_t>::min(), 42};
    const std::vector<unsigned char> q8 = quantize_q8_0(q8_src);
    ASSERT_EQ(q8.size(), 6u * 34u);

    gguf::writer w;
    w.add_tensor("t.f32", tensor_type::f32, {5, 3, 2}, f32.data(), f32.size() * 4);
    w.add_tensor("t.f16", tensor_type::f16, {7, 3}, f16_bits.data(), f16_bits.size() * 2);
    w.add_tensor("t.bf16", tensor_type::bf16, {4, 4}, bf16_bits.data(), bf16_bits.size() * 2);
    w.add_tensor("t.i32", tensor_type::i32, {6}, i32.data(), i32.size() * 4);
    w.add_tensor("t.q8_0", tensor_type::q8_0, {64, 3}, q8.data(), q8.size());
    host_tensor ht(dtype::f32, {3, 1, 2, 1});
    for (int k = 0; k < 6; ++k) ht.data<float>()[k] = static_cast<float>(k) - 2.5f;
    w.add_tensor("t.host", ht);
    temp_file tmp;
    w.write(tmp.path());

    gguf::reader r(tmp.path());
    ASSERT_EQ(r.tensors().size(), 6u);
    EXPECT_EQ(r.tensors()[0].name, "t.f32");  // file order kept
    EXPECT_EQ(r.tensors()[4].name, "t.q8_0");
    for (const auto& t : r.tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;

    const auto& tf = r.tensor("t.f32");
    EXPECT_EQ(tf.type, tensor_type::f32);
    EXPECT_EQ(tf.n_dims, 3);
    EXPECT_EQ(tf.ne[0], 5);
    EXPECT_EQ(tf.ne[1], 3);
    EXPECT_EQ(tf.ne[2], 2);
    EXPECT_EQ(tf.ne[3], 1);
    EXPECT_EQ(tf.nbytes, 120u);
    const tensor_view v = r.view("t.f32");
    EXPECT_EQ(v.data, tf.data);  // zero copy
    EXPECT_EQ(v.type, dtype::f32);
    EXPECT_EQ(v.device, device_kind::host);
    EXPECT_TRUE(v.is_contiguous());
    EXPECT_EQ(v.nb[1], 20u);
    EXPECT_EQ(v.nb[2], 60u);
    for (int i2 = 0; i2 < 2; ++i2)
        for (int i1 = 0; i1 < 3; ++i1)
            for (int i0 = 0; i0 < 5; ++i0)
                EXPECT_EQ(*v.ptr<float>(i0, i1, i2), f32[(i2 * 3 + i1) * 5 + i0]);
    const host_tensor cf = r.to_f32("t.f32");
    EXPECT_EQ(cf.ne()[0], 5);
    EXPECT_EQ(cf.ne()[2], 2);
    EXPECT_EQ(0, std::memcmp(cf.raw(), f32.data(), 120));

    const host_tensor h16 = r.to_f32("t.f16");
    EXPECT_EQ(h16.ne()[0], 7);
    EXPECT_EQ(h16.ne()[1], 3);
    for (size_t k = 0; k < f16_src.size(); ++k) {
        const float got = h16.data<float>()[k];
        EXPECT_EQ(got, gguf::f16_to_f32(f16_bits[k]));
        EXPECT_LE(std::fabs(got - f16_src[k]), std::fabs(f16_src[k]) * 0x1p-11f + 0x1p-25f) << k;
    }
    const host_tensor hb = r.to_f32("t.bf16");
    for (size_t k = 0; k < bf16_src.size(); ++k) {
        const float got = hb.data<float>()[k];
        EXPECT_LE(std::fabs(got - bf16_src[k]), std::fabs(bf16_src[k]) * 0x1p-8f) << k;
    }

    const host_tensor hq = r.to_f32("t.q8_0");
    EXPECT_EQ(hq.ne()[0], 64);
    EXPECT_EQ(hq.ne()[1], 3);
    for (size_t b = 0; b < 6; ++b) {
        const uint16_t dh = static_cast<uint16_t>(q8[b * 34] | (q8[b * 34 + 1] << 8));
        const float d = gguf::f16_to_f32(dh);
        for (int k = 0; k < 32; ++k) {
            const size_t idx = b * 32 + static_cast<size_t>(k);
            const float got = hq.data<float>()[idx];
            // Exactly scale * quant, and within 0.6 of a step of the original (half a step of
            // rounding plus the f16 rounding of the scale times up to 127).
            EXPECT_EQ(got, d * static_cast<float>(static_cast<int8_t>(q8[b * 34 + 2 + k])));
            EXPECT_LE(std::fabs(got - q8_src[idx]), 0.6f * d) << idx;
        }
    }
    EXPECT_EQ(hq.data<float>()[5], 0.0f);

    const tensor_view vi = r.view("t.i32");
    EXPECT_EQ(vi.type, dtype::i32);
    EXPECT_EQ(vi.ne[0], 6);
    for (int k = 0; k < 6; ++k) EXPECT_EQ(*vi.ptr<int32_t>(k), i32[k]);

    const auto& th = r.tensor("t.host");  // trailing 1 dropped: [3,1,2]
    EXPECT_EQ(th.n_dims, 3);
    EXPECT_EQ(th.ne[1], 1);
    EXPECT_EQ(th.ne[2], 2);
    EXPECT_EQ(r.view("t.host").ptr<float>(0, 0, 1)[2], 2.5f);

    const std::string e1 = error_of([&] { r.view("t.f16"); });
    EXPECT_NE(e1.find("t.f16"), std::string::npos) << e1;
    EXPECT_NE(e1.find("f16"), std::string::npos) << e1;
    const std::string e2 = error_of([&] { r.to_f32("t.i32"); });
    EXPECT_NE(e2.find("t.i32"), std::string::npos) << e2;
    EXPECT_NE(error_of([&] { r.tensor("missing"); }).find("missing"), std::string::npos);
    EXPECT_EQ(r.find_tensor("missing"), nullptr);
}

TEST(GgufRoundTrip, NonDefaultAlignment) {
    for (uint32_t a : {1u, 8u, 64u, 4096u}) {
        SCOPED_TRACE("alignment " + std::to_string(a));
        const std::vector<float> x = {1.5f, -2.0f, 3.25f};
        const std::vector<float> y = {9, 8, 7, 6, 5};
        gguf::writer w;
        w.set_alignment(a);
        w.set_string("k", "v");
        w.add_tensor("x", tensor_type::f32, {3}, x.data(), 12);
        w.add_tensor("y", tensor_type::f32, {5}, y.data(), 20);
        temp_file tmp;
        w.write(tmp.path());
        gguf::reader r(tmp.path());
        EXPECT_EQ(r.alignment(), a);
        EXPECT_EQ(r.get_int("general.alignment"), a);
        EXPECT_EQ(r.tensor("y").offset % a, 0u);
        EXPECT_EQ(r.tensor("y").offset, a == 1 ? 12u : (12 + a - 1) / a * a);
        const host_tensor hx = r.to_f32("x"), hy = r.to_f32("y");
        EXPECT_EQ(0, std::memcmp(hx.raw(), x.data(), 12));
        EXPECT_EQ(0, std::memcmp(hy.raw(), y.data(), 20));
        if (a >= 4) {
            EXPECT_EQ(*r.view("y").ptr<float>(4), 5.0f);
        } else if (reinterpret_cast<uintptr_t>(r.tensor("x").data) % 4 != 0) {
            // Unaligned data cannot be viewed as float; the error says so instead of crashing.
            EXPECT_NE(error_of([&] { r.view("x"); }).find("aligned"), std::string::npos);
        }
        EXPECT_EQ(read_bytes(tmp.path()).size() % a, 0u);
    }
    // Alignment set through the metadata key is the same thing.
    gguf::writer w;
    w.set_u32("general.alignment", 128);
    const float one = 1;
    w.add_tensor("one", tensor_type::f32, {1}, &one, 4);
    temp_file tmp;
    w.write(tmp.path());
    gguf::reader r(tmp.path());
    EXPECT_EQ(r.alignment(), 128u);
    EXPECT_EQ(read_bytes(tmp.path()).size() % 128, 0u);
}

TEST(GgufRoundTrip, Version2IsAccepted) {
    raw_file f = base_file();
    f.version = 2;
    temp_file tmp;
    write_bytes(tmp.path(), f.encode());
    gguf::reader r(tmp.path());
    EXPECT_EQ(r.version(), 2u);
    EXPECT_EQ(r.get_string("general.name"), "tiny");
    EXPECT_EQ(r.tensor("beta_tensor").ne[0], 3);
}

TEST(GgufWriter, RejectsBadInput) {
    gguf::writer w;
    const std::vector<float> x(64, 1.0f);
    EXPECT_NE(error_of([&] { w.add_tensor("a", tensor_type::f32, {4, 2}, x.data(), 31); })
                  .find("32"),
              std::string::npos);
    w.add_tensor("a", tensor_type::f32, {4, 2}, x.data(), 32);
    EXPECT_NE(error_of([&] { w.add_tensor("a", tensor_type::f32, {4}, x.data(), 16); })
                  .find("duplicate tensor name 'a'"),
              std::string::npos);
    EXPECT_NE(error_of([&] { w.add_tensor("q", tensor_type::q8_0, {48}, x.data(), 51); })
                  .find("multiple of 32"),
              std::string::npos);
    EXPECT_NE(error_of([&] { w.add_tensor("z", tensor_type::f32, {4, 0}, x.data(), 0); })
                  .find("ne[1]"),
              std::string::npos);
    EXPECT_NE(error_of([&] { w.add_tensor("d", tensor_type::f32, {1, 1, 1, 1, 1}, x.data(), 4); })
                  .find("dimensions"),
              std::string::npos);
    EXPECT_NE(error_of([&] { w.add_tensor("t", static_cast<tensor_type>(2), {4}, x.data(), 8); })
                  .find("type 2"),
              std::string::npos);
    for (uint32_t a : {0u, 3u, 48u})
        EXPECT_NE(error_of([&] { w.set_alignment(a); }).find("power of two"), std::string::npos);
    EXPECT_NE(error_of([&] { w.set_string("general.alignment", "x"); }).find("u32"),
              std::string::npos);
    value bad;
    bad.type = value_type::u8;
    bad.u = 300;
    EXPECT_NE(error_of([&] { w.set_value("k", bad); }).find("'k'"), std::string::npos);
    value mixed;
    mixed.type = value_type::array;
    mixed.elem_type = value_type::u32;
    mixed.arr.push_back(bad);
    EXPECT_NE(error_of([&] { w.set_value("m", mixed); }).find("u8"), std::string::npos);
    EXPECT_NE(error_of([&] { w.write("/nonexistent-dir/x.gguf"); }).find(std::strerror(ENOENT)),
              std::string::npos);
}

TEST(GgufValue, ToString) {
    value v;
    v.type = value_type::u32;
    v.u = 7;
    EXPECT_EQ(v.to_string(), "7");
    v.type = value_type::i16;
    v.i = -3;
    EXPECT_EQ(v.to_string(), "-3");
    v.type = value_type::f32;
    v.f = 0.1f;
    EXPECT_EQ(v.to_string(), "0.1");
    v.type = value_type::f64;
    v.f = 1e-300;
    EXPECT_EQ(v.to_string(), "1e-300");
    v.type = value_type::boolean;
    v.u = 1;
    EXPECT_EQ(v.to_string(), "true");
    v.type = value_type::string;
    v.s = "a\"b\n";
    EXPECT_EQ(v.to_string(), "\"a\\\"b\\n\"");
    value a;
    a.type = value_type::array;
    a.elem_type = value_type::i32;
    for (int k = 0; k < 20; ++k) {
        value e;
        e.type = value_type::i32;
        e.i = k;
        a.arr.push_back(e);
    }
    EXPECT_EQ(a.to_string(), "[0, 1, 2, 3, 4, 5, 6, 7, ... (20 i32 items)]");
    a.arr.resize(2);
    EXPECT_EQ(a.to_string(), "[0, 1]");
}

TEST(GgufReader, GettersNameKeyAndType) {
    gguf::writer w;
    w.set_u32("n", 5);
    w.set_string("s", "text");
    w.set_u64("big", std::numeric_limits<uint64_t>::max());
    w.set_string_array("names", {"a"});
    w.set_f32("x", 2.5f);
    temp_file tmp;
    w.write(tmp.path());
    gguf::reader r(tmp.path());

    auto has = [](const std::string& msg, std::initializer_list<const char*> parts) {
        for (const char* p : parts)
            if (msg.find(p) == std::string::npos) return ::testing::AssertionFailure() << msg;
        return ::testing::AssertionSuccess();
    };
    EXPECT_TRUE(has(error_of([&] { r.get_string("n"); }), {"'n'", "u32", "string"}));
    EXPECT_TRUE(has(error_of([&] { r.get_int("s"); }), {"'s'", "string", "integer"}));
    EXPECT_TRUE(has(error_of([&] { r.get_float("n"); }), {"'n'", "u32", "float"}));
    EXPECT_TRUE(has(error_of([&] { r.get_bool("x"); }), {"'x'", "f32", "bool"}));
    EXPECT_TRUE(has(error_of([&] { r.get_int_array("names"); }), {"'names'", "array of string"}));
    EXPECT_TRUE(has(error_of([&] { r.get_int("big"); }), {"'big'", "int64"}));
    EXPECT_TRUE(has(error_of([&] { r.get_string("absent"); }), {"'absent'", "not found"}));
    EXPECT_EQ(r.get_int("n"), 5);
    EXPECT_EQ(r.get_float("x"), 2.5);
    EXPECT_EQ(r.find("absent"), nullptr);
}

// ---------------------------------------------------------------------------------------------
// Half-precision conversions

TEST(GgufHalf, F16Decode) {
    EXPECT_EQ(bits_of(gguf::f16_to_f32(0x0000)), 0u);
    EXPECT_EQ(bits_of(gguf::f16_to_f32(0x8000)), 0x80000000u);  // -0 keeps its sign
    EXPECT_EQ(gguf::f16_to_f32(0x0001), 0x1p-24f);              // smallest subnormal
    EXPECT_EQ(gguf::f16_to_f32(0x03ff), 1023 * 0x1p-24f);       // largest subnormal
    EXPECT_EQ(gguf::f16_to_f32(0x8001), -0x1p-24f);
    EXPECT_EQ(gguf::f16_to_f32(0x0400), 0x1p-14f);              // smallest normal
    EXPECT_EQ(gguf::f16_to_f32(0x3c00), 1.0f);
    EXPECT_EQ(gguf::f16_to_f32(0x3c01), 1.0f + 0x1p-10f);
    EXPECT_EQ(gguf::f16_to_f32(0xc000), -2.0f);
    EXPECT_EQ(gguf::f16_to_f32(0x7bff), 65504.0f);
    EXPECT_EQ(gguf::f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
    EXPECT_EQ(gguf::f16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(gguf::f16_to_f32(0x7e00)));
    EXPECT_TRUE(std::isnan(gguf::f16_to_f32(0x7c01)));  // signalling NaN is not infinity
    EXPECT_TRUE(std::signbit(gguf::f16_to_f32(0xfe00)));
}

TEST(GgufHalf, F16EncodeRounding) {
    const float inf = std::numeric_limits<float>::infinity();
    EXPECT_EQ(gguf::f32_to_f16(0.0f), 0x0000);
    EXPECT_EQ(gguf::f32_to_f16(-0.0f), 0x8000);
    EXPECT_EQ(gguf::f32_to_f16(1.0f), 0x3c00);
    EXPECT_EQ(gguf::f32_to_f16(-2.0f), 0xc000);
    EXPECT_EQ(gguf::f32_to_f16(65504.0f), 0x7bff);
    EXPECT_EQ(gguf::f32_to_f16(65519.0f), 0x7bff);  // below the halfway point
    EXPECT_EQ(gguf::f32_to_f16(65520.0f), 0x7c00);  // halfway, ties to even = overflow
    EXPECT_EQ(gguf::f32_to_f16(1e6f), 0x7c00);
    EXPECT_EQ(gguf::f32_to_f16(-1e6f), 0xfc00);
    EXPECT_EQ(gguf::f32_to_f16(inf), 0x7c00);
    EXPECT_EQ(gguf::f32_to_f16(-inf), 0xfc00);
    EXPECT_EQ(gguf::f32_to_f16(1.0f + 0x1p-11f), 0x3c00);          // tie, to even
    EXPECT_EQ(gguf::f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);      // tie, to even (up)
    EXPECT_EQ(gguf::f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);  // above the tie
    EXPECT_EQ(gguf::f32_to_f16(2047.5f), 0x67ff + 1);              // carry into the exponent
    // Subnormal results.
    EXPECT_EQ(gguf::f32_to_f16(0x1p-24f), 0x0001);
    EXPECT_EQ(gguf::f32_to_f16(0x1p-25f), 0x0000);                 // tie to even: 0
    EXPECT_EQ(gguf::f32_to_f16(std::nextafter(0x1p-25f, 1.0f)), 0x0001);
    EXPECT_EQ(gguf::f32_to_f16(3 * 0x1p-25f), 0x0002);             // 1.5 units -> 2
    EXPECT_EQ(gguf::f32_to_f16(5 * 0x1p-25f), 0x0002);             // 2.5 units -> 2
    EXPECT_EQ(gguf::f32_to_f16(1023 * 0x1p-24f), 0x03ff);
    EXPECT_EQ(gguf::f32_to_f16(0x1p-14f - 0x1p-25f), 0x0400);      // rounds up to normal
    EXPECT_EQ(gguf::f32_to_f16(0x1p-14f), 0x0400);
    EXPECT_EQ(gguf::f32_to_f16(1e-10f), 0x0000);
    EXPECT_EQ(gguf::f32_to_f16(1e-40f), 0x0000);                   // f32 subnormal
    EXPECT_EQ(gguf::f32_to_f16(-1e-40f), 0x8000);
    const uint16_t qn = gguf::f32_to_f16(std::numeric_limits<float>::quiet_NaN());
    EXPECT_TRUE(f16_is_nan(qn));
    EXPECT_TRUE(f16_is_nan(gguf::f32_to_f16(float_of(0x7f800001u))));  // low payload only
    EXPECT_EQ(gguf::f32_to_f16(float_of(0xffc00000u)) & 0x8000, 0x8000);
}

TEST(GgufHalf, F16RoundTripsEveryHalf) {
    for (uint32_t h = 0; h <= 0xffff; ++h) {
        const uint16_t back = gguf::f32_to_f16(gguf::f16_to_f32(static_cast<uint16_t>(h)));
        if (f16_is_nan(static_cast<uint16_t>(h)))
            EXPECT_TRUE(f16_is_nan(back)) << std::hex << h;
        else
            ASSERT_EQ(back, h) << std::hex << h;
    }
}

#if defined(__FLT16_MAX__) && (defined(__x86_64__) || defined(__aarch64__))
// Cross-check against the compiler's own conversion (round to nearest even) on random floats.
TEST(GgufHalf, F16MatchesCompilerConversion) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<uint32_t> any;
    std::uniform_int_distribution<uint32_t> exponent(100, 145);  // 2^-27 .. 2^18
    for (int k = 0; k < 200000; ++k) {
        uint32_t u = any(rng);
        if (k % 4) u = (u & 0x807fffffu) | (exponent(rng) << 23);  // most draws near f16's range
        const float f = float_of(u);
        if (std::isnan(f)) continue;
        const _Float16 c = static_cast<_Float16>(f);
        uint16_t want;
        std::memcpy(&want, &c, 2);
        ASSERT_EQ(gguf::f32_to_f16(f), want) << std::hex << u;
    }
}
#endif

TEST(GgufHalf, BF16) {
    EXPECT_EQ(gguf::f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(gguf::f32_to_bf16(-0.0f), 0x8000);
    EXPECT_EQ(gguf::f32_to_bf16(float_of(0x3f808000u)), 0x3f80);  // tie, to even (down)
    EXPECT_EQ(gguf::f32_to_bf16(float_of(0x3f818000u)), 0x3f82);  // tie, to even (up)
    EXPECT_EQ(gguf::f32_to_bf16(float_of(0x3f808001u)), 0x3f81);  // above the tie
    EXPECT_EQ(gguf::f32_to_bf16(float_of(0x3f807fffu)), 0x3f80);  // below the tie
    EXPECT_EQ(gguf::f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
    EXPECT_EQ(gguf::f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
    EXPECT_EQ(gguf::f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
    EXPECT_EQ(gguf::f32_to_bf16(float_of(0x00010000u)), 0x0001);  // subnormal kept
    EXPECT_EQ(gguf::f32_to_bf16(float_of(0x00008000u)), 0x0000);  // tiny tie to even: 0
    EXPECT_TRUE(bf16_is_nan(gguf::f32_to_bf16(std::numeric_limits<float>::quiet_NaN())));
    EXPECT_TRUE(bf16_is_nan(gguf::f32_to_bf16(float_of(0x7f800001u))));  // not rounded to inf
    EXPECT_TRUE(bf16_is_nan(gguf::f32_to_bf16(float_of(0x7fffffffu))));  // not carried to 0x8000
    EXPECT_EQ(gguf::bf16_to_f32(0x3f80), 1.0f);
    EXPECT_EQ(bits_of(gguf::bf16_to_f32(0x0001)), 0x00010000u);
    EXPECT_EQ(gguf::bf16_to_f32(0xff80), -std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(gguf::bf16_to_f32(0x7fc0)));
    for (uint32_t h = 0; h <= 0xffff; ++h) {
        const uint16_t back = gguf::f32_to_bf16(gguf::bf16_to_f32(static_cast<uint16_t>(h)));
        if (bf16_is_nan(static_cast<uint16_t>(h)))
            EXPECT_TRUE(bf16_is_nan(back)) << std::hex << h;
        else
            ASSERT_EQ(back, h) << std::hex << h;
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed files: each test breaks one thing in an otherwise valid file.

TEST(GgufMalformed, BaseFileIsValid) {  // so the failures below come from the one change made
    temp_file tmp;
    write_bytes(tmp.path(), base_file().encode());
    gguf::reader r(tmp.path());
    EXPECT_EQ(r.get_string("general.name"), "tiny");
    EXPECT_EQ(r.tensor("alpha").nbytes, 32u);
    EXPECT_EQ(r.tensor("beta_tensor").offset, 32u);
}

TEST(GgufMalformed, BadMagic) {
    raw_file f = base_file();
    f.magic = "GGUX";
    expect_raw_error(f, "bad magic");
}

TEST(GgufMalformed, UnsupportedVersions) {
    raw_file f = base_file();
    f.version = 1;
    expect_raw_error(f, "unsupported GGUF version 1");
    f.version = 4;
    expect_raw_error(f, "unsupported GGUF version 4");
    f.version = 0;
    expect_raw_error(f, "unsupported GGUF version 0");
    f.version = 0x03000000;
    expect_raw_error(f, "big-endian");
}

TEST(GgufMalformed, EmptyAndTinyFiles) {
    temp_file tmp;
    write_bytes(tmp.path(), {});
    expect_gguf_error(tmp.path(), "empty");
    write_bytes(tmp.path(), {'G', 'G', 'U'});
    expect_gguf_error(tmp.path(), "truncated");
}

TEST(GgufMalformed, TruncatedHeader) {
    expect_truncated_error(base_file().encode(), 10, "truncated");
    expect_truncated_error(base_file().encode(), 20, "metadata count");
}

TEST(GgufMalformed, TruncatedInKey) {
    const auto b = base_file().encode();
    expect_truncated_error(b, find_bytes(b, "general.name") + 5, "truncated");
}

TEST(GgufMalformed, TruncatedInStringValue) {
    const auto b = base_file().encode();
    expect_truncated_error(b, find_bytes(b, "tiny") + 2, "truncated");
}

TEST(GgufMalformed, TruncatedInArray) {
    raw_file f = base_file();
    bytes_out payload;
    payload.pod<uint32_t>(4).pod<uint64_t>(4);
    for (uint32_t v : {0x11111111u, 0x22222222u, 0x33333333u, 0x44444444u}) payload.pod(v);
    f.kv.push_back(kv_raw("arr", 9, payload.b));
    const auto b = f.encode();
    expect_truncated_error(b, find_bytes(b, "\x33\x33\x33\x33") + 1, "truncated");
}

TEST(GgufMalformed, TruncatedInTensorInfo) {
    const auto b = base_file().encode();
    expect_truncated_error(b, find_bytes(b, "beta_tensor") + 11 + 6, "truncated");
}

TEST(GgufMalformed, TruncatedData) {
    const auto b = base_file().encode();
    expect_truncated_error(b, b.size() - 24, "past the end");  // beta_tensor ends at byte 44 of 64
}

TEST(GgufMalformed, AbsurdTensorCount) {
    raw_file f = base_file();
    f.n_tensors = uint64_t{1} << 60;
    expect_raw_error(f, "tensor count");
}

TEST(GgufMalformed, AbsurdMetadataCount) {
    raw_file f = base_file();
    f.n_kv = std::numeric_limits<uint64_t>::max();
    expect_raw_error(f, "metadata count");
}

TEST(GgufMalformed, AbsurdArrayLength) {
    raw_file f = base_file();
    bytes_out payload;
    payload.pod<uint32_t>(10).pod<uint64_t>(uint64_t{1} << 61);  // u64 elements
    f.kv.push_back(kv_raw("arr", 9, payload.b));
    expect_raw_error(f, "array length");
}

TEST(GgufMalformed, AbsurdStringLength) {
    raw_file f = base_file();
    bytes_out payload;
    payload.pod<uint64_t>(std::numeric_limits<uint64_t>::max());
    f.kv.push_back(kv_raw("s", 8, payload.b));
    expect_raw_error(f, "claims a length");
}

TEST(GgufMalformed, NDimsOutOfRange) {
    raw_file f = base_file();
    f.tensors[0].n_dims = 0;
    expect_raw_error(f, "n_dims 0");
    f = base_file();
    f.tensors[0].n_dims = 5;
    f.tensors[0].ne = {4, 2, 1, 1, 1};
    expect_raw_error(f, "n_dims 5");
}

TEST(GgufMalformed, ZeroDimension) {
    raw_file f = base_file();
    f.tensors[0].ne = {4, 0};
    expect_raw_error(f, "zero dimension");
}

TEST(GgufMalformed, NegativeDimension) {
    raw_file f = base_file();
    f.tensors[0].ne = {4, static_cast<uint64_t>(int64_t{-5})};
    expect_raw_error(f, "negative dimension");
}

TEST(GgufMalformed, OverflowingDimensions) {
    raw_file f = base_file();
    f.tensors[0].ne = {uint64_t{1} << 32, uint64_t{1} << 32};  // 2^64 elements
    expect_raw_error(f, "overflows");
    f.tensors[0].ne = {uint64_t{1} << 62};  // fits int64 as a count, not as f32 bytes
    expect_raw_error(f, "overflows");
}

TEST(GgufMalformed, MisalignedDataOffset) {
    raw_file f = base_file();
    f.tensors[1].offset = 36;
    expect_raw_error(f, "not a multiple of the alignment");
}

TEST(GgufMalformed, DataPastEndOfFile) {
    raw_file f = base_file();
    f.tensors[1].offset = uint64_t{1} << 40;
    expect_raw_error(f, "past the end");
    // Aligned, and offset + size wraps around 2^64.
    f.tensors[1].offset = std::numeric_limits<uint64_t>::max() & ~uint64_t{31};
    expect_raw_error(f, "past the end");
    f = base_file();
    f.tensors[0].ne = {4, 100};
    expect_raw_error(f, "past the end");
}

TEST(GgufMalformed, DuplicateTensorName) {
    raw_file f = base_file();
    f.tensors[1].name = "alpha";
    expect_raw_error(f, "duplicate tensor name 'alpha'");
}

TEST(GgufMalformed, DuplicateKey) {
    raw_file f = base_file();
    f.kv.push_back(kv_string("general.name", "again"));
    expect_raw_error(f, "duplicate key 'general.name'");
}

TEST(GgufMalformed, Q8_0RowNotMultipleOf32) {
    raw_file f = base_file();
    f.tensors[0] = {"q", {48}, 8, 0, {}};
    expect_raw_error(f, "not a multiple of the block size 32");
}

TEST(GgufMalformed, UnknownTensorType) {
    raw_file f = base_file();
    f.tensors[1].type = 2;  // ggml's q4_0: not supported here
    expect_raw_error(f, "tensor 'beta_tensor' has unsupported tensor type 2");
}

TEST(GgufMalformed, UnknownValueType) {
    raw_file f = base_file();
    f.kv.push_back(kv_raw("weird", 13, {0, 0, 0, 0}));
    expect_raw_error(f, "unknown value type 13");
    f = base_file();
    bytes_out payload;
    payload.pod<uint32_t>(77).pod<uint64_t>(1).pod<uint32_t>(0);
    f.kv.push_back(kv_raw("weird", 9, payload.b));
    expect_raw_error(f, "unknown value type 77");
}

TEST(GgufMalformed, BadBool) {
    raw_file f = base_file();
    f.kv.push_back(kv_raw("flag", 7, {2}));
    expect_raw_error(f, "bool");
}

TEST(GgufMalformed, DeeplyNestedArrays) {
    raw_file f = base_file();
    bytes_out payload;
    for (int k = 0; k < 100; ++k) payload.pod<uint32_t>(9).pod<uint64_t>(1);
    payload.pod<uint32_t>(0).pod<uint64_t>(0);
    f.kv.push_back(kv_raw("deep", 9, payload.b));
    expect_raw_error(f, "deeper than");
}

TEST(GgufMalformed, BadAlignment) {
    for (uint32_t a : {0u, 3u, 48u}) {
        raw_file f = base_file();
        f.kv.push_back(kv_u32("general.alignment", a));
        expect_raw_error(f, "power of two");
    }
    raw_file f = base_file();
    bytes_out payload;
    payload.pod<uint64_t>(32);
    f.kv.push_back(kv_raw("general.alignment", 10, payload.b));
    expect_raw_error(f, "expected u32");
}

TEST(GgufMalformed, CannotOpen) {
    const std::string path = testing::TempDir() + "/ssmkit-gguf-does-not-exist.gguf";
    expect_gguf_error(path, "cannot open");
    expect_gguf_error(path, std::strerror(ENOENT));
    expect_gguf_error(testing::TempDir(), "not a regular file");
}

// A file with every kind of field, cut at every byte before its end: each cut must be an error.
// The last tensor fills its alignment block exactly, so no cut falls in optional padding.
TEST(GgufMalformed, TruncationSweep) {
    gguf::writer w;
    w.set_string("name", "sweep");
    w.set_u32("n", 3);
    w.set_f32("eps", 1e-5f);
    w.set_bool("flag", true);
    w.set_i32_array("ids", {1, 2, 3});
    w.set_string_array("words", {"a", "bc"});
    value nested;
    nested.type = value_type::array;
    nested.elem_type = value_type::array;
    nested.arr.resize(1);
    nested.arr[0].type = value_type::array;
    nested.arr[0].elem_type = value_type::u16;
    nested.arr[0].arr.resize(2);
    for (auto& e : nested.arr[0].arr) e.type = value_type::u16;
    w.set_value("nested", nested);
    const std::vector<float> a(5, 1.0f), b(8, 2.0f);
    w.add_tensor("a", tensor_type::f32, {5}, a.data(), 20);
    w.add_tensor("b", tensor_type::f32, {8}, b.data(), 32);
    temp_file full;
    w.write(full.path());
    const auto bytes = read_bytes(full.path());
    ASSERT_EQ(bytes.size() % 32, 0u);
    { gguf::reader ok(full.path()); }

    temp_file cut;
    for (size_t keep = 0; keep < bytes.size(); ++keep) {
        write_bytes(cut.path(), std::vector<unsigned char>(bytes.begin(), bytes.begin() + keep));
        try {
            gguf::reader r(cut.path());
            ADD_FAILURE() << "a file cut to " << keep << " of " << bytes.size()
                          << " bytes was accepted";
        } catch (const gguf_error&) {
        }
    }
}

// Random byte changes in the header area: reading must either succeed or throw gguf_error, and
// whatever it accepts must be safe to convert.
TEST(GgufMalformed, RandomCorruption) {
    raw_file f = base_file();
    bytes_out arr;
    arr.pod<uint32_t>(8).pod<uint64_t>(2).str("x").str("yz");
    f.kv.push_back(kv_raw("strs", 9, arr.b));
    f.kv.push_back(kv_u32("general.alignment", 32));
    f.tensors.push_back({"q", {32}, 8, 64, {}});
    f.data_size = 128;
    const auto good = f.encode();
    const size_t header = good.size() - f.data_size;
    std::mt19937 rng(1234);
    temp_file tmp;
    int accepted = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        auto b = good;
        const int flips = 1 + static_cast<int>(rng() % 3);
        for (int k = 0; k < flips; ++k) {
            const size_t at = rng() % header;
            b[at] = (rng() % 4 == 0) ? 0xff : static_cast<unsigned char>(rng());
        }
        write_bytes(tmp.path(), b);
        try {
            gguf::reader r(tmp.path());
            ++accepted;
            for (const auto& t : r.tensors()) {
                if (t.type == tensor_type::i32) continue;
                const host_tensor h = r.to_f32(t.name);
                EXPECT_EQ(h.nbytes(), static_cast<size_t>(h.nelements()) * 4);
            }
        } catch (const gguf_error&) {
        }
    }
    EXPECT_GT(accepted, 0);  // some flips (e.g. inside a string) leave a valid file
}

// ---------------------------------------------------------------------------------------------
// Golden files

#ifdef SSMKIT_SOURCE_DIR
const char* const kSourceDir = SSMKIT_SOURCE_DIR;
#else
const char* const kSourceDir = nullptr;
#endif

fs::path golden_dir() {
    if (const char* env = std::getenv("SSMKIT_GOLDEN_DIR"); env && *env) return env;
    if (kSourceDir) return fs::path(kSourceDir) / ".." / "shared" / "golden";
    return {};
}

// "a=1,ne=[2,3],b=x" -> {a:"1", ne:"[2,3]", b:"x"}: commas inside brackets do not split.
std::map<std::string, std::string> parse_case(const std::string& s) {
    std::map<std::string, std::string> out;
    size_t start = 0;
    int depth = 0;
    for (size_t k = 0; k <= s.size(); ++k) {
        if (k < s.size() && s[k] == '[') ++depth;
        if (k < s.size() && s[k] == ']') --depth;
        if (k == s.size() || (s[k] == ',' && depth == 0)) {
            const std::string item = s.substr(start, k - start);
            const size_t eq = item.find('=');
            if (eq != std::string::npos) out[item.substr(0, eq)] = item.substr(eq + 1);
            start = k + 1;
        }
    }
    return out;
}

std::vector<int64_t> parse_list(const std::string& s) {  // "[1,2,3]"
    std::vector<int64_t> out;
    std::string cur;
    for (char c : s) {
        if (std::isdigit(static_cast<unsigned char>(c)) || c == '-') {
            cur += c;
        } else if (!cur.empty()) {
            out.push_back(std::stoll(cur));
            cur.clear();
        }
    }
    return out;
}

std::vector<int64_t> shape(const gguf::tensor_info& t) {
    return {t.ne[0], t.ne[1], t.ne[2], t.ne[3]};
}

void expect_finite(const gguf::reader& r, const std::string& name) {
    const host_tensor h = r.to_f32(name);
    const float* p = h.data<float>();
    for (int64_t k = 0; k < h.nelements(); ++k)
        if (!std::isfinite(p[k])) {
            ADD_FAILURE() << name << "[" << k << "] = " << p[k];
            return;
        }
}

const gguf::tensor_info& need_tensor(const gguf::reader& r, const std::string& name,
                                     tensor_type type) {
    const gguf::tensor_info* t = r.find_tensor(name);
    if (!t) throw std::runtime_error(r.path() + ": no tensor '" + name + "'");
    EXPECT_EQ(t->type, type) << r.path() << ": " << name;
    return *t;
}

void check_conv(const gguf::reader& r) {
    const auto& sx = need_tensor(r, "sx", tensor_type::f32);
    const auto& c = need_tensor(r, "c", tensor_type::f32);
    const auto& out = need_tensor(r, "out", tensor_type::f32);
    const int64_t d_conv = c.ne[0], d_inner = c.ne[1];
    const int64_t n_t = sx.ne[0] - (d_conv - 1), n_s = sx.ne[2];
    EXPECT_GE(n_t, 1);
    EXPECT_EQ(sx.ne[1], d_inner);
    EXPECT_EQ(shape(out), (std::vector<int64_t>{d_inner, n_t, n_s, 1}));
    const auto kv = parse_case(r.get_string("golden.case"));
    EXPECT_EQ(parse_list(kv.at("ne_a")), shape(sx));
    EXPECT_EQ(parse_list(kv.at("ne_b")), shape(c));
    for (const char* n : {"sx", "c", "out"}) expect_finite(r, n);
    // view and to_f32 agree on the same bytes
    const tensor_view v = r.view("out");
    EXPECT_EQ(0, std::memcmp(v.data, r.to_f32("out").raw(), out.nbytes));
}

void check_scan(const gguf::reader& r) {
    const auto kv = parse_case(r.get_string("golden.case"));
    const int64_t ds = std::stoll(kv.at("d_state")), hd = std::stoll(kv.at("head_dim")),
                  nh = std::stoll(kv.at("n_head")), ng = std::stoll(kv.at("n_group")),
                  nt = std::stoll(kv.at("n_seq_tokens")), ns = std::stoll(kv.at("n_seqs")),
                  slots = std::stoll(kv.at("n_slots")), K = std::stoll(kv.at("K"));
    using shape_t = std::vector<int64_t>;
    EXPECT_EQ(shape(need_tensor(r, "s", tensor_type::f32)), (shape_t{ds, hd, nh, slots}));
    EXPECT_EQ(shape(need_tensor(r, "x", tensor_type::f32)), (std::vector<int64_t>{hd, nh, nt, ns}));
    EXPECT_EQ(shape(need_tensor(r, "dt", tensor_type::f32)), (std::vector<int64_t>{nh, nt, ns, 1}));
    const auto& A = need_tensor(r, "A", tensor_type::f32);
    EXPECT_TRUE(A.ne[0] == 1 || (A.ne[0] == ds && hd == 1)) << r.path();
    EXPECT_EQ(A.ne[1], nh);
    for (const char* n : {"B", "C"})
        EXPECT_EQ(shape(need_tensor(r, n, tensor_type::f32)), (shape_t{ds, ng, nt, ns}));
    EXPECT_EQ(nh % ng, 0);
    const auto& out = need_tensor(r, "out", tensor_type::f32);
    EXPECT_EQ(out.ne[0] * out.ne[1] * out.ne[2] * out.ne[3],
              hd * nh * nt * ns + K * ds * hd * nh * ns);
    const auto& ids = need_tensor(r, "ids", tensor_type::i32);
    EXPECT_EQ(shape(ids), (std::vector<int64_t>{ns, 1, 1, 1}));
    const tensor_view iv = r.view("ids");
    std::set<int32_t> seen;
    for (int64_t k = 0; k < ns; ++k) {
        const int32_t id = *iv.ptr<int32_t>(k);
        EXPECT_TRUE(id >= 0 && id < slots) << r.path() << " ids[" << k << "] = " << id;
        EXPECT_TRUE(seen.insert(id).second) << r.path() << " ids repeat " << id;
    }
    for (const char* n : {"s", "x", "dt", "A", "B", "C"}) expect_finite(r, n);
    // The out blocks for k >= n_t are unspecified; check y and the meaningful state blocks.
    const host_tensor o = r.to_f32("out");
    const int64_t meaningful = hd * nh * nt * ns + std::min(K, nt) * ds * hd * nh * ns;
    for (int64_t k = 0; k < meaningful; ++k)
        if (!std::isfinite(o.data<float>()[k])) {
            ADD_FAILURE() << r.path() << " out[" << k << "] is not finite";
            break;
        }
}

TEST(GgufGolden, ReadsEveryGoldenFile) {
    const fs::path dir = golden_dir();
    if (dir.empty() || !fs::is_directory(dir)) {
        const std::string msg = "golden files not found at '" + dir.string() +
                                "'; set SSMKIT_GOLDEN_DIR to the folder holding ssm_conv/ and "
                                "ssm_scan/";
        const char* ci = std::getenv("CI");
        if (ci && std::string(ci) == "true") GTEST_FAIL() << msg;
        GTEST_SKIP() << msg;
    }
    int counts[2] = {0, 0};
    const char* const ops[2] = {"ssm_conv", "ssm_scan"};
    for (int op = 0; op < 2; ++op) {
        const fs::path sub = dir / ops[op];
        ASSERT_TRUE(fs::is_directory(sub)) << sub;
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(sub))
            if (e.path().extension() == ".gguf") files.push_back(e.path());
        std::sort(files.begin(), files.end());
        for (const fs::path& p : files) {
            SCOPED_TRACE(p.string());
            gguf::reader r(p.string());
            EXPECT_EQ(r.version(), 3u);
            const std::string name = r.get_string("golden.op");
            ASSERT_TRUE(name == "ssm_conv" || name == "ssm_scan") << name;
            EXPECT_EQ(name, ops[op]);
            EXPECT_FALSE(r.get_string("golden.case").empty());
            EXPECT_FALSE(r.get_string("golden.producer").empty());
            EXPECT_GE(r.get_int("golden.seed"), 0);
            if (name == "ssm_conv")
                check_conv(r);
            else
                check_scan(r);
            ++counts[op];
        }
        EXPECT_GT(counts[op], 0) << "no .gguf files in " << sub;
    }
    std::printf("[ golden   ] read %d ssm_conv and %d ssm_scan files from %s\n", counts[0],
                counts[1], dir.string().c_str());
}

}  // namespace
