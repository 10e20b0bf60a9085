// Reference kernels of Q4_K, Q5_K, Q6_K and the activation format Q8_K, bit-exact with ggml's
// quantize_row_*_ref, quantize_* (importance-weighted), dequantize_row_* and the scalar
// ggml_vec_dot_*_q8_K.
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

// ---- Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and minimums ----

// Inverse of get_scale_min_k4; sub-blocks must be set in order 0..7 on zeroed-or-overwritten bytes.
void set_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t* q) {
    if (j < 4) {
        q[j] = ls;
        q[j + 4] = lm;
    } else {
        q[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
        q[j - 4] |= uint8_t((ls >> 4) << 6);
        q[j] |= uint8_t((lm >> 4) << 6);
    }
}

// The search shared by Q4_K and Q5_K's reference quantizers: per sub-block scale/minimum
// fitted with weights av_x + |x|, then both quantized to 6 bits against their maxima.
template <int kMaxLevel>
void qkx_ref_scales(const float* x, uint8_t* L, uint8_t* packed_scales, f16_t& d, f16_t& dmin, float rmin,
                    int nstep) {
    float weights[kQK_K];
    float mins[kQK_K / 32];
    float scales[kQK_K / 32];
    for (int j = 0; j < kQK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[32 * j + l] = av_x + std::fabs(x[32 * j + l]);
    }
    // make_qkx2_quants on each of the 8 sub-blocks, all 8 at once.
    make_qkx_quants_x8(32, kMaxLevel, x, weights, L, scales, mins, rmin, 0.1f, nstep, false);
    float max_scale = 0;  // scales are positive: the minimum is subtracted
    float max_min = 0;
    for (int j = 0; j < kQK_K / 32; ++j) {
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < kQK_K / 32; ++j) {
        // ggml stores the rounded values in uint8_t before clamping; keep that truncation.
        const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
        const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
        set_scale_min_k4(j, ls, lm, packed_scales);
    }
    d = f32_to_f16(max_scale / 63.f);
    dmin = f32_to_f16(max_min / 63.f);
}

// The importance-weighted search shared by Q4_K and Q5_K.
template <int kMaxLevel>
void qkx_importance_scales(const float* x, const float* qw_block, uint8_t* L, uint8_t* packed_scales, f16_t& d,
                           f16_t& dmin) {
    uint8_t Ls[kQK_K / 32];
    uint8_t Lm[kQK_K / 32];
    float weights[kQK_K];
    float sw[kQK_K / 32];
    float mins[kQK_K / 32];
    float scales[kQK_K / 32];
    float sum_x2 = 0;
    for (int l = 0; l < kQK_K; ++l) sum_x2 += x[l] * x[l];
    const float sigma2 = 2 * sum_x2 / kQK_K;
    for (int j = 0; j < kQK_K / 32; ++j) {
        const float* qw = qw_block + 32 * j;
        float* w = weights + 32 * j;
        for (int l = 0; l < 32; ++l) w[l] = qw[l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += w[l];
        sw[j] = sumw;
    }
    // make_qkx3_quants on each of the 8 sub-blocks, all 8 at once.
    make_qkx_quants_x8(32, kMaxLevel, x, weights, L, scales, mins, -0.9f, 0.05f, 36, false);
    const float d_block = make_qp_quants(kQK_K / 32, 63, scales, Ls, sw);
    const float m_block = make_qp_quants(kQK_K / 32, 63, mins, Lm, sw);
    for (int j = 0; j < kQK_K / 32; ++j) {
        set_scale_min_k4(j, std::min<uint8_t>(63, Ls[j]), std::min<uint8_t>(63, Lm[j]), packed_scales);
    }
    d = f32_to_f16(d_block);
    dmin = f32_to_f16(m_block);
}

// Re-picks every level with the final (rounded) scales; zero-scale sub-blocks keep the search's.
template <int kMaxLevel>
void qkx_requantize(const float* x, const uint8_t* packed_scales, f16_t d16, f16_t dmin16, uint8_t* L) {
    for (int j = 0; j < kQK_K / 32; ++j) {
        int sc, m;
        get_scale_min_k4(j, packed_scales, sc, m);
        const float d = f16_to_f32(d16) * float(sc);
        if (d == 0) continue;
        const float dm = f16_to_f32(dmin16) * float(m);
        for (int ii = 0; ii < 32; ++ii) {
            const int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = uint8_t(std::max(0, std::min(kMaxLevel, l)));
        }
    }
}

void q4_k_pack(const uint8_t* L, uint8_t* qs) {
    for (int j = 0; j < kQK_K; j += 64) {
        for (int l = 0; l < 32; ++l) qs[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
        qs += 32;
    }
}

void q5_k_pack(const uint8_t* L, uint8_t* qs, uint8_t* qh) {
    std::memset(qh, 0, kQK_K / 8);
    // Branch-free: whether a level is > 15 is a coin flip, and mispredicted branches dominated here.
    int shift = 0;  // qh bit of the first of the two groups of 32
    for (int n = 0; n < kQK_K; n += 64) {
        for (int j = 0; j < 32; ++j) {
            const int l1 = L[n + j], l2 = L[n + j + 32];
            const int h1 = l1 > 15, h2 = l2 > 15;
            qh[j] = uint8_t(qh[j] | (h1 << shift) | (h2 << (shift + 1)));
            qs[j] = uint8_t((l1 - 16 * h1) | ((l2 - 16 * h2) << 4));
        }
        shift += 2;
        qs += 32;
    }
}

// Dot product of Q4_K/Q5_K levels (unsigned, 256 in value order) with Q8_K activations, in
// ggml's scalar arrangement: scales via 8 integer lanes, minimums via the activation bsums.
void qkx_dot_block(const int8_t* levels, const uint8_t* packed_scales, f16_t d16, f16_t dmin16,
                   const BlockQ8_K& y, float sums[8], float& sumf) {
    int scale16[16];
    int mins[8];
    for (int j = 0; j < 8; ++j) {
        int sc;
        get_scale_min_k4(j, packed_scales, sc, mins[j]);
        scale16[2 * j] = scale16[2 * j + 1] = sc;
    }
    int sumi = 0;
    for (int j = 0; j < kQK_K / 16; ++j) sumi += y.bsums[j] * mins[j / 2];
    int32_t lanes[8];
    accumulate_8_lanes(levels, y.qs, scale16, lanes);
    const float d = f16_to_f32(d16) * y.d;
    for (int l = 0; l < 8; ++l) sums[l] += d * float(lanes[l]);
    const float dmin = f16_to_f32(dmin16) * y.d;
    sumf -= dmin * float(sumi);
}

// ---- Q6_K ----

void q6_k_finish(const float* x, const float* scales, float max_scale, float max_abs_scale, int8_t* L,
                 BlockQ6_K& y) {
    if (max_abs_scale < kGroupMaxEps) {
        std::memset(&y, 0, sizeof y);
        y.d = f32_to_f16(0.f);
        return;
    }
    const float iscale = -128.f / max_scale;
    y.d = f32_to_f16(1 / iscale);
    for (int ib = 0; ib < kQK_K / 16; ++ib) y.scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
    // Re-pick levels with the rounded scales; zero-scale sub-blocks keep the search's levels.
    for (int j = 0; j < kQK_K / 16; ++j) {
        const float d = f16_to_f32(y.d) * float(y.scales[j]);
        if (d == 0) continue;
        for (int ii = 0; ii < 16; ++ii) {
            const int l = nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = int8_t(std::max(-32, std::min(31, l)) + 32);
        }
    }
    uint8_t* ql = y.ql;
    uint8_t* qh = y.qh;
    for (int j = 0; j < kQK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            const uint8_t q1 = L[j + l + 0] & 0xF;
            const uint8_t q2 = L[j + l + 32] & 0xF;
            const uint8_t q3 = L[j + l + 64] & 0xF;
            const uint8_t q4 = L[j + l + 96] & 0xF;
            ql[l + 0] = uint8_t(q1 | (q3 << 4));
            ql[l + 32] = uint8_t(q2 | (q4 << 4));
            qh[l] = uint8_t((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                            ((L[j + l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}

// Q6_K quantizer body; importance (the block's 256 weights) may be null.
void q6_k_block(const float* x, const float* importance, BlockQ6_K& y) {
    int8_t L[kQK_K];
    float scales[kQK_K / 16];
    // make_qx_quants(16, 32, ..., rmse_type 1) on each sub-block of 16, 8 at a time.
    for (int half = 0; half < 2; ++half) {
        make_qx_quants_x8(16, 32, x + 128 * half, importance ? importance + 128 * half : nullptr, L + 128 * half,
                          scales + 8 * half);
    }
    float max_scale = 0;  // signed: the scale of largest magnitude
    float max_abs_scale = 0;
    for (int ib = 0; ib < kQK_K / 16; ++ib) {
        const float scale = scales[ib];
        const float abs_scale = std::fabs(scale);
        if (abs_scale > max_abs_scale) {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    q6_k_finish(x, scales, max_scale, max_abs_scale, L, y);
}


}  // namespace

// ---- Q4_K ----

void q4_k_from_float(const float* src, void* dst, int64_t n) {
    auto* blocks = static_cast<BlockQ4_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ4_K& y = blocks[i];
        uint8_t L[kQK_K];
        qkx_ref_scales<15>(x, L, y.scales, y.d, y.dmin, -1.f, 20);
        qkx_requantize<15>(x, y.scales, y.d, y.dmin, L);
        q4_k_pack(L, y.qs);
    }
}

void q4_k_quantize(const float* src, void* dst, int64_t n, const float* importance) {
    if (!importance) return q4_k_from_float(src, dst, n);
    auto* blocks = static_cast<BlockQ4_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ4_K& y = blocks[i];
        uint8_t L[kQK_K];
        qkx_importance_scales<15>(x, importance + kQK_K * i, L, y.scales, y.d, y.dmin);
        qkx_requantize<15>(x, y.scales, y.d, y.dmin, L);
        q4_k_pack(L, y.qs);
    }
}

void q4_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const BlockQ4_K*>(src);
    float* y = dst;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ4_K& x = blocks[i];
        const float d = f16_to_f32(x.d);
        const float min = f16_to_f32(x.dmin);
        const uint8_t* q = x.qs;
        for (int is = 0; is < 8; is += 2) {
            int sc, m;
            get_scale_min_k4(is + 0, x.scales, sc, m);
            const float d1 = d * float(sc), m1 = min * float(m);
            get_scale_min_k4(is + 1, x.scales, sc, m);
            const float d2 = d * float(sc), m2 = min * float(m);
            for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
            q += 32;
        }
    }
}

float q4_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ4_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    float sums[8] = {};
    float sumf = 0;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        int8_t levels[kQK_K];
        const uint8_t* q4 = xs[i].qs;
        for (int j = 0; j < kQK_K / 64; ++j) {
            for (int l = 0; l < 32; ++l) levels[64 * j + l] = int8_t(q4[l] & 0xF);
            for (int l = 0; l < 32; ++l) levels[64 * j + 32 + l] = int8_t(q4[l] >> 4);
            q4 += 32;
        }
        qkx_dot_block(levels, xs[i].scales, xs[i].d, xs[i].dmin, ys[i], sums, sumf);
    }
    for (int l = 0; l < 8; ++l) sumf += sums[l];
    return sumf;
}

// ---- Q5_K ----

void q5_k_from_float(const float* src, void* dst, int64_t n) {
    auto* blocks = static_cast<BlockQ5_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ5_K& y = blocks[i];
        uint8_t L[kQK_K];
        qkx_ref_scales<31>(x, L, y.scales, y.d, y.dmin, -0.5f, 15);
        qkx_requantize<31>(x, y.scales, y.d, y.dmin, L);
        q5_k_pack(L, y.qs, y.qh);
    }
}

void q5_k_quantize(const float* src, void* dst, int64_t n, const float* importance) {
    if (!importance) return q5_k_from_float(src, dst, n);
    auto* blocks = static_cast<BlockQ5_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ5_K& y = blocks[i];
        uint8_t L[kQK_K];
        qkx_importance_scales<31>(x, importance + kQK_K * i, L, y.scales, y.d, y.dmin);
        qkx_requantize<31>(x, y.scales, y.d, y.dmin, L);
        q5_k_pack(L, y.qs, y.qh);
    }
}

void q5_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const BlockQ5_K*>(src);
    float* y = dst;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ5_K& x = blocks[i];
        const float d = f16_to_f32(x.d);
        const float min = f16_to_f32(x.dmin);
        const uint8_t* ql = x.qs;
        uint8_t u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2) {
            int sc, m;
            get_scale_min_k4(is + 0, x.scales, sc, m);
            const float d1 = d * float(sc), m1 = min * float(m);
            get_scale_min_k4(is + 1, x.scales, sc, m);
            const float d2 = d * float(sc), m2 = min * float(m);
            for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) + (x.qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + (x.qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            u1 = uint8_t(u1 << 2);
            u2 = uint8_t(u2 << 2);
        }
    }
}

float q5_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ5_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    float sums[8] = {};
    float sumf = 0;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        int8_t levels[kQK_K];
        const uint8_t* q4 = xs[i].qs;
        const uint8_t* hm = xs[i].qh;
        uint8_t m = 1;
        for (int j = 0; j < kQK_K / 64; ++j) {
            for (int l = 0; l < 32; ++l) levels[64 * j + l] = int8_t((q4[l] & 0xF) + (hm[l] & m ? 16 : 0));
            m = uint8_t(m << 1);
            for (int l = 0; l < 32; ++l) levels[64 * j + 32 + l] = int8_t((q4[l] >> 4) + (hm[l] & m ? 16 : 0));
            m = uint8_t(m << 1);
            q4 += 32;
        }
        qkx_dot_block(levels, xs[i].scales, xs[i].d, xs[i].dmin, ys[i], sums, sumf);
    }
    for (int l = 0; l < 8; ++l) sumf += sums[l];
    return sumf;
}

// ---- Q6_K ----

void q6_k_from_float(const float* src, void* dst, int64_t n) {
    auto* blocks = static_cast<BlockQ6_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) q6_k_block(src + i * kQK_K, nullptr, blocks[i]);
}

// Unlike the other K-quants, Q6_K uses the importance weights as they are (no sigma2 term).
void q6_k_quantize(const float* src, void* dst, int64_t n, const float* importance) {
    auto* blocks = static_cast<BlockQ6_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        q6_k_block(src + i * kQK_K, importance ? importance + i * kQK_K : nullptr, blocks[i]);
    }
}

void q6_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const BlockQ6_K*>(src);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ6_K& x = blocks[i];
        const float d = f16_to_f32(x.d);
        int8_t levels[kQK_K];
        q6_k_levels(x, levels);
        float* y = dst + i * kQK_K;
        // Per half of 128: value l + 32*g uses scale 8*half + 2*g + l/16.
        for (int half = 0; half < 2; ++half) {
            const int8_t* sc = x.scales + 8 * half;
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                for (int g = 0; g < 4; ++g) {
                    const int v = 128 * half + 32 * g + l;
                    y[v] = d * float(sc[is + 2 * g]) * float(levels[v]);
                }
            }
        }
    }
}

float q6_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ6_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    float sums[8] = {};
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        int8_t levels[kQK_K];
        q6_k_levels(xs[i], levels);
        int scale16[16];
        for (int j = 0; j < 16; ++j) scale16[j] = xs[i].scales[j];
        int32_t lanes[8];
        accumulate_8_lanes(levels, ys[i].qs, scale16, lanes);
        const float d = f16_to_f32(xs[i].d) * ys[i].d;
        for (int l = 0; l < 8; ++l) sums[l] += d * float(lanes[l]);
    }
    float sumf = 0;
    for (int l = 0; l < 8; ++l) sumf += sums[l];
    return sumf;
}

// ---- Q8_K (activations only) ----

void q8_k_from_float(const float* src, void* dst, int64_t n) {
    auto* blocks = static_cast<BlockQ8_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ8_K& y = blocks[i];
        float max = 0;
        float amax = 0;
        for (int j = 0; j < kQK_K; ++j) {
            const float ax = std::fabs(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0) {
            std::memset(&y, 0, sizeof y);
            continue;
        }
        // -127 rather than -128 (ggml's choice, so that SIMD kernels can use symmetric ranges);
        // the value equal to max lands on -127 and the clamp only catches rounding at +127.
        const float iscale = -127.f / max;
        for (int j = 0; j < kQK_K; ++j) y.qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
        for (int j = 0; j < kQK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y.qs[j * 16 + ii];
            y.bsums[j] = int16_t(sum);
        }
        y.d = 1 / iscale;
    }
}

void q8_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const BlockQ8_K*>(src);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        for (int j = 0; j < kQK_K; ++j) dst[i * kQK_K + j] = blocks[i].d * float(blocks[i].qs[j]);
    }
}

}  // namespace qllm::ref
