// NEON (ARMv8.2 dotprod) kernels; also the Apple Silicon path. This file: the float formats
// (F16, BF16), the activation quantizers (Q8_0, Q8_1, Q8_K) and the registration of every NEON
// kernel. The quantized dot products live in neon_dots.cpp.
//
// Contract with the reference (kernels/ref): the quantizers and conversions write the same
// bytes, the F16/BF16 dots return the same bits (same lane split and reduction tree; f16 and
// bf16 products are exact in float, so a fused multiply-add rounds like the reference's add;
// for BF16 only while the product stays in float's normal range).
#include <arm_neon.h>

#include <climits>

#include <cmath>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/ref/ref.h"
#include "qllm/half.h"

namespace qllm {

// Defined in neon_dots.cpp.
void register_neon_dots(TraitsTable& table);

namespace {

// ---- F16 ----

inline float32x4_t f16x4_to_f32(const f16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

// 16 lanes (four vectors) over blocks of 16 values, then the reference's pairwise tree
// 8+8, 4+4, 2+2, 1+1, then the tail in double: bit-identical to ref::f16_vec_dot.
float f16_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const f16_t*>(x);
    const auto* b = static_cast<const f16_t*>(y);
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int k = 0; k < 4; ++k) acc[k] = vfmaq_f32(acc[k], f16x4_to_f32(a + i + 4 * k), f16x4_to_f32(b + i + 4 * k));
    }
    const float32x4_t v = vaddq_f32(vaddq_f32(acc[0], acc[2]), vaddq_f32(acc[1], acc[3]));
    const float32x2_t h = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    double sum = vget_lane_f32(h, 0) + vget_lane_f32(h, 1);
    for (; i < n; ++i) sum += double(f16_to_f32(a[i])) * double(f16_to_f32(b[i]));
    return float(sum);
}

// Hardware f16 -> f32 is exact and treats NaNs as the reference does (quieted, payload kept).
void f16_to_float(const void* src, float* dst, int64_t n) {
    const auto* h = static_cast<const f16_t*>(src);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, f16x4_to_f32(h + i));
    for (; i < n; ++i) dst[i] = f16_to_f32(h[i]);
}

// Hardware f32 -> f16 rounds to nearest even like the reference, except that NaN payloads
// differ: groups holding a NaN take the scalar path.
void f16_from_float(const float* src, void* dst, int64_t n) {
    auto* h = static_cast<f16_t*>(dst);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(src + i);
        if (vminvq_u32(vceqq_f32(v, v)) == 0) {
            for (int k = 0; k < 4; ++k) h[i + k] = f32_to_f16(src[i + k]);
            continue;
        }
        vst1_u16(h + i, vreinterpret_u16_f16(vcvt_f16_f32(v)));
    }
    for (; i < n; ++i) h[i] = f32_to_f16(src[i]);
}

// ---- BF16 ----

inline float32x4_t bf16_lo(uint16x8_t v) { return vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16)); }
inline float32x4_t bf16_hi(uint16x8_t v) { return vreinterpretq_f32_u32(vshll_high_n_u16(v, 16)); }

// The reference's order: lane j (of 16) adds, per 32 values, the odd product 2j+1 then the even
// product 2j; then the pairwise tree and a double tail. vld2 splits even and odd values.
float bf16_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const bf16_t*>(x);
    const auto* b = static_cast<const bf16_t*>(y);
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int half = 0; half < 2; ++half) {  // lanes 8*half .. 8*half+7
            const uint16x8x2_t va = vld2q_u16(a + i + 16 * half);
            const uint16x8x2_t vb = vld2q_u16(b + i + 16 * half);
            float32x4_t& lo = acc[2 * half];
            float32x4_t& hi = acc[2 * half + 1];
            lo = vfmaq_f32(lo, bf16_lo(va.val[1]), bf16_lo(vb.val[1]));
            hi = vfmaq_f32(hi, bf16_hi(va.val[1]), bf16_hi(vb.val[1]));
            lo = vfmaq_f32(lo, bf16_lo(va.val[0]), bf16_lo(vb.val[0]));
            hi = vfmaq_f32(hi, bf16_hi(va.val[0]), bf16_hi(vb.val[0]));
        }
    }
    const float32x4_t v = vaddq_f32(vaddq_f32(acc[0], acc[2]), vaddq_f32(acc[1], acc[3]));
    const float32x2_t h = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    double sum = vget_lane_f32(h, 0) + vget_lane_f32(h, 1);
    for (; i < n; ++i) sum += double(bf16_to_f32(a[i])) * double(bf16_to_f32(b[i]));
    return float(sum);
}

void bf16_to_float(const void* src, float* dst, int64_t n) {
    const auto* h = static_cast<const bf16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t v = vld1q_u16(h + i);
        vst1q_f32(dst + i, bf16_lo(v));
        vst1q_f32(dst + i + 4, bf16_hi(v));
    }
    for (; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
}

// Round to nearest even in integers, as f32_to_bf16: (u + 0x7fff + lsb) >> 16; NaN -> top | 64.
void bf16_from_float(const float* src, void* dst, int64_t n) {
    auto* h = static_cast<bf16_t*>(dst);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t u = vreinterpretq_u32_f32(vld1q_f32(src + i));
        const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
        const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fff))), 16);
        const uint32x4_t quiet_nan = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(64));
        const uint32x4_t is_nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
        vst1_u16(h + i, vmovn_u32(vbslq_u32(is_nan, quiet_nan, rounded)));
    }
    for (; i < n; ++i) h[i] = f32_to_bf16(src[i]);
}

// ---- activation quantizers: the reference's bytes ----

// 32 floats -> 32 int8 by round-half-away (std::round, as the reference), truncating narrow.
// NaN and values out of int32's range give INT32_MIN (low byte 0), as the reference defines it
// after x86's conversion; vcvtaq alone would saturate them.
inline int8x16_t round_away_16(const float* x, float id) {
    int32x4_t q[4];
    for (int k = 0; k < 4; ++k) {
        const float32x4_t t = vmulq_n_f32(vld1q_f32(x + 4 * k), id);
        const uint32x4_t in_range = vcaltq_f32(t, vdupq_n_f32(2147483648.0f));
        q[k] = vbslq_s32(in_range, vcvtaq_s32_f32(t), vdupq_n_s32(INT32_MIN));
    }
    const int16x8_t lo = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
    const int16x8_t hi = vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]));
    return vcombine_s8(vmovn_s16(lo), vmovn_s16(hi));
}

// max |x| over 32 values; maxnm skips NaNs as the reference's std::max(amax, |x|) does, and an
// all-NaN block counts as zero there too.
inline float absmax32(const float* x) {
    float32x4_t m = vabsq_f32(vld1q_f32(x));
    for (int k = 1; k < 8; ++k) m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(x + 4 * k)));
    const float amax = vmaxnmvq_f32(m);
    return std::isnan(amax) ? 0.0f : amax;
}

void q8_0_from_float(const float* src, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ8_0*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        const float d = absmax32(x) / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        vst1q_s8(y[i].qs, round_away_16(x, id));
        vst1q_s8(y[i].qs + 16, round_away_16(x + 16, id));
    }
}

void q8_1_from_float(const float* src, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ8_1*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        const float d = absmax32(x) / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        const int8x16_t q0 = round_away_16(x, id);
        const int8x16_t q1 = round_away_16(x + 16, id);
        vst1q_s8(y[i].qs, q0);
        vst1q_s8(y[i].qs + 16, q1);
        const int sum = vaddlvq_s8(q0) + vaddlvq_s8(q1);
        y[i].s = f32_to_f16(float(sum) * d);
    }
}

// The value of largest magnitude, the first one on ties (the reference scans with a strict >),
// NaNs skipped; 0 when there is none.
float signed_absmax256(const float* x) {
    float32x4_t hi = vld1q_f32(x), lo = hi;
    for (int k = 1; k < kQK_K / 4; ++k) {
        const float32x4_t v = vld1q_f32(x + 4 * k);
        hi = vmaxnmq_f32(hi, v);
        lo = vminnmq_f32(lo, v);
    }
    const float max = vmaxnmvq_f32(hi), min = vminnmvq_f32(lo);
    if (std::isnan(max)) return 0.0f;  // all NaN
    if (max > -min) return max;
    if (-min > max) return min;
    for (int j = 0; j < kQK_K; ++j) {  // +a and -a both present: the first wins
        if (std::fabs(x[j]) == max) return x[j];
    }
    return 0.0f;
}

// The reference's nearest_int (add 1.5 * 2^23, read the low mantissa bits) on four lanes. For
// |v| < 2^22 that is round-half-even, vcvtnq; the bit trick itself is kept for the lanes where
// -127/max overflowed (inf/NaN), whose garbage it defines. Computing it only there also keeps
// the result independent of whether the compiler fuses the multiply into the add.
inline int32x4_t nearest_int4(float32x4_t v) {
    const uint32x4_t bits = vreinterpretq_u32_f32(vaddq_f32(v, vdupq_n_f32(12582912.f)));
    const int32x4_t trick = vsubq_s32(vreinterpretq_s32_u32(vandq_u32(bits, vdupq_n_u32(0x007fffff))), vdupq_n_s32(0x00400000));
    const uint32x4_t ordinary = vcaltq_f32(v, vdupq_n_f32(4194304.f));
    return vbslq_s32(ordinary, vcvtnq_s32_f32(v), trick);
}

// 16 floats -> 16 int8: min(127, nearest_int(x * iscale)), narrowed by truncation as int8_t().
inline int8x16_t round_even_16(const float* x, float iscale) {
    int32x4_t q[4];
    for (int k = 0; k < 4; ++k) {
        q[k] = vminq_s32(nearest_int4(vmulq_n_f32(vld1q_f32(x + 4 * k), iscale)), vdupq_n_s32(127));
    }
    const int16x8_t lo = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
    const int16x8_t hi = vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]));
    return vcombine_s8(vmovn_s16(lo), vmovn_s16(hi));
}

void q8_k_from_float(const float* src, void* dst, int64_t n) {
    auto* blocks = static_cast<BlockQ8_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ8_K& y = blocks[i];
        const float max = signed_absmax256(x);
        if (max == 0) {
            std::memset(&y, 0, sizeof y);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < kQK_K / 16; ++j) {
            const int8x16_t q = round_even_16(x + 16 * j, iscale);
            vst1q_s8(y.qs + 16 * j, q);
            y.bsums[j] = int16_t(vaddlvq_s8(q));
        }
        y.d = 1 / iscale;
    }
}

}  // namespace

void register_neon_kernels(TraitsTable& t) {
    auto& f16 = t[size_t(TensorType::F16)];
    f16.vec_dot = f16_vec_dot;
    f16.to_float = f16_to_float;
    f16.from_float = f16_from_float;
    auto& bf16 = t[size_t(TensorType::BF16)];
    bf16.vec_dot = bf16_vec_dot;
    bf16.to_float = bf16_to_float;
    bf16.from_float = bf16_from_float;
    t[size_t(TensorType::Q8_0)].from_float = q8_0_from_float;
    t[size_t(TensorType::Q8_1)].from_float = q8_1_from_float;
    t[size_t(TensorType::Q8_K)].from_float = q8_k_from_float;
    register_neon_dots(t);
}

}  // namespace qllm
