// Reference kernels of Q2_K and Q3_K (256-value super-blocks of 16 sub-blocks of 16), bit-exact
// with ggml's quantize_row_q{2,3}_K_ref, quantize_q{2,3}_K, dequantize_row_q{2,3}_K and the scalar
// ggml_vec_dot_q{2,3}_K_q8_K.
#include "kernels/ref/quant_search.h"  // first: sets exact float contraction rules

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/ref/kquants_common.h"
#include "kernels/ref/ref.h"

namespace qllm::ref {
namespace {

using namespace detail;

// ---- Q2_K helpers ----

// With the block scales fixed (d, dmin, 4-bit sub-block scales), re-pick every level: the search
// ran with unrounded scales. Sub-blocks whose scale rounds to zero keep the search's levels.
void q2_k_requantize(const float* x, const BlockQ2_K& y, uint8_t* L) {
    const float d_all = f16_to_f32(y.d);
    const float m_all = f16_to_f32(y.dmin);
    for (int j = 0; j < kQK_K / 16; ++j) {
        const float d = d_all * float(y.scales[j] & 0xF);
        if (d == 0) continue;
        const float dm = m_all * float(y.scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) {
            const int l = nearest_int((x[16 * j + ii] + dm) / d);
            L[16 * j + ii] = uint8_t(std::max(0, std::min(3, l)));
        }
    }
}

// ---- Q3_K helpers ----


void q3_k_set_scale(uint8_t* scales, int j, int biased) {
    if (j < 8) scales[j] = uint8_t(biased & 0xF);
    else scales[j - 8] |= uint8_t((biased & 0xF) << 4);
    scales[j % 4 + 8] |= uint8_t((biased >> 4) << (2 * (j / 4)));
}

// Re-picks levels with the final scales (see q2_k_requantize), then stores them: bit 2 of each
// level goes to hmask, the low 2 bits to qs.
void q3_k_requantize_and_pack(const float* x, BlockQ3_K& y, int8_t* L) {
    const float d_all = f16_to_f32(y.d);
    for (int j = 0; j < kQK_K / 16; ++j) {
        const float d = d_all * float(q3_k_scale(y.scales, j) - 32);
        if (d == 0) continue;
        for (int ii = 0; ii < 16; ++ii) {
            const int l = nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = int8_t(std::max(-4, std::min(3, l)) + 4);
        }
    }
    // Branch-free: whether a level is > 3 is a coin flip, and mispredicted branches dominated here.
    std::memset(y.hmask, 0, sizeof y.hmask);
    for (int g = 0; g < kQK_K / 32; ++g) {
        for (int l = 0; l < 32; ++l) {
            const int high = L[32 * g + l] > 3;
            y.hmask[l] = uint8_t(y.hmask[l] | (high << g));
            L[32 * g + l] = int8_t(L[32 * g + l] - 4 * high);
        }
    }
    pack_2bit_k(reinterpret_cast<const uint8_t*>(L), y.qs);
}

}  // namespace

// ---- Q2_K ----

void q2_k_from_float(const float* src, void* dst, int64_t n) {
    auto* blocks = static_cast<BlockQ2_K*>(dst);
    const float q4scale = 15.f;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ2_K& y = blocks[i];
        uint8_t L[kQK_K];
        float weights[kQK_K];
        float mins[kQK_K / 16];
        float scales[kQK_K / 16];
        for (int l = 0; l < kQK_K; ++l) weights[l] = std::fabs(x[l]);
        // make_qkx2_quants on each sub-block of 16, 8 at a time.
        for (int h = 0; h < 2; ++h) {
            make_qkx_quants_x8(16, 3, x + 128 * h, weights + 128 * h, L + 128 * h, scales + 8 * h, mins + 8 * h, -0.5f,
                               0.1f, 15, true);
        }
        float max_scale = 0;  // scales are positive: the minimum is subtracted
        float max_min = 0;
        for (int j = 0; j < kQK_K / 16; ++j) {
            max_scale = std::max(max_scale, scales[j]);
            max_min = std::max(max_min, mins[j]);
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < kQK_K / 16; ++j) y.scales[j] = uint8_t(nearest_int(iscale * scales[j]));
            y.d = f32_to_f16(max_scale / q4scale);
        } else {
            std::memset(y.scales, 0, sizeof y.scales);
            y.d = f32_to_f16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < kQK_K / 16; ++j) y.scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
            y.dmin = f32_to_f16(max_min / q4scale);
        } else {
            y.dmin = f32_to_f16(0.f);
        }
        q2_k_requantize(x, y, L);
        pack_2bit_k(L, y.qs);
    }
}

void q2_k_quantize(const float* src, void* dst, int64_t n, const float* importance) {
    if (!importance) return q2_k_from_float(src, dst, n);
    auto* blocks = static_cast<BlockQ2_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ2_K& y = blocks[i];
        uint8_t L[kQK_K];
        float mins[kQK_K / 16];
        float scales[kQK_K / 16];
        float sw[kQK_K / 16] = {};
        float weights[kQK_K];
        uint8_t Ls[kQK_K / 16], Lm[kQK_K / 16];
        float sumx2 = 0;
        for (int j = 0; j < kQK_K; ++j) sumx2 += x[j] * x[j];
        const float sigma2 = sumx2 / kQK_K;
        for (int j = 0; j < kQK_K / 16; ++j) {
            const float* qw = importance + kQK_K * i + 16 * j;
            float* weight = weights + 16 * j;
            for (int l = 0; l < 16; ++l) weight[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            for (int l = 0; l < 16; ++l) sw[j] += weight[l];
        }
        // make_qkx3_quants on each sub-block of 16, 8 at a time.
        for (int h = 0; h < 2; ++h) {
            make_qkx_quants_x8(16, 3, x + 128 * h, weights + 128 * h, L + 128 * h, scales + 8 * h, mins + 8 * h, -0.9f,
                               0.05f, 36, false);
        }
        // The sub-block scales and minimums are themselves quantized to 4 bits, weighted by
        // each sub-block's total importance.
        const float dm = make_qp_quants(kQK_K / 16, 15, scales, Ls, sw);
        const float mm = make_qp_quants(kQK_K / 16, 15, mins, Lm, sw);
        y.d = f32_to_f16(dm);
        y.dmin = f32_to_f16(mm);
        for (int j = 0; j < kQK_K / 16; ++j) y.scales[j] = uint8_t(Ls[j] | (Lm[j] << 4));
        q2_k_requantize(x, y, L);
        pack_2bit_k(L, y.qs);
    }
}

void q2_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const BlockQ2_K*>(src);
    float* y = dst;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ2_K& x = blocks[i];
        const float d = f16_to_f32(x.d);
        const float min = f16_to_f32(x.dmin);
        const uint8_t* q = x.qs;
        int is = 0;
        for (int half = 0; half < kQK_K; half += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; ++part) {  // two sub-blocks of 16 share each bit pair
                    const uint8_t sc = x.scales[is++];
                    const float dl = d * float(sc & 0xF);
                    const float ml = min * float(sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * float((q[l + 16 * part] >> shift) & 3) - ml;
                }
            }
            q += 32;
        }
    }
}

float q2_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ2_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    float sumf = 0;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ2_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const uint8_t* q2 = x.qs;
        const int8_t* q8 = y.qs;
        // Minimums: sum over sub-blocks of min * (sum of its activations), via Q8_K's bsums.
        int summs = 0;
        for (int j = 0; j < 16; ++j) summs += y.bsums[j] * (x.scales[j] >> 4);
        const float dall = y.d * f16_to_f32(x.d);
        const float dmin = y.d * f16_to_f32(x.dmin);
        int isum = 0;
        int is = 0;
        for (int k = 0; k < kQK_K / 128; ++k) {
            for (int shift = 0; shift < 8; shift += 2) {
                int d = x.scales[is++] & 0xF;
                int isuml = 0;
                for (int l = 0; l < 16; ++l) isuml += q8[l] * ((q2[l] >> shift) & 3);
                isum += d * isuml;
                d = x.scales[is++] & 0xF;
                isuml = 0;
                for (int l = 16; l < 32; ++l) isuml += q8[l] * ((q2[l] >> shift) & 3);
                isum += d * isuml;
                q8 += 32;
            }
            q2 += 32;
        }
        sumf += dall * float(isum) - dmin * float(summs);
    }
    return sumf;
}

// ---- Q3_K ----

void q3_k_from_float(const float* src, void* dst, int64_t n) {
    auto* blocks = static_cast<BlockQ3_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ3_K& y = blocks[i];
        int8_t L[kQK_K];
        float scales[kQK_K / 16];
        float max_scale = 0;  // signed: the scale of largest magnitude
        float amax = 0;
        // make_q3_quants(16, 4, ..., do_rmse) on each sub-block of 16, 8 at a time.
        for (int h = 0; h < 2; ++h) make_q3_quants_x8(16, 4, x + 128 * h, L + 128 * h, scales + 8 * h);
        for (int j = 0; j < kQK_K / 16; ++j) {
            const float scale = std::fabs(scales[j]);
            if (scale > amax) {
                amax = scale;
                max_scale = scales[j];
            }
        }
        std::memset(y.scales, 0, sizeof y.scales);
        if (max_scale != 0) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < kQK_K / 16; ++j) {
                // ggml keeps the rounded scale in an int8_t before clamping; the value fits anyway.
                const int l = int8_t(nearest_int(iscale * scales[j]));
                q3_k_set_scale(y.scales, j, std::max(-32, std::min(31, l)) + 32);
            }
            y.d = f32_to_f16(1 / iscale);
        } else {
            y.d = f32_to_f16(0.f);
        }
        q3_k_requantize_and_pack(x, y, L);
    }
}

void q3_k_quantize(const float* src, void* dst, int64_t n, const float* importance) {
    if (!importance) return q3_k_from_float(src, dst, n);
    auto* blocks = static_cast<BlockQ3_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ3_K& y = blocks[i];
        int8_t L[kQK_K];
        float scales[kQK_K / 16];
        float weights[kQK_K];
        float sw[kQK_K / 16];
        int8_t Ls[kQK_K / 16];
        float sumx2 = 0;
        for (int j = 0; j < kQK_K; ++j) sumx2 += x[j] * x[j];
        const float sigma2 = 2 * sumx2 / kQK_K;
        for (int j = 0; j < kQK_K / 16; ++j) {
            const float* qw = importance + kQK_K * i + 16 * j;
            float* weight = weights + 16 * j;
            for (int l = 0; l < 16; ++l) weight[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 16; ++l) sumw += weight[l];
            sw[j] = sumw;
        }
        // make_qx_quants(16, 4, ..., rmse_type 1, weights) on each sub-block, 8 at a time.
        for (int h = 0; h < 2; ++h) {
            make_qx_quants_x8(16, 4, x + 128 * h, weights + 128 * h, L + 128 * h, scales + 8 * h);
        }
        std::memset(y.scales, 0, sizeof y.scales);
        // The 16 signed sub-block scales share one f16 scale; Ls comes back biased by +32.
        const float d_block = make_qx_quants(kQK_K / 16, 32, scales, Ls, 1, sw);
        for (int j = 0; j < kQK_K / 16; ++j) q3_k_set_scale(y.scales, j, Ls[j]);
        y.d = f32_to_f16(d_block);
        q3_k_requantize_and_pack(x, y, L);
    }
}

void q3_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const BlockQ3_K*>(src);
    float* y = dst;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ3_K& x = blocks[i];
        const float d_all = f16_to_f32(x.d);
        const uint8_t* q = x.qs;
        uint8_t m = 1;  // hmask bit of the current group of 32
        int is = 0;
        for (int half = 0; half < kQK_K; half += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; ++part) {
                    const float dl = d_all * float(q3_k_scale(x.scales, is++) - 32);
                    for (int l = 16 * part; l < 16 * part + 16; ++l) {
                        const int level = ((q[l] >> shift) & 3) - ((x.hmask[l] & m) ? 0 : 4);
                        *y++ = dl * float(level);
                    }
                }
                m = uint8_t(m << 1);
            }
            q += 32;
        }
    }
}

float q3_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ3_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    float sums[8] = {};
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ3_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        int8_t levels[kQK_K];  // signed levels -4..3 in value order
        int8_t* a = levels;
        const uint8_t* q3 = x.qs;
        uint8_t m = 1;
        for (int half = 0; half < kQK_K; half += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int l = 0; l < 32; ++l) a[l] = int8_t(((q3[l] >> shift) & 3) - ((x.hmask[l] & m) ? 0 : 4));
                a += 32;
                m = uint8_t(m << 1);
            }
            q3 += 32;
        }
        int scale16[16];
        for (int j = 0; j < 16; ++j) scale16[j] = q3_k_scale(x.scales, j) - 32;
        int32_t lanes[8];
        accumulate_8_lanes(levels, y.qs, scale16, lanes);
        const float d = f16_to_f32(x.d) * y.d;
        for (int l = 0; l < 8; ++l) sums[l] += d * float(lanes[l]);
    }
    float sumf = 0;
    for (int l = 0; l < 8; ++l) sumf += sums[l];
    return sumf;
}

}  // namespace qllm::ref
