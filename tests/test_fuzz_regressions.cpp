// Inputs the fuzz targets (fuzz/) found to break the library, kept as ordinary tests. Under
// the ASan + UBSan build they also guard against the undefined behaviour they once caused.
#include <cfloat>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/types.h"

namespace qllm::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<uint8_t> quantize(TensorType type, const std::vector<float>& x, const float* importance = nullptr) {
    const TypeTraits& t = reference_table()[size_t(type)];
    std::vector<uint8_t> q(t.row_size(int64_t(x.size())));
    if (importance) {
        t.quantize(x.data(), q.data(), int64_t(x.size()), importance);
    } else {
        t.from_float(x.data(), q.data(), int64_t(x.size()));
    }
    return q;
}

std::vector<float> dequantize(TensorType type, const std::vector<uint8_t>& q, size_t n) {
    std::vector<float> out(n);
    reference_table()[size_t(type)].to_float(q.data(), out.data(), int64_t(n));
    return out;
}

// 32 ordinary values (one legacy block).
std::vector<float> ordinary_block() {
    std::vector<float> x(32);
    for (size_t j = 0; j < x.size(); ++j) x[j] = 0.05f * float(int(j * 7 % 19) - 9);
    return x;
}

// fuzz_quantize: an importance matrix that is zero over a whole IQ4_NL block (columns no
// calibration token ever activated) made the scale 0/0 = NaN, and every dot product with the row
// NaN. The amax scale is kept instead.
TEST(FuzzRegressions, Iq4NlZeroImportanceBlockHasAFiniteScale) {
    std::vector<float> x(64, 0.037f);
    for (size_t j = 0; j < x.size(); ++j) x[j] += 0.01f * float(j % 5);
    std::vector<float> importance(64, 0.0f);
    std::fill(importance.begin() + 32, importance.end(), 1.0f);  // the second block is weighted
    const auto q = quantize(TensorType::IQ4_NL, x, importance.data());
    const auto back = dequantize(TensorType::IQ4_NL, q, x.size());
    for (size_t j = 0; j < x.size(); ++j) {
        ASSERT_TRUE(std::isfinite(back[j])) << "value " << j;
        EXPECT_NEAR(back[j], x[j], 0.01f) << "value " << j;
    }
    // The weighted block is quantized as it would be on its own.
    const std::vector<float> second(x.begin() + 32, x.end());
    const auto alone = quantize(TensorType::IQ4_NL, second, importance.data() + 32);
    EXPECT_TRUE(std::equal(alone.begin(), alone.end(), q.begin() + 18));
}

// fuzz_quantize: the legacy quantizers cast x * (1 / d) to int8 with a plain cast, which is
// undefined for NaN, for Inf and when 1 / d overflows (a block of denormals). A hostile row must
// give some bytes, never undefined behaviour, and must not disturb its neighbouring blocks.
TEST(FuzzRegressions, LegacyQuantizersAcceptNonFiniteAndDenormalBlocks) {
    const std::vector<std::vector<float>> hostile = {
        {kNaN}, {kInf}, {-kInf}, {kNaN, kInf, -kInf}, {std::numeric_limits<float>::denorm_min(), 1e-44f, -3e-45f},
        {FLT_MAX, -FLT_MAX},
    };
    for (TensorType type : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
                            TensorType::Q8_1}) {
        const auto& t = reference_table()[size_t(type)];
        const std::vector<float> good = ordinary_block();
        const auto good_alone = quantize(type, good);
        for (size_t h = 0; h < hostile.size(); ++h) {
            std::vector<float> bad = ordinary_block();
            std::copy(hostile[h].begin(), hostile[h].end(), bad.begin() + 3);
            std::vector<float> row = bad;
            row.insert(row.end(), good.begin(), good.end());
            const auto q = quantize(type, row);
            EXPECT_TRUE(std::equal(good_alone.begin(), good_alone.end(), q.begin() + ptrdiff_t(t.type_size)))
                << t.name << " case " << h;
        }
        // A block of denormals has a scale that rounds to zero in f16: it comes back as zeros.
        const std::vector<float> tiny(32, 1e-44f);
        for (float v : dequantize(type, quantize(type, tiny), tiny.size())) EXPECT_EQ(v, 0.0f) << t.name;
    }
}

}  // namespace
}  // namespace qllm::test
