// Interleaved weight layouts (Q4_0_R16, Q8_0_R16, Q2_K_R16, Q3_K_R16, Q4_K_R16, Q5_K_R16, Q6_K_R16) against the plain
// rows they are built from: the reference row kernel bit for bit, each ISA's row kernel within
// float rounding, each ISA's GEMM bit for bit with the plain format's GEMM (both build the same
// tiles); and loading a model repacks.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu.h"
#include "kernels/types.h"
#include "model/model.h"
#include "support.h"

namespace qllm {
namespace {

using T = TensorType;
using Bytes = std::vector<uint8_t>;

const TypeTraits& ref_row(T type) { return reference_table()[size_t(type)]; }

// `rows` rows of n values quantized by the reference, and the same rows interleaved.
struct Weights16 {
    Bytes plain, repacked;
    size_t row_bytes;
};

Weights16 make_weights(T plain, T layout, int64_t rows, int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.0f);
    const TypeTraits& t = ref_row(plain);
    Weights16 w{Bytes(t.row_size(n) * size_t(rows)), {}, t.row_size(n)};
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows; ++r) {
        for (float& v : x) v = 0.05f * g(rng) * std::fabs(g(rng));
        t.from_float(x.data(), w.plain.data() + size_t(r) * w.row_bytes, n);
    }
    const TypeTraits& l = ref_row(layout);
    w.repacked.resize(w.plain.size());
    for (int64_t r = 0; r < rows; r += l.row_group) {
        l.repack(w.plain.data() + size_t(r) * w.row_bytes, w.row_bytes, n, w.repacked.data() + size_t(r) * w.row_bytes);
    }
    return w;
}

Bytes activations(T type, int64_t tokens, int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.5f);
    const TypeTraits& t = ref_row(type);
    Bytes out(t.row_size(n) * size_t(tokens));
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < tokens; ++i) {
        for (float& v : x) v = g(rng);
        t.from_float(x.data(), out.data() + size_t(i) * t.row_size(n), n);
    }
    return out;
}

// Each layout, the format it is built from, a row length (3 groups of rows with an odd
// block count: the kernels may take blocks in pairs), and a golden model file holding the format.
struct Case {
    T plain, layout;
    int64_t n;
    const char* golden;
};
const Case kCases[] = {{T::Q4_0, T::Q4_0_R16, 2048 + 96, "Q4_0"},
                       {T::Q8_0, T::Q8_0_R16, 2048 + 96, "Q8_0"},
                       {T::Q2_K, T::Q2_K_R16, 2048 + 256, "Q2_K"},
                       {T::Q3_K, T::Q3_K_R16, 2048 + 256, "Q3_K_M"},
                       {T::Q4_K, T::Q4_K_R16, 2048 + 256, "Q4_K_M"},
                       {T::Q5_K, T::Q5_K_R16, 2048 + 256, "Q5_K_M"},
                       {T::Q6_K, T::Q6_K_R16, 2048 + 256, "Q6_K"}};
constexpr int64_t kRowsTested = 48;

TEST(Repack, ReferenceRowKernelEqualsPlainDotProducts) {
    for (const Case& c : kCases) {
        const Weights16 w = make_weights(c.plain, c.layout, kRowsTested, c.n, 1);
        const T act = ref_row(c.plain).vec_dot_type;
        ASSERT_EQ(ref_row(c.layout).vec_dot_type, act);
        const Bytes a = activations(act, 1, c.n, 2);
        std::vector<float> got(kRowsTested, NAN);
        ref_row(c.layout).vec_dot_rows(c.n, w.repacked.data(), w.row_bytes, kRowsTested, a.data(), got.data());
        for (int64_t r = 0; r < kRowsTested; ++r) {
            const float want = ref_row(c.plain).vec_dot(c.n, w.plain.data() + size_t(r) * w.row_bytes, a.data());
            ASSERT_EQ(std::memcmp(&got[size_t(r)], &want, sizeof want), 0) << ref_row(c.layout).name << " row " << r;
        }
    }
}

TEST(Repack, IsaKernelsMatchPlainFormat) {
    const int64_t tokens = 29;  // tiles of 8 tokens and a partial one
    int checked = 0;
    for (const Case& c : kCases) {
        const Weights16 w = make_weights(c.plain, c.layout, kRowsTested, c.n, 3);
        const T act = ref_row(c.plain).vec_dot_type;
        const Bytes a = activations(act, tokens, c.n, 4);
        const size_t a_row = ref_row(act).row_size(c.n);
        for (Isa isa : supported_isas()) {
            const TypeTraits& layout = kernels_for(isa)[size_t(c.layout)];
            const TypeTraits& plain = kernels_for(isa)[size_t(c.plain)];
            const std::string what = std::string(isa_name(isa)) + " " + std::string(layout.name);
            if (layout.vec_dot_rows != ref_row(c.layout).vec_dot_rows) {
                std::vector<float> got(kRowsTested, NAN);
                layout.vec_dot_rows(c.n, w.repacked.data(), w.row_bytes, kRowsTested, a.data(), got.data());
                std::vector<float> x(static_cast<size_t>(c.n)), y(static_cast<size_t>(c.n));
                ref_row(act).to_float(a.data(), y.data(), c.n);
                for (int64_t r = 0; r < kRowsTested; ++r) {
                    const uint8_t* row = w.plain.data() + size_t(r) * w.row_bytes;
                    const float want = ref_row(c.plain).vec_dot(c.n, row, a.data());
                    // Sub-blocks are exact int32 sums; only float roundings differ.
                    ref_row(c.plain).to_float(row, x.data(), c.n);
                    double magnitude = 0;
                    for (size_t i = 0; i < x.size(); ++i) magnitude += std::fabs(double(x[i]) * y[i]);
                    ASSERT_LE(std::fabs(double(got[size_t(r)]) - want), 1e-5 * magnitude) << what << " row " << r;
                }
                ++checked;
            }
            if (layout.gemm) {
                ASSERT_NE(plain.gemm, nullptr);
                std::vector<float> want(size_t(kRowsTested * tokens), NAN), got(want.size(), NAN);
                plain.gemm(c.n, w.plain.data(), w.row_bytes, kRowsTested, a.data(), a_row, tokens, want.data(), kRowsTested);
                layout.gemm(c.n, w.repacked.data(), w.row_bytes, kRowsTested, a.data(), a_row, tokens, got.data(), kRowsTested);
                ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0) << what;
                ++checked;
            }
        }
    }
    if (checked == 0) GTEST_SKIP() << "no interleaved kernels on this CPU";
}

// Interleaved layouts live in memory only: a file naming one is refused like any unknown type.
TEST(Repack, LayoutsAreNotFileTypes) {
    for (const Case& c : kCases) {
        EXPECT_FALSE(type_from_name(ref_row(c.layout).name).has_value());
        EXPECT_EQ(ref_row(c.layout).row_group, 16);
        EXPECT_EQ(ref_row(c.layout).repacked_from, c.plain);
    }
}

// On a CPU whose kernels read the layouts, loading a model repacks its multiplied weights of
// those formats with whole groups of 16 rows, and leaves the embedding table alone.
TEST(Repack, ModelLoadRepacksWeights) {
    for (const Case& c : kCases) {
        if (!traits(c.layout).gemm) continue;
        const auto path = test::shared_dir() / "golden/synth-a-f16" / (std::string(c.golden) + ".gguf");
        if (!std::filesystem::exists(path)) {
            if (test::golden_required()) FAIL() << path << " is missing";
            GTEST_SKIP() << path << " is missing";
        }
        const auto model = Model::load(path.string());
        const Weights& w = model->weights();
        EXPECT_NE(w.token_embd.type, c.layout);
        int repacked = 0;
        for (const LayerWeights& l : w.layers) {
            for (const TensorView* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) {
                if (m->ne[1] % 16 == 0) EXPECT_NE(m->type, c.plain) << m->name;
                repacked += m->type == c.layout;
            }
        }
        EXPECT_GT(repacked, 0) << path;
        // --no-repack: the file's own layout.
        const auto as_stored = Model::load(path.string(), Model::Mode::Full, /*repack=*/false);
        for (const LayerWeights& l : as_stored->weights().layers) EXPECT_NE(l.ffn_up.type, c.layout);
    }
}

}  // namespace
}  // namespace qllm
