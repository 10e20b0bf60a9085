// Interleaved weight layouts (Q4_0_R16) against the plain rows they are built from: the reference
// row kernel bit for bit, each ISA's row kernel within float rounding, each ISA's GEMM bit for
// bit with the plain format's GEMM (both build the same tiles); and loading a model repacks.
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

// Rows of 3 groups, with an odd block count (the kernels take blocks in pairs).
constexpr int64_t kRowsTested = 48, kValues = 2048 + 96;

TEST(Repack, ReferenceRowKernelEqualsPlainDotProducts) {
    const Weights16 w = make_weights(T::Q4_0, T::Q4_0_R16, kRowsTested, kValues, 1);
    const Bytes a = activations(T::Q8_0, 1, kValues, 2);
    std::vector<float> got(kRowsTested, NAN);
    ref_row(T::Q4_0_R16).vec_dot_rows(kValues, w.repacked.data(), w.row_bytes, kRowsTested, a.data(), got.data());
    for (int64_t r = 0; r < kRowsTested; ++r) {
        const float want = ref_row(T::Q4_0).vec_dot(kValues, w.plain.data() + size_t(r) * w.row_bytes, a.data());
        ASSERT_EQ(std::memcmp(&got[size_t(r)], &want, sizeof want), 0) << "row " << r;
    }
}

TEST(Repack, IsaKernelsMatchPlainFormat) {
    const Weights16 w = make_weights(T::Q4_0, T::Q4_0_R16, kRowsTested, kValues, 3);
    const int64_t tokens = 29;  // tiles of 8 tokens and a partial one
    const Bytes a = activations(T::Q8_0, tokens, kValues, 4);
    const size_t a_row = ref_row(T::Q8_0).row_size(kValues);
    int checked = 0;
    for (Isa isa : supported_isas()) {
        const TypeTraits& layout = kernels_for(isa)[size_t(T::Q4_0_R16)];
        const TypeTraits& plain = kernels_for(isa)[size_t(T::Q4_0)];
        if (layout.vec_dot_rows != ref_row(T::Q4_0_R16).vec_dot_rows) {
            std::vector<float> got(kRowsTested, NAN);
            layout.vec_dot_rows(kValues, w.repacked.data(), w.row_bytes, kRowsTested, a.data(), got.data());
            for (int64_t r = 0; r < kRowsTested; ++r) {
                const uint8_t* row = w.plain.data() + size_t(r) * w.row_bytes;
                const float want = ref_row(T::Q4_0).vec_dot(kValues, row, a.data());
                // Blocks are exact int32 sums; only the float sums of the blocks' products differ.
                std::vector<float> x(kValues), y(kValues);
                ref_row(T::Q4_0).to_float(row, x.data(), kValues);
                ref_row(T::Q8_0).to_float(a.data(), y.data(), kValues);
                double magnitude = 0;
                for (int64_t i = 0; i < kValues; ++i) magnitude += std::fabs(double(x[size_t(i)]) * y[size_t(i)]);
                ASSERT_LE(std::fabs(double(got[size_t(r)]) - want), 1e-5 * magnitude) << isa_name(isa) << " row " << r;
            }
            ++checked;
        }
        if (layout.gemm) {
            ASSERT_NE(plain.gemm, nullptr);
            std::vector<float> want(size_t(kRowsTested * tokens), NAN), got(want.size(), NAN);
            plain.gemm(kValues, w.plain.data(), w.row_bytes, kRowsTested, a.data(), a_row, tokens, want.data(), kRowsTested);
            layout.gemm(kValues, w.repacked.data(), w.row_bytes, kRowsTested, a.data(), a_row, tokens, got.data(), kRowsTested);
            ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0) << isa_name(isa);
            ++checked;
        }
    }
    if (checked == 0) GTEST_SKIP() << "no interleaved kernels on this CPU";
}

// Interleaved layouts live in memory only: a file naming one is refused like any unknown type.
TEST(Repack, LayoutsAreNotFileTypes) {
    EXPECT_FALSE(type_from_name("q4_0_r16").has_value());
    EXPECT_EQ(ref_row(T::Q4_0_R16).row_group, 16);
}

// On a CPU whose kernels read Q4_0_R16, loading a Q4_0 model repacks its multiplied weights with
// whole groups of 16 rows and leaves the embedding table alone.
TEST(Repack, ModelLoadRepacksQ4_0Weights) {
    if (!traits(T::Q4_0_R16).gemm) GTEST_SKIP() << "the active kernels keep Q4_0 rows as they are";
    const auto path = test::shared_dir() / "golden/synth-a-f16/Q4_0.gguf";
    if (!std::filesystem::exists(path)) {
        if (test::golden_required()) FAIL() << path << " is missing";
        GTEST_SKIP() << path << " is missing";
    }
    const auto model = Model::load(path.string());
    const Weights& w = model->weights();
    EXPECT_EQ(w.token_embd.type, T::Q4_0);
    int repacked = 0;
    for (const LayerWeights& l : w.layers) {
        for (const TensorView* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) {
            const bool whole_groups = m->ne[1] % 16 == 0;
            EXPECT_EQ(m->type, whole_groups ? T::Q4_0_R16 : T::Q4_0) << m->name;
            repacked += whole_groups;
        }
    }
    EXPECT_GT(repacked, 0);
}

}  // namespace
}  // namespace qllm
