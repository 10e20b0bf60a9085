// AVX2 kernels of the K-quants Q2_K, Q3_K, Q4_K, Q5_K and Q6_K: dot products with Q8_K
// activations and dequantization.
//
// The dot products have the structure of ggml's AVX2 kernels, so they round alike: per
// super-block, the integer products are summed into 8 int32 lanes (lane l gets bytes 4l..4l+3 of
// every 32-value chunk, each pair of products weighted by its sub-block scale), the lanes are
// converted to float and accumulated with one FMA by d; the minimums go through the activation
// block sums. The integer parts are exact (no int16 sum can saturate for these formats).
#pragma GCC optimize("fp-contract=off")  // only explicit FMAs: to_float must round like the reference

#include <immintrin.h>

#include <cstring>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/x86/avx2_helpers.h"
#include "kernels/x86/k_quant_scales.h"

namespace qllm {
namespace {

// Bytes of each 16-bit element shifted right by `bits`, masked to `mask`.
inline __m256i bits_at(__m256i v, int bits, char mask) {
    return _mm256_and_si256(_mm256_srli_epi16(v, bits), _mm256_set1_epi8(mask));
}

// From a vector holding 8 int16 scales in both 128-bit halves: scale k for the low half (values
// 0-15 of a chunk) and scale k+1 for the high half (values 16-31).
inline __m256i scale_pair(__m256i scales, int k) {
    const __m256i index = _mm256_set_m128i(_mm_set1_epi16(int16_t((2 * k + 3) << 8 | (2 * k + 2))),
                                           _mm_set1_epi16(int16_t((2 * k + 1) << 8 | (2 * k))));
    return _mm256_shuffle_epi8(scales, index);
}

// Scale k of the same vector in every int16 element.
inline __m256i scale_all(__m256i scales, int k) {
    return _mm256_shuffle_epi8(scales, _mm256_set1_epi16(int16_t((2 * k + 1) << 8 | (2 * k))));
}

// Unsigned levels times Q8 values, pairs of products weighted by int16 scales: 4 products per lane.
inline __m256i scaled_dot(__m256i levels, __m256i q8, __m256i scale16) {
    return _mm256_madd_epi16(scale16, _mm256_maddubs_epi16(levels, q8));
}

// acc += d * float(lanes), one rounding per lane.
inline __m256 fma_lanes(float d, __m256i lanes, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
}

// ---- Q2_K ----

float q2_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ2_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ2_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const float d = y.d * half_to_float(x.d);
        const float dmin = -y.d * half_to_float(x.dmin);
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
        const __m128i sc4 = _mm_and_si128(packed, _mm_set1_epi8(0xF));
        const __m128i mn4 = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0xF));
        // Minimums: 16 (min * bsum) products in pairs, into the same accumulator.
        const __m256i mins = _mm256_madd_epi16(_mm256_cvtepi8_epi16(mn4), load32(y.bsums));
        acc = fma_lanes(dmin, mins, acc);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc4);
        const __m256i scales[2] = {_mm256_permute4x64_epi64(sc16, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm256_permute4x64_epi64(sc16, _MM_SHUFFLE(3, 2, 3, 2))};
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 2; ++j) {
            const __m256i q2 = load32(x.qs + 32 * j);
            for (int k = 0; k < 4; ++k) {
                const __m256i q8 = load32(y.qs + 128 * j + 32 * k);
                sumi = _mm256_add_epi32(sumi, scaled_dot(bits_at(q2, 2 * k, 3), q8, scale_pair(scales[j], 2 * k)));
            }
        }
        acc = fma_lanes(d, sumi, acc);
    }
    return hsum8(acc);
}

// ---- Q3_K ----

float q3_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ3_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ3_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const float d = y.d * half_to_float(x.d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3_k_scales(x.scales));
        const __m256i scales[2] = {_mm256_permute4x64_epi64(sc16, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm256_permute4x64_epi64(sc16, _MM_SHUFFLE(3, 2, 3, 2))};
        // A clear hmask bit means level - 4: the low 2 bits and the 4s are multiplied apart.
        const __m256i hbits = _mm256_andnot_si256(load32(x.hmask), _mm256_set1_epi8(-1));
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 2; ++j) {
            const __m256i q3 = load32(x.qs + 32 * j);
            for (int k = 0; k < 4; ++k) {
                const __m256i q8 = load32(y.qs + 128 * j + 32 * k);
                const __m256i fours = _mm256_slli_epi16(bits_at(hbits, 4 * j + k, 1), 2);
                const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(bits_at(q3, 2 * k, 3), q8),
                                                     _mm256_maddubs_epi16(fours, q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale_pair(scales[j], 2 * k), p16));
            }
        }
        acc = fma_lanes(d, sumi, acc);
    }
    return hsum8(acc);
}

// ---- Q4_K / Q5_K ----

// sum over sub-blocks of min * (sum of its 32 activations): 4 int32 lanes of 2 sub-blocks each.
inline __m128i k4_min_products(__m256i scales_mins16, const int16_t* bsums) {
    const __m256i b = load32(bsums);
    const __m128i per32 = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    return _mm_madd_epi16(_mm256_extracti128_si256(scales_mins16, 1), per32);
}

float q4_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ4_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ4_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const float d = y.d * half_to_float(x.d);
        const float dmin = -y.d * half_to_float(x.dmin);
        const __m256i sm16 = _mm256_cvtepu8_epi16(k4_scales_mins(x.scales));
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(k4_min_products(sm16, y.bsums)), acc_m);
        const __m256i scales = _mm256_permute4x64_epi64(sm16, _MM_SHUFFLE(1, 0, 1, 0));
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m256i q4 = load32(x.qs + 32 * j);
            const __m256i lo = scaled_dot(bits_at(q4, 0, 0xF), load32(y.qs + 64 * j), scale_all(scales, 2 * j));
            const __m256i hi = scaled_dot(bits_at(q4, 4, 0xF), load32(y.qs + 64 * j + 32), scale_all(scales, 2 * j + 1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(lo, hi));
        }
        acc = fma_lanes(d, sumi, acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    return hsum8(acc) + _mm_cvtss_f32(acc_m);
}

float q5_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ5_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ5_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const float d = y.d * half_to_float(x.d);
        const float dmin = -y.d * half_to_float(x.dmin);
        const __m256i sm16 = _mm256_cvtepu8_epi16(k4_scales_mins(x.scales));
        __m128i m = k4_min_products(sm16, y.bsums);
        m = _mm_add_epi32(m, _mm_unpackhi_epi64(m, m));
        m = _mm_add_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
        mins += dmin * float(_mm_cvtsi128_si32(m));
        const __m256i scales = _mm256_permute4x64_epi64(sm16, _MM_SHUFFLE(1, 0, 1, 0));
        const __m256i qh = load32(x.qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m256i q5 = load32(x.qs + 32 * j);
            const __m256i lo = _mm256_or_si256(bits_at(q5, 0, 0xF), _mm256_slli_epi16(bits_at(qh, 2 * j, 1), 4));
            const __m256i hi = _mm256_or_si256(bits_at(q5, 4, 0xF), _mm256_slli_epi16(bits_at(qh, 2 * j + 1, 1), 4));
            const __m256i plo = scaled_dot(lo, load32(y.qs + 64 * j), scale_all(scales, 2 * j));
            const __m256i phi = scaled_dot(hi, load32(y.qs + 64 * j + 32), scale_all(scales, 2 * j + 1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(plo, phi));
        }
        acc = fma_lanes(d, sumi, acc);
    }
    return hsum8(acc) + mins;
}

// ---- Q6_K ----

// Sub-block scales k (values 0-15 of a chunk) and k+1 (16-31), sign-extended to int16.
inline __m256i q6_k_scale_pair(__m128i scales8, int k) {
    const __m128i index = _mm_set_epi64x(0x0101010101010101LL * (k + 1), 0x0101010101010101LL * k);
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales8, index));
}

float q6_k_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* xs = static_cast<const BlockQ6_K*>(vx);
    const auto* ys = static_cast<const BlockQ8_K*>(vy);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ6_K& x = xs[i];
        const BlockQ8_K& y = ys[i];
        const float d = y.d * half_to_float(x.d);
        const __m128i scales8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 2; ++j) {
            const __m256i ql0 = load32(x.ql + 64 * j);
            const __m256i ql1 = load32(x.ql + 64 * j + 32);
            const __m256i qh = load32(x.qh + 32 * j);
            // Chunk k holds values 32k..32k+31 of this half: low or high nibbles of ql0/ql1 plus
            // bit pair k of qh. Levels are unsigned here; the -32 is subtracted as 32 * q8.
            const __m256i levels[4] = {
                _mm256_or_si256(bits_at(ql0, 0, 0xF), _mm256_slli_epi16(bits_at(qh, 0, 3), 4)),
                _mm256_or_si256(bits_at(ql1, 0, 0xF), _mm256_slli_epi16(bits_at(qh, 2, 3), 4)),
                _mm256_or_si256(bits_at(ql0, 4, 0xF), _mm256_slli_epi16(bits_at(qh, 4, 3), 4)),
                _mm256_or_si256(bits_at(ql1, 4, 0xF), _mm256_slli_epi16(bits_at(qh, 6, 3), 4)),
            };
            for (int k = 0; k < 4; ++k) {
                const __m256i q8 = load32(y.qs + 128 * j + 32 * k);
                const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(levels[k], q8),
                                                     _mm256_maddubs_epi16(_mm256_set1_epi8(32), q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(q6_k_scale_pair(scales8, 8 * j + 2 * k), p16));
            }
        }
        acc = fma_lanes(d, sumi, acc);
    }
    return hsum8(acc);
}

// ---- dequantization (bit-exact with the references: same products, same roundings) ----

// 16 bytes (unsigned levels) to a * float(v) - b.
inline void store16_affine(__m128i v, float a, float b, float* out) {
    const __m256 va = _mm256_set1_ps(a);
    const __m256 vb = _mm256_set1_ps(b);
    const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
    const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(v, v)));
    _mm256_storeu_ps(out, _mm256_sub_ps(_mm256_mul_ps(va, lo), vb));
    _mm256_storeu_ps(out + 8, _mm256_sub_ps(_mm256_mul_ps(va, hi), vb));
}

// 16 signed bytes to a * float(v).
inline void store16_scaled(__m128i v, float a, float* out) {
    const __m256 va = _mm256_set1_ps(a);
    _mm256_storeu_ps(out, _mm256_mul_ps(va, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))));
    _mm256_storeu_ps(out + 8, _mm256_mul_ps(va, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(v, v)))));
}

inline __m128i lo128(__m256i v) { return _mm256_castsi256_si128(v); }
inline __m128i hi128(__m256i v) { return _mm256_extracti128_si256(v, 1); }

void q2_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const BlockQ2_K*>(src);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ2_K& x = blocks[i];
        const float d = half_to_float(x.d);
        const float min = half_to_float(x.dmin);
        float* y = dst + i * kQK_K;
        for (int h = 0; h < 2; ++h) {
            const __m256i q = load32(x.qs + 32 * h);
            for (int s = 0; s < 4; ++s) {
                const __m256i levels = bits_at(q, 2 * s, 3);
                const uint8_t sc0 = x.scales[8 * h + 2 * s], sc1 = x.scales[8 * h + 2 * s + 1];
                float* out = y + 128 * h + 32 * s;
                store16_affine(lo128(levels), d * float(sc0 & 0xF), min * float(sc0 >> 4), out);
                store16_affine(hi128(levels), d * float(sc1 & 0xF), min * float(sc1 >> 4), out + 16);
            }
        }
    }
}

void q3_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const BlockQ3_K*>(src);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ3_K& x = blocks[i];
        const float d = half_to_float(x.d);
        alignas(16) int8_t scales[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(scales), q3_k_scales(x.scales));
        const __m256i clear = _mm256_andnot_si256(load32(x.hmask), _mm256_set1_epi8(-1));
        float* y = dst + i * kQK_K;
        for (int h = 0; h < 2; ++h) {
            const __m256i q = load32(x.qs + 32 * h);
            for (int s = 0; s < 4; ++s) {
                const __m256i fours = _mm256_slli_epi16(bits_at(clear, 4 * h + s, 1), 2);
                const __m256i levels = _mm256_sub_epi8(bits_at(q, 2 * s, 3), fours);
                const int is = 8 * h + 2 * s;
                float* out = y + 128 * h + 32 * s;
                store16_scaled(lo128(levels), d * float(scales[is]), out);
                store16_scaled(hi128(levels), d * float(scales[is + 1]), out + 16);
            }
        }
    }
}

void q4_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const BlockQ4_K*>(src);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ4_K& x = blocks[i];
        const float d = half_to_float(x.d);
        const float min = half_to_float(x.dmin);
        alignas(16) uint8_t sm[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(sm), k4_scales_mins(x.scales));
        float* y = dst + i * kQK_K;
        for (int j = 0; j < 4; ++j) {
            const __m256i q = load32(x.qs + 32 * j);
            const __m256i lo = bits_at(q, 0, 0xF), hi = bits_at(q, 4, 0xF);
            const float d1 = d * float(sm[2 * j]), m1 = min * float(sm[8 + 2 * j]);
            const float d2 = d * float(sm[2 * j + 1]), m2 = min * float(sm[8 + 2 * j + 1]);
            float* out = y + 64 * j;
            store16_affine(lo128(lo), d1, m1, out);
            store16_affine(hi128(lo), d1, m1, out + 16);
            store16_affine(lo128(hi), d2, m2, out + 32);
            store16_affine(hi128(hi), d2, m2, out + 48);
        }
    }
}

void q5_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const BlockQ5_K*>(src);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ5_K& x = blocks[i];
        const float d = half_to_float(x.d);
        const float min = half_to_float(x.dmin);
        alignas(16) uint8_t sm[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(sm), k4_scales_mins(x.scales));
        const __m256i qh = load32(x.qh);
        float* y = dst + i * kQK_K;
        for (int j = 0; j < 4; ++j) {
            const __m256i q = load32(x.qs + 32 * j);
            const __m256i lo = _mm256_or_si256(bits_at(q, 0, 0xF), _mm256_slli_epi16(bits_at(qh, 2 * j, 1), 4));
            const __m256i hi = _mm256_or_si256(bits_at(q, 4, 0xF), _mm256_slli_epi16(bits_at(qh, 2 * j + 1, 1), 4));
            const float d1 = d * float(sm[2 * j]), m1 = min * float(sm[8 + 2 * j]);
            const float d2 = d * float(sm[2 * j + 1]), m2 = min * float(sm[8 + 2 * j + 1]);
            float* out = y + 64 * j;
            store16_affine(lo128(lo), d1, m1, out);
            store16_affine(hi128(lo), d1, m1, out + 16);
            store16_affine(lo128(hi), d2, m2, out + 32);
            store16_affine(hi128(hi), d2, m2, out + 48);
        }
    }
}

void q6_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = static_cast<const BlockQ6_K*>(src);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ6_K& x = blocks[i];
        const float d = half_to_float(x.d);
        float* y = dst + i * kQK_K;
        for (int j = 0; j < 2; ++j) {
            const __m256i ql0 = load32(x.ql + 64 * j);
            const __m256i ql1 = load32(x.ql + 64 * j + 32);
            const __m256i qh = load32(x.qh + 32 * j);
            const __m256i m32 = _mm256_set1_epi8(32);
            const __m256i levels[4] = {
                _mm256_sub_epi8(_mm256_or_si256(bits_at(ql0, 0, 0xF), _mm256_slli_epi16(bits_at(qh, 0, 3), 4)), m32),
                _mm256_sub_epi8(_mm256_or_si256(bits_at(ql1, 0, 0xF), _mm256_slli_epi16(bits_at(qh, 2, 3), 4)), m32),
                _mm256_sub_epi8(_mm256_or_si256(bits_at(ql0, 4, 0xF), _mm256_slli_epi16(bits_at(qh, 4, 3), 4)), m32),
                _mm256_sub_epi8(_mm256_or_si256(bits_at(ql1, 4, 0xF), _mm256_slli_epi16(bits_at(qh, 6, 3), 4)), m32),
            };
            for (int k = 0; k < 4; ++k) {
                const int is = 8 * j + 2 * k;
                float* out = y + 128 * j + 32 * k;
                store16_scaled(lo128(levels[k]), d * float(x.scales[is]), out);
                store16_scaled(hi128(levels[k]), d * float(x.scales[is + 1]), out + 16);
            }
        }
    }
}

}  // namespace

namespace avx2 {

void register_kquant_kernels(TraitsTable& t) {
    auto row = [&](TensorType type) -> TypeTraits& { return t[size_t(type)]; };
    row(TensorType::Q2_K).vec_dot = q2_k_vec_dot;
    row(TensorType::Q2_K).to_float = q2_k_to_float;
    row(TensorType::Q3_K).vec_dot = q3_k_vec_dot;
    row(TensorType::Q3_K).to_float = q3_k_to_float;
    row(TensorType::Q4_K).vec_dot = q4_k_vec_dot;
    row(TensorType::Q4_K).to_float = q4_k_to_float;
    row(TensorType::Q5_K).vec_dot = q5_k_vec_dot;
    row(TensorType::Q5_K).to_float = q5_k_to_float;
    row(TensorType::Q6_K).vec_dot = q6_k_vec_dot;
    row(TensorType::Q6_K).to_float = q6_k_to_float;
}

}  // namespace avx2
}  // namespace qllm
