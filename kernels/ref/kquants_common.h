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

// Q3_K: the 6-bit scale of sub-block j (0..63, stored with a +32 bias); see BlockQ3_K.
inline int q3_k_scale(const uint8_t* scales, int j) {
    const int low = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
    return low | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
}

// Q4_K / Q5_K: scale and minimum of sub-block j; see BlockQ4_K for the packing.
inline void get_scale_min_k4(int j, const uint8_t* q, int& scale, int& min) {
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q6_K levels (-32..31) in value order.
inline void q6_k_levels(const BlockQ6_K& x, int8_t* a) {
    const uint8_t* ql = x.ql;
    const uint8_t* qh = x.qh;
    for (int j = 0; j < kQK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            a[l + 0] = int8_t(((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            a[l + 32] = int8_t(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            a[l + 64] = int8_t(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            a[l + 96] = int8_t(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
        a += 128;
        ql += 64;
        qh += 32;
    }
}

}  // namespace qllm::ref::detail
