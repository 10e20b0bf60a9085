// The packed scales of Q3_K and Q4_K/Q5_K as vectors, shared by the AVX2 and AVX-512 kernels. In an
// anonymous namespace like avx2_helpers.h: each file gets its own copy, built with its own flags.
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

// The 8 six-bit scales (bytes 0-7) and minimums (bytes 8-15) of a Q4_K/Q5_K super-block.
inline __m128i k4_scales_mins(const uint8_t* packed) {
    uint32_t w[3];
    std::memcpy(w, packed, sizeof w);
    const uint32_t six = 0x3f3f3f3f, lo = 0x0f0f0f0f, top = 0x03030303;
    return _mm_set_epi32(int(((w[2] >> 4) & lo) | (((w[1] >> 6) & top) << 4)), int(w[1] & six),
                         int((w[2] & lo) | (((w[0] >> 6) & top) << 4)), int(w[0] & six));
}

}  // namespace
}  // namespace qllm
