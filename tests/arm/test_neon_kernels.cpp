// Complements tests/test_kernel_variants.cpp for the SIMD tables (NEON under qemu in CI): the
// activation quantizers and float conversions on NaN/inf rows byte for byte, the golden vectors
// through the SIMD dots (within 1e-5 * sum |w_i * a_i|) and partner quantizers, and a guard that
// the expected ISA really ran. Built by tests/arm/CMakeLists.txt only.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/types.h"
#include "support.h"

namespace qllm {
namespace {

using T = TensorType;
using Bytes = std::vector<uint8_t>;

const TypeTraits& ref_row(T type) { return reference_table()[size_t(type)]; }

// The ISAs other than scalar that this build and CPU can run; the tests pass vacuously on none.
std::vector<Isa> simd_isas() {
    std::vector<Isa> out;
    for (Isa isa : supported_isas()) {
        if (isa != Isa::Scalar) out.push_back(isa);
    }
    return out;
}

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

Bytes quantize(T type, const std::vector<float>& x) {
    const TypeTraits& t = ref_row(type);
    Bytes out(t.row_size(int64_t(x.size())));
    t.from_float(x.data(), out.data(), int64_t(x.size()));
    return out;
}

std::vector<float> dequantize(T type, const Bytes& q, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    ref_row(type).to_float(q.data(), out.data(), n);
    return out;
}

std::string hex_diff(const Bytes& got, const Bytes& want) {
    if (got.size() != want.size()) return "size differs";
    for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] != want[i]) return "first difference at byte " + std::to_string(i);
    }
    return "";
}

// Guards against passing vacuously: QLLM_EXPECT_ISA=neon (set by tools/arm-test.sh) requires
// NEON to be the best ISA here, so that the tests really compare its kernels; =scalar requires
// that dispatch falls back to the reference (a CPU without dotprod).
TEST(IsaKernels, ExpectedIsaIsTheBest) {
    std::string tested;
    for (Isa isa : simd_isas()) tested += std::string(isa_name(isa)) + " ";
    std::cout << "[ INFO     ] CPU features: " << cpu_features() << "; SIMD kernels tested: "
              << (tested.empty() ? "none" : tested) << "\n";
    const char* expected = std::getenv("QLLM_EXPECT_ISA");
    if (!expected || !*expected) GTEST_SKIP() << "QLLM_EXPECT_ISA not set";
    const auto isa = isa_from_name(expected);
    ASSERT_TRUE(isa.has_value()) << "QLLM_EXPECT_ISA=" << expected;
    EXPECT_EQ(isa_name(supported_isas().back()), isa_name(*isa));
}

// The NEON table really replaces the reference kernels it claims to.
TEST(IsaKernels, NeonTableOverridesTheReference) {
    for (Isa isa : simd_isas()) {
        if (isa != Isa::Neon) continue;
        for (T type : {T::F16, T::BF16, T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1, T::Q8_0, T::IQ4_NL, T::Q2_K, T::Q3_K,
                       T::Q4_K, T::Q5_K, T::Q6_K}) {
            EXPECT_NE(kernels_for(isa)[size_t(type)].vec_dot, ref_row(type).vec_dot) << ref_row(type).name;
        }
        for (T type : {T::Q8_0, T::Q8_1, T::Q8_K, T::F16, T::BF16}) {
            EXPECT_NE(kernels_for(isa)[size_t(type)].from_float, ref_row(type).from_float) << ref_row(type).name;
        }
    }
}

// ---- quantized dot products ----

// Checks the ISA's dot of weight row `w` with activation row `a` (both already quantized).
void expect_dot_close(Isa isa, T type, const Bytes& w, const Bytes& a, int64_t n, const std::string& what) {
    const TypeTraits& ref = ref_row(type);
    const TypeTraits& simd = kernels_for(isa)[size_t(type)];
    const double want = ref.vec_dot(n, w.data(), a.data());
    const double got = simd.vec_dot(n, w.data(), a.data());
    const auto wf = dequantize(type, w, n);
    const auto af = dequantize(ref.vec_dot_type, a, n);
    double magnitude = 0;
    for (int64_t i = 0; i < n; ++i) magnitude += std::fabs(double(wf[size_t(i)]) * af[size_t(i)]);
    const std::string where = std::string(isa_name(isa)) + " " + std::string(ref.name) + " " + what;
    if (!std::isfinite(want) || !std::isfinite(magnitude)) {
        EXPECT_EQ(std::isnan(got), std::isnan(want)) << where << ": got " << got << " want " << want;
        if (!std::isnan(want)) {
            EXPECT_EQ(got, want) << where;
        }
        return;
    }
    EXPECT_LE(std::fabs(got - want), 1e-5 * magnitude) << where << ": got " << got << " want " << want;
}

// ---- activation quantizers ----

// Rows that probe the quantizers' corners, each a multiple of 256 values.
std::vector<std::vector<float>> quantizer_rows() {
    std::vector<std::vector<float>> rows;
    rows.push_back(gaussian(1024, 7));
    rows.push_back(std::vector<float>(512, 0.0f));
    rows.push_back(std::vector<float>(256, -0.0f));
    // Ties: amax 127 gives Q8_0/Q8_1 scale 1 and, as a negative max, Q8_K iscale 1, so the
    // halves exercise round-away against round-to-even.
    std::vector<float> ties(512);
    for (size_t i = 0; i < ties.size(); ++i) ties[i] = float(int(i % 61) - 30) + 0.5f;
    for (size_t b = 0; b < ties.size(); b += 32) ties[b] = -127.0f;
    rows.push_back(ties);
    // +a and -a both the largest magnitude, in either order.
    std::vector<float> pm = gaussian(512, 8);
    pm[3] = 5.0f, pm[100] = -5.0f, pm[256 + 7] = -6.0f, pm[256 + 200] = 6.0f;
    rows.push_back(pm);
    // NaN here and there, one all-NaN block, infinities, huge, tiny and subnormal blocks.
    std::vector<float> odd = gaussian(1024, 9);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    odd[5] = nan;
    odd[300] = nan;
    std::fill(odd.begin() + 512, odd.begin() + 544, nan);
    odd[600] = std::numeric_limits<float>::infinity();
    odd[700] = -std::numeric_limits<float>::infinity();
    for (size_t i = 768; i < 800; ++i) odd[i] *= 1e30f;
    for (size_t i = 800; i < 832; ++i) odd[i] *= 1e-30f;
    for (size_t i = 832; i < 864; ++i) odd[i] *= 1e-39f;
    rows.push_back(odd);
    // Whole blocks so small that -127/max (Q8_K) and 1/d (Q8_0/Q8_1) overflow to inf.
    std::vector<float> tiny = gaussian(512, 10, 1e-37f);
    for (size_t i = 256; i < 512; ++i) tiny[i] *= 1e-3f;
    rows.push_back(tiny);
    return rows;
}

TEST(IsaKernels, ActivationQuantizersAreByteExact) {
    for (Isa isa : simd_isas()) {
        for (T type : {T::Q8_0, T::Q8_1, T::Q8_K}) {
            const auto rows = quantizer_rows();
            for (size_t r = 0; r < rows.size(); ++r) {
                const auto& x = rows[r];
                const TypeTraits& simd = kernels_for(isa)[size_t(type)];
                Bytes got(simd.row_size(int64_t(x.size())));
                simd.from_float(x.data(), got.data(), int64_t(x.size()));
                EXPECT_EQ(hex_diff(got, quantize(type, x)), "")
                    << isa_name(isa) << " " << simd.name << " row " << r;
            }
        }
    }
}

// ---- float formats ----

TEST(IsaKernels, FloatConversionsAreByteExact) {
    std::vector<float> x = gaussian(999, 11);
    const float specials[] = {0.0f, -0.0f, 65504.0f, 65520.0f, 1e6f, -1e6f, 6e-8f, 3e-5f, 1e-40f, 1.00048828125f,
                              std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN()};
    x.insert(x.end(), std::begin(specials), std::end(specials));
    uint32_t payload_nan = 0x7fa00001;  // a signalling NaN with payload
    float snan;
    std::memcpy(&snan, &payload_nan, sizeof snan);
    x.push_back(snan);
    const int64_t n = int64_t(x.size());
    for (Isa isa : simd_isas()) {
        for (T type : {T::F16, T::BF16}) {
            const TypeTraits& simd = kernels_for(isa)[size_t(type)];
            Bytes got(simd.row_size(n));
            simd.from_float(x.data(), got.data(), n);
            const Bytes want = quantize(type, x);
            EXPECT_EQ(hex_diff(got, want), "") << isa_name(isa) << " " << simd.name << " from_float";
            std::vector<float> back(x.size()), want_back(x.size());
            simd.to_float(want.data(), back.data(), n);
            ref_row(type).to_float(want.data(), want_back.data(), n);
            EXPECT_EQ(std::memcmp(back.data(), want_back.data(), back.size() * sizeof(float)), 0)
                << isa_name(isa) << " " << simd.name << " to_float";
        }
    }
}

// ---- the golden vectors through the ISA tables ----

std::string quote_non_finite(std::string text) {
    for (const std::string word : {"-Infinity", "Infinity", "NaN"}) {
        for (size_t pos = text.find(word); pos != std::string::npos; pos = text.find(word, pos + word.size() + 2)) {
            if (pos > 0 && (text[pos - 1] == '"' || text[pos - 1] == '-')) continue;
            text.insert(pos + word.size(), "\"");
            text.insert(pos, "\"");
        }
    }
    return text;
}

Bytes from_hex(const std::string& hex) {
    Bytes bytes(hex.size() / 2);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
    return bytes;
}

TEST(IsaKernels, GoldenVectors) {
    const auto dir = test::shared_dir() / "golden" / "quant";
    if (!std::filesystem::exists(dir)) {
        if (test::golden_required()) FAIL() << "missing " << dir;
        GTEST_SKIP() << "golden vectors not found (set QLLM_SHARED_DIR)";
    }
    int checked = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".json") continue;
        const auto doc = nlohmann::json::parse(quote_non_finite(test::read_text(entry.path())));
        const auto type = type_from_name(doc.at("type").get<std::string>());
        ASSERT_TRUE(type.has_value());
        const int64_t n = doc.at("n_per_row").get<int64_t>();
        for (const auto& c : doc.at("cases")) {
            if (!c.contains("act")) continue;
            const std::string what = "golden " + c.at("name").get<std::string>();
            const Bytes w = from_hex(c.at("quant"));
            const Bytes a = from_hex(c.at("act_quant"));
            const Bytes act_bytes = from_hex(c.at("act"));
            std::vector<float> act(act_bytes.size() / sizeof(float));
            std::memcpy(act.data(), act_bytes.data(), act_bytes.size());
            for (Isa isa : simd_isas()) {
                expect_dot_close(isa, *type, w, a, n, what);
                const TypeTraits& partner = kernels_for(isa)[size_t(ref_row(*type).vec_dot_type)];
                Bytes got(partner.row_size(n));
                partner.from_float(act.data(), got.data(), n);
                EXPECT_EQ(hex_diff(got, a), "") << isa_name(isa) << " " << partner.name << " " << what;
                ++checked;
            }
        }
    }
    if (simd_isas().empty()) GTEST_SKIP() << "no SIMD kernels on this machine";
    EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace qllm
