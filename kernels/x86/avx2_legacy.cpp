// AVX2 kernels of the 32-value block formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and IQ4_NL: dot products
// with Q8_0/Q8_1 activations and dequantization.
//
// The dot products have the structure of ggml's AVX2 kernels, so they round alike: per block,
// 8 int32 lanes each summing 4 neighbouring products, converted to float and accumulated with
// one FMA by the block's scale; a pairwise horizontal sum at the end. Q5_1 is then bit-exact with
// ref::q5_1_vec_dot, the others within float noise of their (sequential) references.
#pragma GCC optimize("fp-contract=off")  // only explicit FMAs: to_float must round like the reference

#include <immintrin.h>

#include <cstring>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/x86/avx2_helpers.h"

namespace qllm {
namespace {

// 16 bytes of nibbles to 32 bytes in value order: the low nibbles (values 0-15), then the high.
inline __m256i unpack_nibbles(const uint8_t* qs) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Bit j of the little-endian 32-bit word at p to byte j: 0xFF where set, 0 where clear.
inline __m256i expand_bits(const uint8_t* p) {
    uint32_t word;
    std::memcpy(&word, p, sizeof word);
    const __m256i byte_of_bit = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(int(word)), byte_of_bit);
    const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
    return _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
}

// Unsigned bytes (<= 128) times signed bytes (> -128), 4 neighbouring products summed per int32
// lane; maddubs's pairwise int16 sums cannot saturate (2 * 128 * 127 < 2^15).
inline __m256i dot_u8_i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// Signed weights times signed activations, 4 products per int32 lane. A weight of -128 works
// (|x| = 128 unsigned); an activation must not be -128, which the Q8 quantizers never produce.
inline __m256i dot_i8_i8(__m256i x, __m256i y) {
    return dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// acc += d * float(lanes), one rounding per lane.
inline __m256 fma_lanes(float d, __m256i lanes, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
}

// ---- Q4_0: d * (q - 8) ----

float q4_0_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        const __m256i qx = _mm256_sub_epi8(unpack_nibbles(x[ib].qs), _mm256_set1_epi8(8));
        const float d = half_to_float(x[ib].d) * half_to_float(y[ib].d);
        acc = fma_lanes(d, dot_i8_i8(qx, load32(y[ib].qs)), acc);
    }
    return hsum8(acc);
}

// ---- Q4_1: d * q + m (the m part through the activation sums s) ----

float q4_1_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_1*>(vx);
    const auto* y = static_cast<const BlockQ8_1*>(vy);
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0;
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        offsets += half_to_float(x[ib].m) * half_to_float(y[ib].s);
        const float d = half_to_float(x[ib].d) * half_to_float(y[ib].d);
        acc = fma_lanes(d, dot_u8_i8(unpack_nibbles(x[ib].qs), load32(y[ib].qs)), acc);
    }
    return hsum8(acc) + offsets;
}

// ---- Q5_0: d * (q - 16), 5th bit in qh ----

// The 32 signed levels q - 16: where the 5th bit is clear, q - 16 = q | 0xF0 as int8.
inline __m256i q5_0_levels(const BlockQ5_0& b) {
    const __m256i clear = _mm256_andnot_si256(expand_bits(b.qh), _mm256_set1_epi8(int8_t(0xF0)));
    return _mm256_or_si256(unpack_nibbles(b.qs), clear);
}

float q5_0_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        const float d = half_to_float(x[ib].d) * half_to_float(y[ib].d);
        acc = fma_lanes(d, dot_i8_i8(q5_0_levels(x[ib]), load32(y[ib].qs)), acc);
    }
    return hsum8(acc);
}

// ---- Q5_1: d * q + m ----

inline __m256i q5_1_levels(const BlockQ5_1& b) {
    const __m256i high = _mm256_and_si256(expand_bits(b.qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(unpack_nibbles(b.qs), high);
}

// Bit-exact with ref::q5_1_vec_dot: lanes fma'd by d_x * d_y, offsets m * s summed apart.
float q5_1_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_1*>(vx);
    const auto* y = static_cast<const BlockQ8_1*>(vy);
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0;
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        offsets += half_to_float(x[ib].m) * half_to_float(y[ib].s);
        const float d = half_to_float(x[ib].d) * half_to_float(y[ib].d);
        acc = fma_lanes(d, dot_u8_i8(q5_1_levels(x[ib]), load32(y[ib].qs)), acc);
    }
    return hsum8(acc) + offsets;
}

// ---- Q8_0: d * q ----

float q8_0_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
        const float d = half_to_float(x[ib].d) * half_to_float(y[ib].d);
        acc = fma_lanes(d, dot_i8_i8(load32(x[ib].qs), load32(y[ib].qs)), acc);
    }
    return hsum8(acc);
}

// ---- IQ4_NL: d * kIQ4NLValues[q] ----

inline __m256i iq4_nl_levels(const uint8_t* qs) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)));
    return _mm256_shuffle_epi8(table, unpack_nibbles(qs));
}

// ggml's arrangement: pairs of blocks into two accumulators, an odd last block added in scalar.
float iq4_nl_vec_dot(int64_t n, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockIQ4_NL*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    const int64_t nb = n / kQK;
    __m256 acc0 = _mm256_setzero_ps();
    __m256 acc1 = _mm256_setzero_ps();
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2) {
        const __m256i p0 = dot_i8_i8(iq4_nl_levels(x[ib].qs), load32(y[ib].qs));
        const __m256i p1 = dot_i8_i8(iq4_nl_levels(x[ib + 1].qs), load32(y[ib + 1].qs));
        acc0 = fma_lanes(half_to_float(y[ib].d) * half_to_float(x[ib].d), p0, acc0);
        acc1 = fma_lanes(half_to_float(y[ib + 1].d) * half_to_float(x[ib + 1].d), p1, acc1);
    }
    float sum = hsum8(_mm256_add_ps(acc0, acc1));
    for (; ib < nb; ++ib) {
        const int sumi = hsum8_i32(dot_i8_i8(iq4_nl_levels(x[ib].qs), load32(y[ib].qs)));
        sum += half_to_float(y[ib].d) * half_to_float(x[ib].d) * float(sumi);
    }
    return sum;
}

// ---- dequantization (bit-exact with the references: same products, same roundings) ----

// 32 int8 levels (value order) times d, plus m when given.
inline void store_levels(__m256i levels, float d, float* out) {
    const __m256 vd = _mm256_set1_ps(d);
    const __m128i halves[2] = {_mm256_castsi256_si128(levels), _mm256_extracti128_si256(levels, 1)};
    for (int h = 0; h < 2; ++h) {
        const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(halves[h]));
        const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(halves[h], halves[h])));
        _mm256_storeu_ps(out + 16 * h, _mm256_mul_ps(lo, vd));
        _mm256_storeu_ps(out + 16 * h + 8, _mm256_mul_ps(hi, vd));
    }
}

inline void store_levels_offset(__m256i levels, float d, float m, float* out) {
    const __m256 vd = _mm256_set1_ps(d);
    const __m256 vm = _mm256_set1_ps(m);
    const __m128i halves[2] = {_mm256_castsi256_si128(levels), _mm256_extracti128_si256(levels, 1)};
    for (int h = 0; h < 2; ++h) {
        const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(halves[h]));
        const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(halves[h], halves[h])));
        _mm256_storeu_ps(out + 16 * h, _mm256_add_ps(_mm256_mul_ps(lo, vd), vm));
        _mm256_storeu_ps(out + 16 * h + 8, _mm256_add_ps(_mm256_mul_ps(hi, vd), vm));
    }
}

void q4_0_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ4_0*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const __m256i levels = _mm256_sub_epi8(unpack_nibbles(x[i].qs), _mm256_set1_epi8(8));
        store_levels(levels, half_to_float(x[i].d), dst + i * kQK);
    }
}

void q4_1_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ4_1*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) {
        store_levels_offset(unpack_nibbles(x[i].qs), half_to_float(x[i].d), half_to_float(x[i].m), dst + i * kQK);
    }
}

void q5_0_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ5_0*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) store_levels(q5_0_levels(x[i]), half_to_float(x[i].d), dst + i * kQK);
}

void q5_1_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ5_1*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) {
        store_levels_offset(q5_1_levels(x[i]), half_to_float(x[i].d), half_to_float(x[i].m), dst + i * kQK);
    }
}

void iq4_nl_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockIQ4_NL*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) store_levels(iq4_nl_levels(x[i].qs), half_to_float(x[i].d), dst + i * kQK);
}

}  // namespace

namespace avx2 {

void register_legacy_kernels(TraitsTable& t) {
    auto row = [&](TensorType type) -> TypeTraits& { return t[size_t(type)]; };
    row(TensorType::Q4_0).vec_dot = q4_0_vec_dot;
    row(TensorType::Q4_0).to_float = q4_0_to_float;
    row(TensorType::Q4_1).vec_dot = q4_1_vec_dot;
    row(TensorType::Q4_1).to_float = q4_1_to_float;
    row(TensorType::Q5_0).vec_dot = q5_0_vec_dot;
    row(TensorType::Q5_0).to_float = q5_0_to_float;
    row(TensorType::Q5_1).vec_dot = q5_1_vec_dot;
    row(TensorType::Q5_1).to_float = q5_1_to_float;
    row(TensorType::Q8_0).vec_dot = q8_0_vec_dot;
    row(TensorType::IQ4_NL).vec_dot = iq4_nl_vec_dot;
    row(TensorType::IQ4_NL).to_float = iq4_nl_to_float;
}

}  // namespace avx2
}  // namespace qllm
