// Small AVX2 helpers shared by the kernels/x86/avx2*.cpp files. They live in an anonymous
// namespace on purpose: each file gets its own copy compiled with its own flags, so the linker
// can never pick an AVX-512 build of a helper for a CPU that only has AVX2.
#pragma once

#include <immintrin.h>

#include "kernels/blocks.h"

namespace qllm {
namespace {

inline float half_to_float(f16_t h) { return _cvtsh_ss(h); }

// Sums 8 lanes as ref::reduce_lanes8 does: 4+4, 2+2, 1+1.
inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

inline int hsum8_i32(__m256i v) {
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(r);
}

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

}  // namespace
}  // namespace qllm
