// The batched (GEMM) kernels against the reference dot products, and the integer unpacking
// they are built on against the reference dequantization.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "graph/ops.h"
#include "kernels/cpu.h"
#include "kernels/int_blocks.h"
#include "kernels/types.h"

namespace qllm {
namespace {

using T = TensorType;
using Bytes = std::vector<uint8_t>;

const TypeTraits& ref_row(T type) { return reference_table()[size_t(type)]; }

std::vector<float> gaussian(int64_t n, uint32_t seed, float scale) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = scale * g(rng) * std::fabs(g(rng));  // heavier tails than a Gaussian
    return v;
}

// `rows` rows of n values in `type`, quantized by the reference.
Bytes quantize_rows(T type, int64_t rows, int64_t n, uint32_t seed, float scale) {
    const TypeTraits& t = ref_row(type);
    Bytes out(t.row_size(n) * size_t(rows));
    for (int64_t r = 0; r < rows; ++r) {
        const auto x = gaussian(n, seed + uint32_t(r), scale);
        t.from_float(x.data(), out.data() + size_t(r) * t.row_size(n), n);
    }
    return out;
}

std::vector<float> dequantize(T type, const uint8_t* row, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    ref_row(type).to_float(row, out.data(), n);
    return out;
}

// Weight types whose rows a GEMM kernel of some supported ISA takes.
struct GemmCase {
    Isa isa;
    T type;
};
std::vector<GemmCase> gemm_cases() {
    std::vector<GemmCase> out;
    for (Isa isa : supported_isas()) {
        for (uint32_t id = 0; id < kTensorTypeCount; ++id) {
            // (Interleaved layouts have tests of their own: test_repack.cpp.)
            if (kernels_for(isa)[id].gemm && kernels_for(isa)[id].row_group == 1) out.push_back({isa, T(id)});
        }
    }
    return out;
}

// out[t][r] of the GEMM equals the reference vec_dot within 1e-5 * sum |w_i * a_i|, for
// row counts that leave partial tiles and token counts that leave partial groups.
TEST(Gemm, MatchesReferenceDotProducts) {
    const auto cases = gemm_cases();
    if (cases.empty()) GTEST_SKIP() << "no GEMM kernels on this CPU";
    for (const auto& [isa, type] : cases) {
        const TypeTraits& ref = ref_row(type);
        const TypeTraits& act = ref_row(ref.vec_dot_type);
        std::vector<int64_t> sizes = {512, 2048};
        if (ref.block_size == 32) sizes.insert(sizes.end(), {64, 2048 + 96});
        if (ref.block_size == 1) sizes.insert(sizes.end(), {172, 1000});
        for (int64_t n : sizes) {
            // Tiles of 16 and 32 rows with a partial last one; groups of 12, 8, 4 and 1 tokens.
            const int64_t rows = 53, tokens = 29;
            const Bytes w = quantize_rows(type, rows, n, uint32_t(type) * 101 + uint32_t(n), 0.02f);
            const Bytes a = quantize_rows(ref.vec_dot_type, tokens, n, 7 + uint32_t(n), 1.5f);
            const size_t w_row = ref.row_size(n), a_row = act.row_size(n);
            std::vector<float> out(size_t(rows * tokens), NAN);
            kernels_for(isa)[size_t(type)].gemm(n, w.data(), w_row, rows, a.data(), a_row, tokens, out.data(), rows);
            for (int64_t t = 0; t < tokens; ++t) {
                const auto af = dequantize(ref.vec_dot_type, a.data() + size_t(t) * a_row, n);
                for (int64_t r = 0; r < rows; ++r) {
                    const uint8_t* wr = w.data() + size_t(r) * w_row;
                    const uint8_t* ar = a.data() + size_t(t) * a_row;
                    const double want = ref.vec_dot(n, wr, ar);
                    const auto wf = dequantize(type, wr, n);
                    double magnitude = 0;
                    for (size_t i = 0; i < wf.size(); ++i) magnitude += std::fabs(double(wf[i]) * double(af[i]));
                    const double got = out[size_t(t * rows + r)];
                    ASSERT_LE(std::fabs(got - want), 1e-5 * magnitude)
                        << isa_name(isa) << " " << ref.name << " n=" << n << " row " << r << " token " << t;
                }
            }
        }
    }
}

// Products of one input computed together (each partner format converted once, the rows of all
// shared out between threads) equal the products computed one by one, bit for bit: on the GEMM
// path (20 tokens), the row kernels' (1 and 5 tokens), with partner formats f16, q8_0 and q8_K.
TEST(Matmul, ProductsOfOneInputEqualSeparateProducts) {
    const int64_t n = 512;
    const std::vector<std::pair<T, int64_t>> shapes = {{T::F16, 40}, {T::Q4_0, 37}, {T::Q4_K, 19}, {T::Q8_0, 5}};
    std::vector<Bytes> weights;
    std::vector<TensorView> views;
    for (const auto& [type, rows] : shapes) {
        weights.push_back(quantize_rows(type, rows, n, 11 + uint32_t(rows), 0.05f));
        views.push_back(TensorView{"w", type, {n, rows, 1, 1}, weights.back().data()});
    }
    std::vector<uint8_t> scratch;
    for (int64_t tokens : {1, 5, 20}) {
        const auto x = gaussian(n * tokens, 3 + uint32_t(tokens), 1.0f);
        std::vector<std::vector<float>> separate, together;
        std::vector<ops::Product> products;
        for (const TensorView& w : views) {
            separate.emplace_back(size_t(w.ne[1] * tokens));
            ops::matmul(w, x.data(), tokens, separate.back().data(), scratch);
            together.emplace_back(size_t(w.ne[1] * tokens), NAN);
        }
        for (size_t i = 0; i < views.size(); ++i) products.push_back({&views[i], together[i].data()});
        ops::matmul(products, x.data(), tokens, scratch);
        for (size_t i = 0; i < views.size(); ++i) {
            EXPECT_EQ(std::memcmp(separate[i].data(), together[i].data(), separate[i].size() * sizeof(float)), 0)
                << ref_row(views[i].type).name << ", " << tokens << " tokens";
        }
    }
}

// Unpacked blocks rebuild the reference's dequantized values exactly.
TEST(IntBlocks, RebuildReferenceValues) {
    for (uint32_t id = 0; id < kTensorTypeCount; ++id) {
        const T type = T(id);
        const IntForm form = int_form(type);
        if (form == IntForm::None) continue;
        const int64_t n = 512;
        const Bytes w = quantize_rows(type, 1, n, 5 + id, 0.1f);
        const auto want = dequantize(type, w.data(), n);
        std::vector<float> got(static_cast<size_t>(n));
        if (form == IntForm::Blocks32) {
            std::vector<IntBlock32> blocks(size_t(n / 32));
            unpack_blocks32(type, w.data(), int64_t(blocks.size()), blocks.data());
            for (int64_t i = 0; i < n; ++i) {
                const IntBlock32& b = blocks[size_t(i / 32)];
                got[size_t(i)] = b.d * float(b.q[i % 32]) + b.m;
            }
        } else {
            std::vector<IntBlock256> blocks(size_t(n / 256));
            unpack_blocks256(type, w.data(), int64_t(blocks.size()), blocks.data());
            for (int64_t i = 0; i < n; ++i) {
                const IntBlock256& b = blocks[size_t(i / 256)];
                const int j = int(i % 256 / 16);
                got[size_t(i)] = b.d * float(b.sc[j]) * float(b.q[i % 256]) - b.dmin * float(b.mn[j]);
            }
        }
        for (int64_t i = 0; i < n; ++i) {
            ASSERT_NEAR(got[size_t(i)], want[size_t(i)], 1e-6f * (1.0f + std::fabs(want[size_t(i)])))
                << ref_row(type).name << " value " << i;
        }
    }
}

}  // namespace
}  // namespace qllm
