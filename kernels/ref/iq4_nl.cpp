// Reference kernels of IQ4_NL: 32-value blocks on the non-linear grid kIQ4NLValues, bit-exact
// with ggml's quantize_iq4_nl, dequantize_row_iq4_nl and the scalar ggml_vec_dot_iq4_nl_q8_0.
#include "kernels/ref/quant_search.h"  // first: sets exact float contraction rules

#include <cmath>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/ref/ref.h"

namespace qllm::ref {
namespace {

using detail::best_index_int8;
using detail::kGroupMaxEps;

// Tries this many grid-scale offsets on each side of the amax scale.
constexpr int kScaleTries = 7;

// One block (ggml's quantize_row_iq4_nl_impl with super-block = block = 32). Without importance
// the weights are x^2; with it, importance * sqrt(sigma2 + x^2) where sigma2 is twice the
// block's mean square.
void quantize_block(const float* x, const float* importance, BlockIQ4_NL& y) {
    const int8_t* values = kIQ4NLValues;
    float sigma2 = 0;
    for (int j = 0; j < kQK; ++j) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / kQK;

    float weight[kQK];
    for (int j = 0; j < kQK; ++j) {
        weight[j] = importance ? importance[j] * std::sqrt(sigma2 + x[j] * x[j]) : x[j] * x[j];
    }
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j) {
        const float ax = std::fabs(x[j]);
        if (ax > amax) {
            amax = ax;
            max = x[j];
        }
    }
    float scale = 0;
    if (amax >= kGroupMaxEps) {
        // Start with the extreme value on the grid's extreme (-127), then fit by weighted
        // least squares at several nearby scales and keep the best fit.
        float d = -max / values[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < kQK; ++j) {
            const float q = values[best_index_int8(16, values, id * x[j])];
            sumqx += weight[j] * q * x[j];
            sumq2 += weight[j] * q * q;
        }
        // All weights zero (importance 0 over the block): ggml's 0/0 gives a NaN scale, which
        // poisons every dot product with the row; keep the amax scale instead.
        if (sumq2 > 0) d = sumqx / sumq2;
        float best = d * sumqx;
        for (int itry = -kScaleTries; itry <= kScaleTries; ++itry) {
            id = float(itry + values[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < kQK; ++j) {
                const float q = values[best_index_int8(16, values, id * x[j])];
                sumqx += weight[j] * q * x[j];
                sumq2 += weight[j] * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scale = d;
    }
    // Levels are re-picked with the unrounded scale (an all-zero block gets the level nearest 0).
    y.d = f32_to_f16(scale);
    const float id = scale != 0 ? 1 / scale : 0;
    uint8_t L[kQK];
    for (int j = 0; j < kQK; ++j) L[j] = uint8_t(best_index_int8(16, values, id * x[j]));
    for (int j = 0; j < kQK / 2; ++j) y.qs[j] = uint8_t(L[j] | (L[j + kQK / 2] << 4));
}

}  // namespace

// ggml's reference quantizer for IQ4_NL is the full search with x^2 weights.
void iq4_nl_from_float(const float* src, void* dst, int64_t n) { iq4_nl_quantize(src, dst, n, nullptr); }

void iq4_nl_quantize(const float* src, void* dst, int64_t n, const float* importance) {
    auto* y = static_cast<BlockIQ4_NL*>(dst);
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        quantize_block(src + kQK * ib, importance ? importance + kQK * ib : nullptr, y[ib]);
    }
}

void iq4_nl_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockIQ4_NL*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float d = f16_to_f32(x[i].d);
        float* y = dst + i * kQK;
        for (int j = 0; j < kQK / 2; ++j) {
            y[j] = d * float(kIQ4NLValues[x[i].qs[j] & 0xF]);
            y[j + kQK / 2] = d * float(kIQ4NLValues[x[i].qs[j] >> 4]);
        }
    }
}

float iq4_nl_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockIQ4_NL*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    float sumf = 0;
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        const float d = f16_to_f32(y[ib].d) * f16_to_f32(x[ib].d);
        int sumi1 = 0, sumi2 = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            sumi1 += y[ib].qs[j] * kIQ4NLValues[x[ib].qs[j] & 0xF];
            sumi2 += y[ib].qs[j + kQK / 2] * kIQ4NLValues[x[ib].qs[j] >> 4];
        }
        sumf += d * float(sumi1 + sumi2);
    }
    return sumf;
}

}  // namespace qllm::ref
