// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c; only called when the CPU has them.
#include <immintrin.h>

#include "kernels/cpu.h"
#include "qllm/half.h"

namespace qllm {
namespace {

inline float hsum(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

// f16 · f16 in float: 4 accumulators of 8 lanes.
float f16_vec_dot(int64_t n, const void* x, const void* y) {
    const auto* a = static_cast<const f16_t*>(x);
    const auto* b = static_cast<const f16_t*>(y);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int k = 0; k < 4; ++k) {
            const __m256 va = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i + 8 * k)));
            const __m256 vb = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i + 8 * k)));
            acc[k] = _mm256_fmadd_ps(va, vb, acc[k]);
        }
    }
    float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; ++i) sum += f16_to_f32(a[i]) * f16_to_f32(b[i]);
    return sum;
}

void f16_to_float(const void* src, float* dst, int64_t n) {
    const auto* h = static_cast<const f16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
    }
    for (; i < n; ++i) dst[i] = f16_to_f32(h[i]);
}

void f16_from_float(const float* src, void* dst, int64_t n) {
    auto* h = static_cast<f16_t*>(dst);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; ++i) h[i] = f32_to_f16(src[i]);
}

}  // namespace

void register_avx2_kernels(TraitsTable& t) {
    auto& f16 = t[size_t(TensorType::F16)];
    f16.vec_dot = f16_vec_dot;
    f16.to_float = f16_to_float;
    f16.from_float = f16_from_float;
}

}  // namespace qllm
