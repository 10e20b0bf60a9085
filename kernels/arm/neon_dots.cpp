// NEON dot products of the quantized formats with their activation partners: the 32-value
// block formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL (x Q8_0 / Q8_1) and the K-quants Q2_K..Q6_K
// (x Q8_K). Integer parts are exact (ARMv8.2 sdot); each block then contributes its integer sum
// times its float scale as in the reference, so only the order of float additions differs
// (within 1e-5 of sum |w*a|) and rows with inf/NaN scales behave alike.
#include <arm_neon.h>

#include <cstring>

#include "kernels/blocks.h"
#include "kernels/cpu.h"

namespace qllm {
namespace {

// f16 -> f32 in one instruction; exact, as the reference's software conversion.
inline float fp16(f16_t h) {
    __fp16 v;
    std::memcpy(&v, &h, sizeof v);
    return float(v);
}

// acc + four dot products of 4 signed bytes (lane i: bytes 4i..4i+3). sdot where the target has
// it (every -march this project passes, and Apple Silicon); otherwise widening multiplies with
// the same lane sums, so that the file compiles for any aarch64 target.
inline int32x4_t sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t hi = vmull_high_s8(a, b);
    return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
#endif
}

inline int8x16_t as_s8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }

// 16 weights . 16 activations, in four int32 lanes.
inline int32x4_t dot16(int8x16_t w, const int8_t* q8) { return sdot(vdupq_n_s32(0), w, vld1q_s8(q8)); }

// 32 weights (two vectors of 16) . 32 activations, in four int32 lanes.
inline int32x4_t dot32(int8x16_t w0, int8x16_t w1, const int8_t* q8) {
    return sdot(sdot(vdupq_n_s32(0), w0, vld1q_s8(q8)), w1, vld1q_s8(q8 + 16));
}

// ==== 32-value block formats ====

inline int8x16_t low_nibbles(uint8x16_t q) { return as_s8(vandq_u8(q, vdupq_n_u8(0x0F))); }
inline int8x16_t high_nibbles(uint8x16_t q) { return as_s8(vshrq_n_u8(q, 4)); }

// Sums float(sumi_i) * scale(i) over nb blocks, where dot(i) gives block i's integer products
// in four lanes. Four blocks per step: their lane sums fold (exactly) into one vector of the
// four block sums, scaled and accumulated together.
template <typename Dot, typename Scale>
float sum_blocks(int64_t nb, Dot dot, Scale scale) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const int32x4_t sums = vpaddq_s32(vpaddq_s32(dot(i), dot(i + 1)), vpaddq_s32(dot(i + 2), dot(i + 3)));
        const float scales[4] = {scale(i), scale(i + 1), scale(i + 2), scale(i + 3)};
        acc = vfmaq_f32(acc, vcvtq_f32_s32(sums), vld1q_f32(scales));
    }
    float sum = vaddvq_f32(acc);
    for (; i < nb; ++i) sum += float(vaddvq_s32(dot(i))) * scale(i);
    return sum;
}

// The fifth bit of each Q5 value as 0x10: bit j of the little-endian qh goes to byte j of
// `lo` (values 0-15) or byte j-16 of `hi` (values 16-31).
inline void fifth_bits(const uint8_t* qh, uint8x16_t& lo, uint8x16_t& hi) {
    static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    uint32_t bits;
    std::memcpy(&bits, qh, sizeof bits);
    const uint8x8_t b = vcreate_u8(bits);
    const uint8x16_t mask = vld1q_u8(kBit);
    const uint8x16_t x10 = vdupq_n_u8(0x10);
    lo = vandq_u8(vtstq_u8(vcombine_u8(vdup_lane_u8(b, 0), vdup_lane_u8(b, 1)), mask), x10);
    hi = vandq_u8(vtstq_u8(vcombine_u8(vdup_lane_u8(b, 2), vdup_lane_u8(b, 3)), mask), x10);
}

float q4_0_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    const int8x16_t eight = vdupq_n_s8(8);
    auto dot = [&](int64_t i) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        return dot32(vsubq_s8(low_nibbles(q), eight), vsubq_s8(high_nibbles(q), eight), y[i].qs);
    };
    return sum_blocks(n / kQK, dot, [&](int64_t i) { return fp16(x[i].d) * fp16(y[i].d); });
}

// Q4_1 / Q5_1: levels are unsigned; the offset m of every value is applied once per block as
// m * s, s being the activation block's d * sum(q) (summed apart, as in the reference).
float q4_1_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_1*>(vx);
    const auto* y = static_cast<const BlockQ8_1*>(vy);
    const int64_t nb = n / kQK;
    auto dot = [&](int64_t i) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        return dot32(low_nibbles(q), high_nibbles(q), y[i].qs);
    };
    float offsets = 0.0f;
    for (int64_t i = 0; i < nb; ++i) offsets += fp16(x[i].m) * fp16(y[i].s);
    return sum_blocks(nb, dot, [&](int64_t i) { return fp16(x[i].d) * fp16(y[i].d); }) + offsets;
}

float q5_0_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    const int8x16_t sixteen = vdupq_n_s8(16);
    auto dot = [&](int64_t i) {
        uint8x16_t h_lo, h_hi;
        fifth_bits(x[i].qh, h_lo, h_hi);
        const uint8x16_t q = vld1q_u8(x[i].qs);
        const int8x16_t w_lo = vsubq_s8(vorrq_s8(low_nibbles(q), vreinterpretq_s8_u8(h_lo)), sixteen);
        const int8x16_t w_hi = vsubq_s8(vorrq_s8(high_nibbles(q), vreinterpretq_s8_u8(h_hi)), sixteen);
        return dot32(w_lo, w_hi, y[i].qs);
    };
    return sum_blocks(n / kQK, dot, [&](int64_t i) { return fp16(x[i].d) * fp16(y[i].d); });
}

float q5_1_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_1*>(vx);
    const auto* y = static_cast<const BlockQ8_1*>(vy);
    const int64_t nb = n / kQK;
    auto dot = [&](int64_t i) {
        uint8x16_t h_lo, h_hi;
        fifth_bits(x[i].qh, h_lo, h_hi);
        const uint8x16_t q = vld1q_u8(x[i].qs);
        return dot32(vorrq_s8(low_nibbles(q), vreinterpretq_s8_u8(h_lo)),
                     vorrq_s8(high_nibbles(q), vreinterpretq_s8_u8(h_hi)), y[i].qs);
    };
    float offsets = 0.0f;
    for (int64_t i = 0; i < nb; ++i) offsets += fp16(x[i].m) * fp16(y[i].s);
    return sum_blocks(nb, dot, [&](int64_t i) { return fp16(x[i].d) * fp16(y[i].d); }) + offsets;
}

float q8_0_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    auto dot = [&](int64_t i) { return dot32(vld1q_s8(x[i].qs), vld1q_s8(x[i].qs + 16), y[i].qs); };
    return sum_blocks(n / kQK, dot, [&](int64_t i) { return fp16(x[i].d) * fp16(y[i].d); });
}

// IQ4_NL: each nibble indexes the 16-entry grid, one table lookup per 16 values.
float iq4_nl_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockIQ4_NL*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    const int8x16_t grid = vld1q_s8(kIQ4NLValues);
    auto dot = [&](int64_t i) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        const int8x16_t w_lo = vqtbl1q_s8(grid, vandq_u8(q, vdupq_n_u8(0x0F)));
        const int8x16_t w_hi = vqtbl1q_s8(grid, vshrq_n_u8(q, 4));
        return dot32(w_lo, w_hi, y[i].qs);
    };
    return sum_blocks(n / kQK, dot, [&](int64_t i) { return fp16(x[i].d) * fp16(y[i].d); });
}

// ==== K-quants ====

// Right shift by a count known only after unrolling (vshrq_n_u8 wants a literal).
inline uint8x16_t shift_right(uint8x16_t v, int bits) { return vshlq_u8(v, vdupq_n_s8(int8_t(-bits))); }

// acc += scales * [sum d0, sum d1, sum d2, sum d3]: two levels of pairwise adds fold four
// sub-blocks' lanes into one vector, so one multiply scales all four (no per-scale moves).
inline int32x4_t scale4(int32x4_t acc, int32x4_t d0, int32x4_t d1, int32x4_t d2, int32x4_t d3, int32x4_t scales) {
    return vmlaq_s32(acc, vpaddq_s32(vpaddq_s32(d0, d1), vpaddq_s32(d2, d3)), scales);
}

// 16 signed byte scales as four int32x4 (scales 4k..4k+3 in out[k]).
inline void widen16(int8x16_t s, int32x4_t out[4]) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(s)), hi = vmovl_high_s8(s);
    out[0] = vmovl_s16(vget_low_s16(lo));
    out[1] = vmovl_high_s16(lo);
    out[2] = vmovl_s16(vget_low_s16(hi));
    out[3] = vmovl_high_s16(hi);
}

// sum_j bsums[j] * m[j] over the 16 sub-blocks of 16 (m as 16 signed bytes).
inline int bsums_dot16(const int16_t* bsums, int8x16_t m) {
    const int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
    const int16x8_t m0 = vmovl_s8(vget_low_s8(m)), m1 = vmovl_high_s8(m);
    int32x4_t acc = vmull_s16(vget_low_s16(b0), vget_low_s16(m0));
    acc = vmlal_high_s16(acc, b0, m0);
    acc = vmlal_s16(acc, vget_low_s16(b1), vget_low_s16(m1));
    acc = vmlal_high_s16(acc, b1, m1);
    return vaddvq_s32(acc);
}

// sum_j (bsums[2j] + bsums[2j+1]) * m[j] over the 8 sub-blocks of 32.
inline int bsums_dot8(const int16_t* bsums, const uint8_t* m) {
    const int16x8_t b = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));
    const int16x8_t mm = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
    return vaddvq_s32(vmlal_high_s16(vmull_s16(vget_low_s16(b), vget_low_s16(mm)), b, mm));
}

// ---- Q2_K ----

float q2_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ2_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    const uint8x16_t m3 = vdupq_n_u8(3);
    float sumf = 0;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ2_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const uint8x16_t sc = vld1q_u8(x.scales);
        const int summs = bsums_dot16(y.bsums, as_s8(vshrq_n_u8(sc, 4)));
        int32x4_t scale[4];
        widen16(as_s8(vandq_u8(sc, vdupq_n_u8(0x0F))), scale);
        int32x4_t isum = vdupq_n_s32(0);
        const int8_t* q8 = y.qs;
        for (int half = 0; half < 2; ++half) {
            const uint8x16_t q0 = vld1q_u8(x.qs + 32 * half), q1 = vld1q_u8(x.qs + 32 * half + 16);
            // Bit pairs 0-1 and 2-3, then 4-5 and 6-7: 64 values, four sub-blocks of 16.
            for (int shift = 0; shift < 8; shift += 4) {
                auto w = [&](uint8x16_t q, int bits) { return as_s8(vandq_u8(shift_right(q, bits), m3)); };
                isum = scale4(isum, dot16(w(q0, shift), q8), dot16(w(q1, shift), q8 + 16),
                              dot16(w(q0, shift + 2), q8 + 32), dot16(w(q1, shift + 2), q8 + 48),
                              scale[2 * half + shift / 4]);
                q8 += 64;
            }
        }
        const float dall = y.d * fp16(x.d);
        const float dmin = y.d * fp16(x.dmin);
        sumf += dall * float(vaddvq_s32(isum)) - dmin * float(summs);
    }
    return sumf;
}

// ---- Q3_K ----

// The 16 six-bit scales of a Q3_K block, bias removed (-32..31). Four bytes at a time: low
// nibbles from scales[0..7], top bit pairs from scales[8..11].
inline int8x16_t q3_k_scales(const uint8_t* packed) {
    uint32_t a[3];
    std::memcpy(a, packed, sizeof a);
    const uint32_t low4 = 0x0f0f0f0f, low2 = 0x03030303;
    uint32_t s[4];
    s[0] = (a[0] & low4) | (((a[2] >> 0) & low2) << 4);
    s[1] = (a[1] & low4) | (((a[2] >> 2) & low2) << 4);
    s[2] = ((a[0] >> 4) & low4) | (((a[2] >> 4) & low2) << 4);
    s[3] = ((a[1] >> 4) & low4) | (((a[2] >> 6) & low2) << 4);
    int8x16_t v;
    std::memcpy(&v, s, sizeof v);
    return vsubq_s8(v, vdupq_n_s8(32));
}

float q3_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ3_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    float sumf = 0;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ3_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        int32x4_t scale[4];
        widen16(q3_k_scales(x.scales), scale);
        const uint8x16_t h0 = vld1q_u8(x.hmask), h1 = vld1q_u8(x.hmask + 16);
        int32x4_t isum = vdupq_n_s32(0);
        const int8_t* q8 = y.qs;
        for (int half = 0; half < 2; ++half) {
            const uint8x16_t q0 = vld1q_u8(x.qs + 32 * half), q1 = vld1q_u8(x.qs + 32 * half + 16);
            for (int shift = 0; shift < 8; shift += 4) {
                // level = low 2 bits - 4 unless the value's hmask bit (its group of 32) is set.
                auto w = [&](uint8x16_t q, uint8x16_t h, int bits) {
                    const uint8x16_t group_bit = vdupq_n_u8(uint8_t(1 << (4 * half + bits / 2)));
                    return vsubq_s8(as_s8(vandq_u8(shift_right(q, bits), m3)), as_s8(vbicq_u8(four, vtstq_u8(h, group_bit))));
                };
                isum = scale4(isum, dot16(w(q0, h0, shift), q8), dot16(w(q1, h1, shift), q8 + 16),
                              dot16(w(q0, h0, shift + 2), q8 + 32), dot16(w(q1, h1, shift + 2), q8 + 48),
                              scale[2 * half + shift / 4]);
                q8 += 64;
            }
        }
        sumf += fp16(x.d) * y.d * float(vaddvq_s32(isum));
    }
    return sumf;
}

// ---- Q4_K / Q5_K ----

// The eight 6-bit scales and minimums of a Q4_K/Q5_K block (layout in BlockQ4_K), as bytes
// sc[0..7] and m[0..7], unpacked four at a time.
inline void k4_scales_mins(const uint8_t* packed, uint8_t sc[8], uint8_t m[8]) {
    uint32_t a[3];
    std::memcpy(a, packed, sizeof a);
    const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
    const uint32_t s[2] = {a[0] & low6, (a[2] & low4) | (((a[0] >> 6) & top2) << 4)};
    const uint32_t mn[2] = {a[1] & low6, ((a[2] >> 4) & low4) | (((a[1] >> 6) & top2) << 4)};
    std::memcpy(sc, s, sizeof s);
    std::memcpy(m, mn, sizeof mn);
}

// d * sum_j sc[j] * (32 levels of sub-block j . q8) - dmin * sum_j m[j] * (sum of q8 in j);
// `levels(g, w)` gives the 64 unsigned levels of group g (sub-blocks 2g, 2g+1), 16 per vector.
template <typename Levels>
float qkx_block(const uint8_t* packed_scales, f16_t d16, f16_t dmin16, const BlockQ8_K& y, Levels levels) {
    uint8_t sc[8], m[8];
    k4_scales_mins(packed_scales, sc, m);
    const int summs = bsums_dot8(y.bsums, m);
    const int16x8_t sc16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sc)));
    const int32x4_t scale[2] = {vmovl_s16(vget_low_s16(sc16)), vmovl_high_s16(sc16)};
    int32x4_t isum = vdupq_n_s32(0);
    for (int g = 0; g < 4; g += 2) {  // four sub-blocks of 32 per step
        int8x16_t a[4], b[4];
        levels(g, a);
        levels(g + 1, b);
        const int8_t* q8 = y.qs + 64 * g;
        isum = scale4(isum, dot32(a[0], a[1], q8), dot32(a[2], a[3], q8 + 32), dot32(b[0], b[1], q8 + 64),
                      dot32(b[2], b[3], q8 + 96), scale[g / 2]);
    }
    return fp16(d16) * y.d * float(vaddvq_s32(isum)) - fp16(dmin16) * y.d * float(summs);
}

float q4_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ4_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float sumf = 0;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ4_K& x = xs[i];
        auto levels = [&](int g, int8x16_t w[4]) {
            const uint8x16_t q0 = vld1q_u8(x.qs + 32 * g), q1 = vld1q_u8(x.qs + 32 * g + 16);
            w[0] = as_s8(vandq_u8(q0, m4));
            w[1] = as_s8(vandq_u8(q1, m4));
            w[2] = as_s8(vshrq_n_u8(q0, 4));
            w[3] = as_s8(vshrq_n_u8(q1, 4));
        };
        sumf += qkx_block(x.scales, x.d, x.dmin, ys[i], levels);
    }
    return sumf;
}

float q5_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ5_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    const uint8x16_t m4 = vdupq_n_u8(0x0F), x10 = vdupq_n_u8(0x10);
    float sumf = 0;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ5_K& x = xs[i];
        const uint8x16_t qh0 = vld1q_u8(x.qh), qh1 = vld1q_u8(x.qh + 16);
        // Group g's fifth bits: bit 2g (first 32 values) and 2g+1 (next 32), moved to 0x10.
        auto levels = [&](int g, int8x16_t w[4]) {
            const uint8x16_t q0 = vld1q_u8(x.qs + 32 * g), q1 = vld1q_u8(x.qs + 32 * g + 16);
            const uint8x16_t h0 = shift_right(qh0, 2 * g), h1 = shift_right(qh1, 2 * g);
            w[0] = as_s8(vorrq_u8(vandq_u8(q0, m4), vandq_u8(vshlq_n_u8(h0, 4), x10)));
            w[1] = as_s8(vorrq_u8(vandq_u8(q1, m4), vandq_u8(vshlq_n_u8(h1, 4), x10)));
            w[2] = as_s8(vorrq_u8(vshrq_n_u8(q0, 4), vandq_u8(vshlq_n_u8(h0, 3), x10)));
            w[3] = as_s8(vorrq_u8(vshrq_n_u8(q1, 4), vandq_u8(vshlq_n_u8(h1, 3), x10)));
        };
        sumf += qkx_block(x.scales, x.d, x.dmin, ys[i], levels);
    }
    return sumf;
}

// ---- Q6_K ----

// Levels are taken unsigned (0..63); the -32 offset of every value is applied through bsums:
// sum sc * (u - 32) * q8 = sum sc * u * q8 - 32 * sum sc * bsums.
float q6_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ6_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m30 = vdupq_n_u8(0x30);
    float sumf = 0;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ6_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const int8x16_t sc = vld1q_s8(x.scales);
        const int offset = 32 * bsums_dot16(y.bsums, sc);
        int32x4_t scale[4];
        widen16(sc, scale);
        int32x4_t isum = vdupq_n_s32(0);
        for (int half = 0; half < 2; ++half) {
            const uint8_t* ql = x.ql + 64 * half;
            const uint8_t* qh = x.qh + 32 * half;
            const int8_t* q8 = y.qs + 128 * half;
            const uint8x16_t l0 = vld1q_u8(ql), l1 = vld1q_u8(ql + 16), l2 = vld1q_u8(ql + 32), l3 = vld1q_u8(ql + 48);
            const uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16);
            // Values l, l+32, l+64, l+96 take qh bit pairs 0-1, 2-3, 4-5, 6-7 as bits 4-5.
            const uint8x16_t w[8] = {
                vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8(h0, 4), m30)),
                vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8(h1, 4), m30)),
                vorrq_u8(vandq_u8(l2, m4), vandq_u8(vshlq_n_u8(h0, 2), m30)),
                vorrq_u8(vandq_u8(l3, m4), vandq_u8(vshlq_n_u8(h1, 2), m30)),
                vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(h0, m30)),
                vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(h1, m30)),
                vorrq_u8(vshrq_n_u8(l2, 4), vandq_u8(vshrq_n_u8(h0, 2), m30)),
                vorrq_u8(vshrq_n_u8(l3, 4), vandq_u8(vshrq_n_u8(h1, 2), m30)),
            };
            for (int k = 0; k < 8; k += 4) {
                isum = scale4(isum, dot16(as_s8(w[k]), q8 + 16 * k), dot16(as_s8(w[k + 1]), q8 + 16 * k + 16),
                              dot16(as_s8(w[k + 2]), q8 + 16 * k + 32), dot16(as_s8(w[k + 3]), q8 + 16 * k + 48),
                              scale[2 * half + k / 4]);
            }
        }
        sumf += fp16(x.d) * y.d * float(vaddvq_s32(isum) - offset);
    }
    return sumf;
}

}  // namespace

void register_neon_dots(TraitsTable& t) {
    t[size_t(TensorType::Q4_0)].vec_dot = q4_0_vec_dot;
    t[size_t(TensorType::Q4_1)].vec_dot = q4_1_vec_dot;
    t[size_t(TensorType::Q5_0)].vec_dot = q5_0_vec_dot;
    t[size_t(TensorType::Q5_1)].vec_dot = q5_1_vec_dot;
    t[size_t(TensorType::Q8_0)].vec_dot = q8_0_vec_dot;
    t[size_t(TensorType::IQ4_NL)].vec_dot = iq4_nl_vec_dot;

    t[size_t(TensorType::Q2_K)].vec_dot = q2_k_vec_dot;
    t[size_t(TensorType::Q3_K)].vec_dot = q3_k_vec_dot;
    t[size_t(TensorType::Q4_K)].vec_dot = q4_k_vec_dot;
    t[size_t(TensorType::Q5_K)].vec_dot = q5_k_vec_dot;
    t[size_t(TensorType::Q6_K)].vec_dot = q6_k_vec_dot;
}

}  // namespace qllm
