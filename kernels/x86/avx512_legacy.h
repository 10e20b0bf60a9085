// The legacy formats' 32-value blocks as vectors of levels, shared by the AVX-512 dot products
// (avx512_quants.cpp) and batched products (avx512_gemm.cpp). In an anonymous namespace like
// avx2_helpers.h: each file gets its own copy, built with its own flags.
#pragma once

#include <immintrin.h>

#include <array>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/types.h"

namespace qllm {
namespace {

inline uint32_t load_u32(const void* p) {
    uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// 16 bytes of nibbles to 32 levels in value order (low nibbles are values 0-15).
inline __m256i nibbles(const uint8_t* qs) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Q5 levels: nibbles plus 16 where bit j of qh is set.
inline __m256i add_fifth_bit(__m256i q, uint32_t qh) {
    return _mm256_mask_add_epi8(q, __mmask32(qh), q, _mm256_set1_epi8(16));
}

// IQ4_NL's grid plus 128 (so unsigned), for a byte shuffle.
alignas(16) constexpr auto kIQ4NLBiased = [] {
    std::array<uint8_t, 16> grid{};
    for (int i = 0; i < 16; ++i) grid[size_t(i)] = uint8_t(kIQ4NLValues[i] + 128);
    return grid;
}();
inline __m128i iq4_nl_biased_grid() { return _mm_load_si128(reinterpret_cast<const __m128i*>(kIQ4NLBiased.data())); }

// The 32 values of one block as int8 (the d * q + m form of kernels/int_blocks.h), its d and m.
template <TensorType kType>
inline __m256i block_values(const uint8_t* block) {
    const __m256i sign = _mm256_set1_epi8(char(0x80));
    if constexpr (kType == TensorType::Q4_0) {
        return _mm256_sub_epi8(nibbles(reinterpret_cast<const BlockQ4_0*>(block)->qs), _mm256_set1_epi8(8));
    } else if constexpr (kType == TensorType::Q4_1) {
        return nibbles(reinterpret_cast<const BlockQ4_1*>(block)->qs);
    } else if constexpr (kType == TensorType::Q5_0) {
        const auto* b = reinterpret_cast<const BlockQ5_0*>(block);
        return _mm256_sub_epi8(add_fifth_bit(nibbles(b->qs), load_u32(b->qh)), _mm256_set1_epi8(16));
    } else if constexpr (kType == TensorType::Q5_1) {
        const auto* b = reinterpret_cast<const BlockQ5_1*>(block);
        return add_fifth_bit(nibbles(b->qs), load_u32(b->qh));
    } else if constexpr (kType == TensorType::Q8_0) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const BlockQ8_0*>(block)->qs));
    } else {
        static_assert(kType == TensorType::IQ4_NL);
        const __m256i grid = _mm256_broadcastsi128_si256(iq4_nl_biased_grid());
        return _mm256_xor_si256(_mm256_shuffle_epi8(grid, nibbles(reinterpret_cast<const BlockIQ4_NL*>(block)->qs)), sign);
    }
}

}  // namespace
}  // namespace qllm
