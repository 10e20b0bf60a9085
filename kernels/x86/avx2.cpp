// AVX2 + FMA + F16C kernels: plain floats (F16, BF16), the activation quantizers Q8_0, Q8_1 and
// Q8_K, and the registration of every AVX2 kernel (the weight formats live in avx2_legacy.cpp and
// avx2_kquants.cpp). Compiled with -mavx2 -mfma -mf16c; only called when the CPU has them.
//
// No implicit a*b+c contraction in this file: the kernels that must round like the reference
// ask for an FMA explicitly where the reference has one, and only there.
#pragma GCC optimize("fp-contract=off")

#include <immintrin.h>

#include <cstring>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/x86/avx2_helpers.h"
#include "qllm/half.h"

namespace qllm {
namespace avx2 {
void register_legacy_kernels(TraitsTable& t);  // avx2_legacy.cpp
void register_kquant_kernels(TraitsTable& t);  // avx2_kquants.cpp
}  // namespace avx2

namespace {

inline float hmax8(__m256 v) {
    __m128 r = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

// Local f16/bf16 conversions (F16C is exact and rounds to nearest even, like qllm/half.h); the
// header's inline functions are avoided so no copy of them is compiled with this file's flags.
inline f16_t float_to_half(float f) { return f16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)); }
inline float bf16_to_float_scalar(bf16_t h) {
    const uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// Largest |x| over 8*k floats. NaNs are skipped (max_ps returns its second operand when either
// is NaN), as the reference's `amax < |x|` comparisons skip them.
inline float abs_max(const float* x, int n) {
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(abs_ps(_mm256_loadu_ps(x + j)), m);
    return hmax8(m);
}

// std::round (ties away from zero), exactly: truncate, then step one away from zero when the
// dropped fraction (exact) is at least one half.
inline __m256 round_away(__m256 t) {
    const __m256 truncated = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_sub_ps(t, truncated);
    const __m256 step = _mm256_or_ps(_mm256_and_ps(t, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
    const __m256 up = _mm256_cmp_ps(abs_ps(frac), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(truncated, _mm256_and_ps(up, step));
}

// The low byte of each int32, sign-extended: what the reference's int8_t(...) casts keep. It only
// matters for the 0x80000000 that inf/NaN convert to (the reference gets 0, saturation -128).
inline __m256i wrap_to_i8(__m256i v) { return _mm256_srai_epi32(_mm256_slli_epi32(v, 24), 24); }

// 32 int32 in [-128, 127] (4 vectors of 8, in order) to 32 bytes in order.
inline void store_i8x32(__m256i a, __m256i b, __m256i c, __m256i d, int8_t* out) {
    const __m256i ab = _mm256_packs_epi32(a, b);  // per 128-bit half: a0-3 b0-3 | a4-7 b4-7
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i bytes = _mm256_packs_epi16(ab, cd);  // a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7
    const __m256i order = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), order);
}

// One block of 32 values scaled by id and rounded like the Q8_0/Q8_1 reference; returns the sum
// of the stored values.
inline int quantize_q8_block(const float* x, float id, int8_t* qs) {
    const __m256 mul = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
        const __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), mul);
        q[k] = wrap_to_i8(_mm256_cvttps_epi32(round_away(t)));
    }
    store_i8x32(q[0], q[1], q[2], q[3], qs);
    return hsum8_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
}

void q8_0_from_float(const float* src, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ8_0*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        const float d = abs_max(x, kQK) / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = float_to_half(d);
        quantize_q8_block(x, id, y[i].qs);
    }
}

void q8_1_from_float(const float* src, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ8_1*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
        const float* x = src + i * kQK;
        const float d = abs_max(x, kQK) / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = float_to_half(d);
        const int sum = quantize_q8_block(x, id, y[i].qs);
        y[i].s = float_to_half(float(sum) * d);
    }
}

// Q8_K: scale -127/max where max is the first value of largest magnitude; rounding to nearest
// even (the reference's nearest_int, and cvtps's default mode), clamped at 127 only.
void q8_k_from_float(const float* src, void* dst, int64_t n) {
    auto* blocks = static_cast<BlockQ8_K*>(dst);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ8_K& y = blocks[i];
        const float amax = abs_max(x, kQK_K);
        if (amax == 0) {
            std::memset(&y, 0, sizeof y);
            continue;
        }
        float max = 0;
        for (int j = 0; j < kQK_K; j += 8) {
            const __m256 hit = _mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + j)), _mm256_set1_ps(amax), _CMP_EQ_OQ);
            if (const int mask = _mm256_movemask_ps(hit)) {
                max = x[j + __builtin_ctz(unsigned(mask))];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 mul = _mm256_set1_ps(iscale);
        const __m256i top = _mm256_set1_epi32(127);
        int32_t sums[kQK_K / 16];
        for (int j = 0; j < kQK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; ++k) {
                const __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), mul);
                q[k] = wrap_to_i8(_mm256_min_epi32(_mm256_cvtps_epi32(t), top));
            }
            store_i8x32(q[0], q[1], q[2], q[3], y.qs + j);
            sums[j / 16] = hsum8_i32(_mm256_add_epi32(q[0], q[1]));
            sums[j / 16 + 1] = hsum8_i32(_mm256_add_epi32(q[2], q[3]));
        }
        for (int g = 0; g < kQK_K / 16; ++g) y.bsums[g] = int16_t(sums[g]);
        y.d = 1 / iscale;
    }
}

// 32 int8 values times a scale, to floats.
inline void dequantize_i8x32(const int8_t* q, float d, float* out) {
    const __m256 vd = _mm256_set1_ps(d);
    for (int k = 0; k < 4; ++k) {
        const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 8 * k)));
        _mm256_storeu_ps(out + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(v), vd));
    }
}

void q8_0_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ8_0*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) dequantize_i8x32(x[i].qs, half_to_float(x[i].d), dst + i * kQK);
}

void q8_1_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ8_1*>(src);
    for (int64_t i = 0; i < n / kQK; ++i) dequantize_i8x32(x[i].qs, half_to_float(x[i].d), dst + i * kQK);
}

void q8_k_to_float(const void* src, float* dst, int64_t n) {
    const auto* x = static_cast<const BlockQ8_K*>(src);
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        for (int j = 0; j < kQK_K; j += 32) dequantize_i8x32(x[i].qs + j, x[i].d, dst + i * kQK_K + j);
    }
}

// ---- F32 ----

// Products and sums in double like the reference (a float product is exact in double), in 16
// lanes instead of one: the sum's last bits may differ, its float rounding practically never.
float f32_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const float*>(x);
    const auto* b = static_cast<const float*>(y);
    __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int k = 0; k < 4; ++k) {
            const __m256d va = _mm256_cvtps_pd(_mm_loadu_ps(a + i + 4 * k));
            const __m256d vb = _mm256_cvtps_pd(_mm_loadu_ps(b + i + 4 * k));
            acc[k] = _mm256_fmadd_pd(va, vb, acc[k]);
        }
    }
    const __m256d sum4 = _mm256_add_pd(_mm256_add_pd(acc[0], acc[1]), _mm256_add_pd(acc[2], acc[3]));
    const __m128d sum2 = _mm_add_pd(_mm256_castpd256_pd128(sum4), _mm256_extractf128_pd(sum4, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(sum2, _mm_unpackhi_pd(sum2, sum2)));
    for (; i < n; ++i) sum += double(a[i]) * double(b[i]);
    return float(sum);
}

// ---- F16 ----

inline __m256 load_f16x8(const f16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// The reference's order: 16 lanes (two vectors of 8) over blocks of 16 values, a pairwise tree,
// then the tail in double. f16 products are exact in float, so the FMA rounds like the
// reference's multiply-then-add.
float f16_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const f16_t*>(x);
    const auto* b = static_cast<const f16_t*>(y);
    __m256 lo = _mm256_setzero_ps();
    __m256 hi = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        lo = _mm256_fmadd_ps(load_f16x8(a + i), load_f16x8(b + i), lo);
        hi = _mm256_fmadd_ps(load_f16x8(a + i + 8), load_f16x8(b + i + 8), hi);
    }
    double sum = hsum8(_mm256_add_ps(lo, hi));
    for (; i < n; ++i) sum += double(half_to_float(a[i])) * double(half_to_float(b[i]));
    return float(sum);
}

void f16_to_float(const void* src, float* dst, int64_t n) {
    const auto* h = static_cast<const f16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16x8(h + i));
    for (; i < n; ++i) dst[i] = half_to_float(h[i]);
}

// F16C rounds to nearest even like f32_to_f16 (only NaN payloads could differ).
void f16_from_float(const float* src, void* dst, int64_t n) {
    auto* h = static_cast<f16_t*>(dst);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; ++i) h[i] = float_to_half(src[i]);
}

// ---- BF16 ----

// 16 bf16 values as 8 floats each: the odd-indexed ones (high halves) and the even ones.
inline __m256 bf16_odd(__m256i v) { return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(int(0xFFFF0000u)))); }
inline __m256 bf16_even(__m256i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)); }

// The reference's order: 16 lanes, lane j adding the products of values 2j+1 then 2j of every 32,
// then a pairwise tree. Multiply and add stay separate: a bf16 product is exact in float except
// on overflow/underflow, where only the reference's two roundings are right.
float bf16_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const bf16_t*>(x);
    const auto* b = static_cast<const bf16_t*>(y);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int h = 0; h < 2; ++h) {
            const __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i + 16 * h));
            const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i + 16 * h));
            acc[h] = _mm256_add_ps(acc[h], _mm256_mul_ps(bf16_odd(va), bf16_odd(vb)));
            acc[h] = _mm256_add_ps(acc[h], _mm256_mul_ps(bf16_even(va), bf16_even(vb)));
        }
    }
    double sum = hsum8(_mm256_add_ps(acc[0], acc[1]));
    for (; i < n; ++i) sum += double(bf16_to_float_scalar(a[i])) * double(bf16_to_float_scalar(b[i]));
    return float(sum);
}

void bf16_to_float(const void* src, float* dst, int64_t n) {
    const auto* h = static_cast<const bf16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; ++i) dst[i] = bf16_to_float_scalar(h[i]);
}

// f32_to_bf16 on 8 floats: round to nearest even in integers, NaNs quieted.
inline __m256i bf16_round(__m256 f) {
    const __m256i u = _mm256_castps_si256(f);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(rounded, quiet, nan);
}

void bf16_from_float(const float* src, void* dst, int64_t n) {
    auto* h = static_cast<bf16_t*>(dst);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i lo = bf16_round(_mm256_loadu_ps(src + i));
        const __m256i hi = bf16_round(_mm256_loadu_ps(src + i + 8));
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), _MM_SHUFFLE(3, 1, 2, 0));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + i), packed);
    }
    for (; i < n; i += 8) {  // the last few values through a zero-padded vector
        alignas(32) float in[8] = {};
        alignas(32) uint32_t out[8];
        std::memcpy(in, src + i, size_t(n - i < 8 ? n - i : 8) * sizeof(float));
        _mm256_store_si256(reinterpret_cast<__m256i*>(out), bf16_round(_mm256_load_ps(in)));
        for (int64_t k = i; k < n && k < i + 8; ++k) h[k] = bf16_t(out[k - i]);
    }
}

}  // namespace

void register_avx2_kernels(TraitsTable& t) {
    auto row = [&](TensorType type) -> TypeTraits& { return t[size_t(type)]; };
    row(TensorType::F32).vec_dot = f32_vec_dot;
    row(TensorType::F16).vec_dot = f16_vec_dot;
    row(TensorType::F16).to_float = f16_to_float;
    row(TensorType::F16).from_float = f16_from_float;
    row(TensorType::BF16).vec_dot = bf16_vec_dot;
    row(TensorType::BF16).to_float = bf16_to_float;
    row(TensorType::BF16).from_float = bf16_from_float;
    row(TensorType::Q8_0).from_float = q8_0_from_float;
    row(TensorType::Q8_0).to_float = q8_0_to_float;
    row(TensorType::Q8_1).from_float = q8_1_from_float;
    row(TensorType::Q8_1).to_float = q8_1_to_float;
    row(TensorType::Q8_K).from_float = q8_k_from_float;
    row(TensorType::Q8_K).to_float = q8_k_to_float;
    avx2::register_legacy_kernels(t);
    avx2::register_kquant_kernels(t);
}

}  // namespace qllm
