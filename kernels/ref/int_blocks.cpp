// Unpacking of the quantized formats into IntBlock32 / IntBlock256 (see kernels/int_blocks.h).
// The bit layouts are those documented in kernels/blocks.h.
#include "kernels/int_blocks.h"

#include <cstring>

#include "kernels/blocks.h"
#include "kernels/ref/kquants_common.h"

namespace qllm {
namespace {

using ref::detail::get_scale_min_k4;
using ref::detail::q3_k_scale;
using ref::detail::q6_k_levels;

// 16 bytes of nibbles: value j in the low nibble of byte j, value j+16 in its high nibble.
void nibbles(const uint8_t* qs, int8_t* q) {
    for (int j = 0; j < 16; ++j) {
        q[j] = int8_t(qs[j] & 0xF);
        q[j + 16] = int8_t(qs[j] >> 4);
    }
}

// Q5_0/Q5_1: bit j of qh is the 5th bit of value j.
void add_fifth_bits(const uint8_t* qh_bytes, int8_t* q) {
    uint32_t qh;
    std::memcpy(&qh, qh_bytes, sizeof qh);
    for (int j = 0; j < 32; ++j) q[j] = int8_t(q[j] | (((qh >> j) & 1) << 4));
}

void offset(int8_t* q, int by) {
    for (int j = 0; j < 32; ++j) q[j] = int8_t(q[j] + by);
}

void unpack32(TensorType type, const uint8_t* src, IntBlock32& out) {
    out.m = 0.0f;
    switch (type) {
        case TensorType::Q4_0: {
            const auto& b = *reinterpret_cast<const BlockQ4_0*>(src);
            nibbles(b.qs, out.q);
            offset(out.q, -8);
            out.d = f16_to_f32(b.d);
            break;
        }
        case TensorType::Q4_1: {
            const auto& b = *reinterpret_cast<const BlockQ4_1*>(src);
            nibbles(b.qs, out.q);
            out.d = f16_to_f32(b.d);
            out.m = f16_to_f32(b.m);
            break;
        }
        case TensorType::Q5_0: {
            const auto& b = *reinterpret_cast<const BlockQ5_0*>(src);
            nibbles(b.qs, out.q);
            add_fifth_bits(b.qh, out.q);
            offset(out.q, -16);
            out.d = f16_to_f32(b.d);
            break;
        }
        case TensorType::Q5_1: {
            const auto& b = *reinterpret_cast<const BlockQ5_1*>(src);
            nibbles(b.qs, out.q);
            add_fifth_bits(b.qh, out.q);
            out.d = f16_to_f32(b.d);
            out.m = f16_to_f32(b.m);
            break;
        }
        case TensorType::Q8_0: {
            const auto& b = *reinterpret_cast<const BlockQ8_0*>(src);
            std::memcpy(out.q, b.qs, sizeof out.q);
            out.d = f16_to_f32(b.d);
            break;
        }
        case TensorType::IQ4_NL: {
            const auto& b = *reinterpret_cast<const BlockIQ4_NL*>(src);
            nibbles(b.qs, out.q);
            for (int8_t& v : out.q) v = kIQ4NLValues[v];
            out.d = f16_to_f32(b.d);
            break;
        }
        default: break;
    }
}

// Q2_K and Q3_K: per half of 128 values, byte l of qs holds the low 2 bits of values l, l+32,
// l+64, l+96 in bit pairs 0-1, 2-3, 4-5, 6-7.
void two_bit_levels(const uint8_t* qs, int8_t* q) {
    for (int half = 0; half < 2; ++half) {
        for (int pair = 0; pair < 4; ++pair) {
            for (int l = 0; l < 32; ++l) q[128 * half + 32 * pair + l] = int8_t((qs[32 * half + l] >> (2 * pair)) & 3);
        }
    }
}

// Q4_K and Q5_K: value 64g + l is the low nibble of qs[32g + l], value 64g + 32 + l its high one.
void nibble_levels_k(const uint8_t* qs, int8_t* q) {
    for (int g = 0; g < 4; ++g) {
        for (int l = 0; l < 32; ++l) {
            q[64 * g + l] = int8_t(qs[32 * g + l] & 0xF);
            q[64 * g + 32 + l] = int8_t(qs[32 * g + l] >> 4);
        }
    }
}

// Q3_K and Q5_K: bit v/32 of hbits[v%32] belongs to value v; adds `set` or `clear` by it.
void add_high_bits(const uint8_t* hbits, int8_t* q, int set, int clear) {
    for (int g = 0; g < 8; ++g) {
        for (int l = 0; l < 32; ++l) q[32 * g + l] = int8_t(q[32 * g + l] + (((hbits[l] >> g) & 1) ? set : clear));
    }
}

// Q4_K / Q5_K: 8 scales and minimums of sub-blocks of 32, each repeated for its two halves of 16.
void scales_mins_k4(const uint8_t* scales, IntBlock256& out) {
    for (int s = 0; s < 8; ++s) {
        int sc, mn;
        get_scale_min_k4(s, scales, sc, mn);
        out.sc[2 * s] = out.sc[2 * s + 1] = int16_t(sc);
        out.mn[2 * s] = out.mn[2 * s + 1] = int16_t(mn);
    }
}

void unpack256(TensorType type, const uint8_t* src, IntBlock256& out) {
    out.dmin = 0.0f;
    for (int16_t& m : out.mn) m = 0;
    switch (type) {
        case TensorType::Q2_K: {
            const auto& b = *reinterpret_cast<const BlockQ2_K*>(src);
            two_bit_levels(b.qs, out.q);
            for (int j = 0; j < 16; ++j) {
                out.sc[j] = int16_t(b.scales[j] & 0xF);
                out.mn[j] = int16_t(b.scales[j] >> 4);
            }
            out.d = f16_to_f32(b.d);
            out.dmin = f16_to_f32(b.dmin);
            break;
        }
        case TensorType::Q3_K: {
            const auto& b = *reinterpret_cast<const BlockQ3_K*>(src);
            two_bit_levels(b.qs, out.q);
            add_high_bits(b.hmask, out.q, 0, -4);  // a clear bit means level - 4
            for (int j = 0; j < 16; ++j) out.sc[j] = int16_t(q3_k_scale(b.scales, j) - 32);
            out.d = f16_to_f32(b.d);
            break;
        }
        case TensorType::Q4_K: {
            const auto& b = *reinterpret_cast<const BlockQ4_K*>(src);
            nibble_levels_k(b.qs, out.q);
            scales_mins_k4(b.scales, out);
            out.d = f16_to_f32(b.d);
            out.dmin = f16_to_f32(b.dmin);
            break;
        }
        case TensorType::Q5_K: {
            const auto& b = *reinterpret_cast<const BlockQ5_K*>(src);
            nibble_levels_k(b.qs, out.q);
            add_high_bits(b.qh, out.q, 16, 0);
            scales_mins_k4(b.scales, out);
            out.d = f16_to_f32(b.d);
            out.dmin = f16_to_f32(b.dmin);
            break;
        }
        case TensorType::Q6_K: {
            const auto& b = *reinterpret_cast<const BlockQ6_K*>(src);
            q6_k_levels(b, out.q);
            for (int j = 0; j < 16; ++j) out.sc[j] = b.scales[j];
            out.d = f16_to_f32(b.d);
            break;
        }
        default: break;
    }
}

}  // namespace

IntForm int_form(TensorType type) {
    switch (type) {
        case TensorType::Q4_0:
        case TensorType::Q4_1:
        case TensorType::Q5_0:
        case TensorType::Q5_1:
        case TensorType::Q8_0:
        case TensorType::IQ4_NL: return IntForm::Blocks32;
        case TensorType::Q2_K:
        case TensorType::Q3_K:
        case TensorType::Q4_K:
        case TensorType::Q5_K:
        case TensorType::Q6_K: return IntForm::Blocks256;
        default: return IntForm::None;
    }
}

void unpack_blocks32(TensorType type, const void* src, int64_t n_blocks, IntBlock32* dst) {
    const auto* bytes = static_cast<const uint8_t*>(src);
    const size_t size = traits(type).type_size;
    for (int64_t i = 0; i < n_blocks; ++i) unpack32(type, bytes + size_t(i) * size, dst[i]);
}

void unpack_blocks256(TensorType type, const void* src, int64_t n_blocks, IntBlock256* dst) {
    const auto* bytes = static_cast<const uint8_t*>(src);
    const size_t size = traits(type).type_size;
    for (int64_t i = 0; i < n_blocks; ++i) unpack256(type, bytes + size_t(i) * size, dst[i]);
}

}  // namespace qllm
