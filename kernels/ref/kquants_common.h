// Small pieces shared by the K-quant reference kernels (kquants_low.cpp, kquants_high.cpp).
#pragma once

#include <cstdint>

#include "kernels/blocks.h"

namespace qllm::ref::detail {

// Packs 256 2-bit levels as Q2_K/Q3_K store them: per half of 128 values, byte l holds values
// l, l+32, l+64, l+96 in bit pairs 0-1, 2-3, 4-5, 6-7.
inline void pack_2bit_k(const uint8_t* L, uint8_t* qs) {
    for (int j = 0; j < kQK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }
}

// The integer part of ggml's scalar K-quant dot products: weights `a` (256 signed levels) times
// activations q8, each group of 16 multiplied by its sub-block scale, accumulated into 8 lanes
// (lane = index % 8). Keeping ggml's lane split matters for the float sums that follow.
inline void accumulate_8_lanes(const int8_t* a, const int8_t* q8, const int* scale16, int32_t lanes[8]) {
    for (int l = 0; l < 8; ++l) lanes[l] = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
        for (int half = 0; half < 2; ++half) {
            for (int l = 0; l < 8; ++l) lanes[l] += scale16[j] * int16_t(q8[l] * a[l]);
            q8 += 8;
            a += 8;
        }
    }
}

}  // namespace qllm::ref::detail
