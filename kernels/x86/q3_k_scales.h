// Q3_K's packed scales as a vector, shared by the AVX2 and AVX-512 kernels. In an anonymous
// namespace like avx2_helpers.h: each file gets its own copy, built with its own flags.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace qllm {
namespace {

// The 16 six-bit scales minus 32, as int8 in sub-block order (see BlockQ3_K).
inline __m128i q3_k_scales(const uint8_t* packed) {
    uint32_t w[3];
    std::memcpy(w, packed, sizeof w);
    const uint32_t lo = 0x0f0f0f0f, top = 0x03030303;
    const __m128i biased = _mm_set_epi32(int(((w[1] >> 4) & lo) | (((w[2] >> 6) & top) << 4)),
                                         int(((w[0] >> 4) & lo) | (((w[2] >> 4) & top) << 4)),
                                         int((w[1] & lo) | (((w[2] >> 2) & top) << 4)),
                                         int((w[0] & lo) | ((w[2] & top) << 4)));
    return _mm_sub_epi8(biased, _mm_set1_epi8(32));
}

}  // namespace
}  // namespace qllm
