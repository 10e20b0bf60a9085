// Reference kernels of the legacy 32-value block formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1
// (Q8_1 is only an activation format: the partner of Q4_1/Q5_1). Bit-exact with ggml's
// quantize_row_*_ref, quantize_* (importance-weighted), dequantize_row_* and the scalar
// ggml_vec_dot_*_q8_* kernels.
#include "kernels/ref/quant_search.h"  // first: sets exact float contraction rules

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/ref/ref.h"

namespace qllm::ref {
namespace {

using detail::make_qkx3_quants;
using detail::make_qx_quants;

// Float to integer truncation as x86's cvttss2si does it: toward zero, and INT32_MIN for NaN and
// values out of range. The level computations below narrow this to 8 bits, which is what their
// plain (int8_t)/(uint8_t) casts compiled to on x86 (and in ggml): the same bytes, but defined
// for NaN, Inf and scales whose inverse overflows (blocks of denormals), on every CPU.
int32_t truncate_to_int32(float v) {
    return v > -2147483648.0f && v < 2147483648.0f ? int32_t(v) : INT32_MIN;
}

// Packs 32 levels (values j and j+16 share a byte) into nibbles.
void pack_nibbles(const uint8_t* levels, uint8_t* qs) {
    for (int j = 0; j < kQK / 2; ++j) qs[j] = uint8_t(levels[j] | (levels[j + kQK / 2] << 4));
}

// Packs 32 five-bit levels: low nibbles as pack_nibbles, bit 4 of value j into bit j of qh.
void pack_5bit(const uint8_t* levels, uint8_t* qs, uint8_t* qh_bytes) {
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
        const uint8_t lo = levels[j];
        const uint8_t hi = levels[j + kQK / 2];
        qs[j] = uint8_t((lo & 0x0F) | ((hi & 0x0F) << 4));
        qh |= ((lo & 0x10u) >> 4) << j;
        qh |= ((hi & 0x10u) >> 4) << (j + kQK / 2);
    }
    std::memcpy(qh_bytes, &qh, sizeof qh);
}

uint32_t load_qh(const uint8_t* qh_bytes) {
    uint32_t qh;
    std::memcpy(&qh, qh_bytes, sizeof qh);
    return qh;
}

// The value with the largest magnitude (its sign matters: it maps to the extreme level).
float signed_absmax(const float* x, int n) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

// Integer dot product of 32 signed levels with a Q8 block's values. The weights are decoded to
// int8 first: GCC 12.2 with AVX-VNNI miscompiles the fused form sum(((q & 15) - 8) * y) (it
// vectorizes it as an unsigned x signed dot product), and integer sums are exact either way.
int dot_levels(const int8_t* levels, const int8_t* q8) {
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += levels[j] * q8[j];
    return sum;
}

// Mean square over the whole row: the importance quantizers weight each value by
// importance * sqrt(sigma2 + x^2).
float row_sigma2(const float* x, int64_t n) {
    float sum_x2 = 0;
    for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
    return sum_x2 / float(n);
}

void importance_weights(const float* xb, const float* qw, float sigma2, float* weight) {
    for (int j = 0; j < kQK; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

}  // namespace

// ---- Q4_0 ----

void q4_0_from_float(const float* src, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ4_0*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        const float d = signed_absmax(x, kQK) / -8;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        uint8_t levels[kQK];
        // The truncating cast of x*id + 8.5 rounds to nearest; the extreme maps to 16, hence the clamp.
        for (int j = 0; j < kQK; ++j) {
            levels[j] = uint8_t(std::min(15, int(int8_t(truncate_to_int32(x[j] * id + 8.5f)))));
        }
        pack_nibbles(levels, y[i].qs);
    }
}

void q4_0_quantize(const float* src, void* dst, int64_t n, const float* importance) {
    if (!importance) return q4_0_from_float(src, dst, n);
    auto* y = static_cast<BlockQ4_0*>(dst);
    const float sigma2 = row_sigma2(src, n);
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        const float* xb = src + kQK * ib;
        float weight[kQK];
        int8_t L[kQK];
        importance_weights(xb, importance + kQK * ib, sigma2, weight);
        const float d = make_qx_quants(kQK, 8, xb, L, 1, weight);
        y[ib].d = f32_to_f16(d);
        pack_nibbles(reinterpret_cast<const uint8_t*>(L), y[ib].qs);
    }
}

void q4_0_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ4_0*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float d = f16_to_f32(x[i].d);
        float* y = dst + i * kQK;
        for (int j = 0; j < kQK / 2; ++j) {
            y[j] = float((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + kQK / 2] = float((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

float q4_0_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    float sumf = 0;
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        int8_t levels[kQK];
        for (int j = 0; j < kQK / 2; ++j) {
            levels[j] = int8_t((x[ib].qs[j] & 0x0F) - 8);
            levels[j + kQK / 2] = int8_t((x[ib].qs[j] >> 4) - 8);
        }
        const int sumi = dot_levels(levels, y[ib].qs);
        sumf += float(sumi) * f16_to_f32(x[ib].d) * f16_to_f32(y[ib].d);
    }
    return sumf;
}

// Smallest and largest value of a block, as the offset formats (Q4_1, Q5_1) need them.
static void block_min_max(const float* x, float& min, float& max) {
    min = FLT_MAX;
    max = -FLT_MAX;
    for (int j = 0; j < kQK; ++j) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
}

// ---- Q4_1 ----

void q4_1_from_float(const float* src, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ4_1*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        float min, max;
        block_min_max(x, min, max);
        const float d = (max - min) / 15;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        y[i].m = f32_to_f16(min);
        uint8_t levels[kQK];
        for (int j = 0; j < kQK; ++j) {
            levels[j] = uint8_t(std::min(15, int(int8_t(truncate_to_int32((x[j] - min) * id + 0.5f)))));
        }
        pack_nibbles(levels, y[i].qs);
    }
}

void q4_1_quantize(const float* src, void* dst, int64_t n, const float* importance) {
    if (!importance) return q4_1_from_float(src, dst, n);
    auto* y = static_cast<BlockQ4_1*>(dst);
    const float sigma2 = row_sigma2(src, n);
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        const float* xb = src + kQK * ib;
        float weight[kQK];
        uint8_t L[kQK], Laux[kQK];
        importance_weights(xb, importance + kQK * ib, sigma2, weight);
        float min;
        const float d = make_qkx3_quants(kQK, 15, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
        y[ib].d = f32_to_f16(d);
        y[ib].m = f32_to_f16(-min);
        pack_nibbles(L, y[ib].qs);
    }
}

void q4_1_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ4_1*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float d = f16_to_f32(x[i].d);
        const float m = f16_to_f32(x[i].m);
        float* y = dst + i * kQK;
        for (int j = 0; j < kQK / 2; ++j) {
            y[j] = float(x[i].qs[j] & 0x0F) * d + m;
            y[j + kQK / 2] = float(x[i].qs[j] >> 4) * d + m;
        }
    }
}

float q4_1_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_1*>(vx);
    const auto* y = static_cast<const BlockQ8_1*>(vy);
    float sumf = 0;
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            sumi0 += (x[ib].qs[j] & 0x0F) * y[ib].qs[j];
            sumi1 += (x[ib].qs[j] >> 4) * y[ib].qs[j + kQK / 2];
        }
        // The weight offset m times the activation sum s covers the "+ m" of every value.
        sumf += (f16_to_f32(x[ib].d) * f16_to_f32(y[ib].d)) * float(sumi0 + sumi1) +
                f16_to_f32(x[ib].m) * f16_to_f32(y[ib].s);
    }
    return sumf;
}

// ---- Q5_0 ----

void q5_0_from_float(const float* src, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ5_0*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        const float d = signed_absmax(x, kQK) / -16;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        uint8_t levels[kQK];
        for (int j = 0; j < kQK; ++j) {
            levels[j] = uint8_t(std::min(31, int(int8_t(truncate_to_int32(x[j] * id + 16.5f)))));
        }
        pack_5bit(levels, y[i].qs, y[i].qh);
    }
}

void q5_0_quantize(const float* src, void* dst, int64_t n, const float* importance) {
    if (!importance) return q5_0_from_float(src, dst, n);
    auto* y = static_cast<BlockQ5_0*>(dst);
    const float sigma2 = row_sigma2(src, n);
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        const float* xb = src + kQK * ib;
        float weight[kQK];
        int8_t L[kQK];
        importance_weights(xb, importance + kQK * ib, sigma2, weight);
        const float d = make_qx_quants(kQK, 16, xb, L, 1, weight);
        y[ib].d = f32_to_f16(d);
        pack_5bit(reinterpret_cast<const uint8_t*>(L), y[ib].qs, y[ib].qh);
    }
}

void q5_0_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ5_0*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float d = f16_to_f32(x[i].d);
        const uint32_t qh = load_qh(x[i].qh);
        float* y = dst + i * kQK;
        for (int j = 0; j < kQK / 2; ++j) {
            const int hi0 = int((qh >> j) << 4) & 0x10;
            const int hi1 = int(qh >> (j + 12)) & 0x10;
            y[j] = float(((x[i].qs[j] & 0x0F) | hi0) - 16) * d;
            y[j + kQK / 2] = float(((x[i].qs[j] >> 4) | hi1) - 16) * d;
        }
    }
}

float q5_0_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    float sumf = 0;
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        const uint32_t qh = load_qh(x[ib].qh);
        int8_t levels[kQK];
        for (int j = 0; j < kQK / 2; ++j) {
            const int hi0 = int((qh >> j) << 4) & 0x10;
            const int hi1 = int(qh >> (j + 12)) & 0x10;
            levels[j] = int8_t(((x[ib].qs[j] & 0x0F) | hi0) - 16);
            levels[j + kQK / 2] = int8_t(((x[ib].qs[j] >> 4) | hi1) - 16);
        }
        const int sumi = dot_levels(levels, y[ib].qs);
        sumf += (f16_to_f32(x[ib].d) * f16_to_f32(y[ib].d)) * float(sumi);
    }
    return sumf;
}

// ---- Q5_1 ----

void q5_1_from_float(const float* src, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ5_1*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        float min, max;
        block_min_max(x, min, max);
        const float d = (max - min) / 31;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        y[i].m = f32_to_f16(min);
        uint8_t levels[kQK];
        // No clamp here (ggml has none): (x - min) * id stays below 31.5.
        for (int j = 0; j < kQK; ++j) levels[j] = uint8_t(truncate_to_int32((x[j] - min) * id + 0.5f));
        pack_5bit(levels, y[i].qs, y[i].qh);
    }
}

void q5_1_quantize(const float* src, void* dst, int64_t n, const float* importance) {
    if (!importance) return q5_1_from_float(src, dst, n);
    auto* y = static_cast<BlockQ5_1*>(dst);
    const float sigma2 = row_sigma2(src, n);
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        const float* xb = src + kQK * ib;
        float weight[kQK];
        uint8_t L[kQK], Laux[kQK];
        importance_weights(xb, importance + kQK * ib, sigma2, weight);
        float min;
        const float d = make_qkx3_quants(kQK, 31, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
        y[ib].d = f32_to_f16(d);
        y[ib].m = f32_to_f16(-min);
        pack_5bit(L, y[ib].qs, y[ib].qh);
    }
}

void q5_1_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ5_1*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float d = f16_to_f32(x[i].d);
        const float m = f16_to_f32(x[i].m);
        const uint32_t qh = load_qh(x[i].qh);
        float* y = dst + i * kQK;
        for (int j = 0; j < kQK / 2; ++j) {
            const int hi0 = int((qh >> j) << 4) & 0x10;
            const int hi1 = int(qh >> (j + 12)) & 0x10;
            y[j] = float((x[i].qs[j] & 0x0F) | hi0) * d + m;
            y[j + kQK / 2] = float((x[i].qs[j] >> 4) | hi1) * d + m;
        }
    }
}

float q5_1_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_1*>(vx);
    const auto* y = static_cast<const BlockQ8_1*>(vy);
    // Eight float lanes, each the integer sum of four neighbouring products per block, scaled and
    // accumulated with one rounding (fused multiply-add); the offsets m*s summed apart.
    float lane[8] = {};
    float offsets = 0.0f;
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        const uint32_t qh = load_qh(x[ib].qh);
        int sums[8] = {};
        for (int j = 0; j < kQK / 2; ++j) {
            const int lo = (x[ib].qs[j] & 0x0F) | (int((qh >> j) << 4) & 0x10);
            const int hi = (x[ib].qs[j] >> 4) | (int(qh >> (j + 12)) & 0x10);
            sums[j / 4] += lo * y[ib].qs[j];
            sums[(j + kQK / 2) / 4] += hi * y[ib].qs[j + kQK / 2];
        }
        const float scale = f16_to_f32(x[ib].d) * f16_to_f32(y[ib].d);
        for (int l = 0; l < 8; ++l) lane[l] = std::fma(float(sums[l]), scale, lane[l]);
        offsets += f16_to_f32(x[ib].m) * f16_to_f32(y[ib].s);
    }
    return reduce_lanes8(lane) + offsets;
}

// ---- Q8_0 ----

void q8_0_from_float(const float* src, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ8_0*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        float amax = 0.0f;
        for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        // std::round: ties away from 0.
        for (int j = 0; j < kQK; ++j) y[i].qs[j] = int8_t(truncate_to_int32(std::round(x[j] * id)));
    }
}

// Q8_0 has no importance-aware search: the reference is already within half a step everywhere.
void q8_0_quantize(const float* src, void* dst, int64_t n, const float* /*importance*/) {
    q8_0_from_float(src, dst, n);
}

void q8_0_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ8_0*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float d = f16_to_f32(x[i].d);
        for (int j = 0; j < kQK; ++j) dst[i * kQK + j] = float(x[i].qs[j]) * d;
    }
}

float q8_0_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    float sumf = 0;
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        int sumi = 0;
        for (int j = 0; j < kQK; ++j) sumi += x[ib].qs[j] * y[ib].qs[j];
        sumf += float(sumi) * (f16_to_f32(x[ib].d) * f16_to_f32(y[ib].d));
    }
    return sumf;
}

// ---- Q8_1 (activations only) ----

void q8_1_from_float(const float* src, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ8_1*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        float amax = 0.0f;
        for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < kQK; ++j) {
            y[i].qs[j] = int8_t(truncate_to_int32(std::round(x[j] * id)));
            sum += y[i].qs[j];
        }
        y[i].s = f32_to_f16(float(sum) * d);
    }
}

void q8_1_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ8_1*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float d = f16_to_f32(x[i].d);
        for (int j = 0; j < kQK; ++j) dst[i * kQK + j] = float(x[i].qs[j]) * d;
    }
}

}  // namespace qllm::ref
