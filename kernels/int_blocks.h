// Quantized weights in a plain integer form for the batched (GEMM) kernels, which lay many rows
// side by side and so cannot work on each format's packed bits directly. Unpacking is exact:
// every value of a block is still d * q + m (legacy formats, blocks of 32) or
// d * sc[j] * q - dmin * mn[j] (K-quants, super-blocks of 256 in 16 sub-blocks j of 16).
#pragma once

#include <cstdint>

#include "kernels/types.h"

namespace qllm {

struct IntBlock32 {
    int8_t q[32];
    float d;
    float m;  // offset of Q4_1 / Q5_1; 0 for the others
};

struct IntBlock256 {
    int8_t q[256];
    int16_t sc[16];  // per sub-block of 16 (Q4_K/Q5_K repeat their per-32 scales)
    int16_t mn[16];  // minimums; 0 where the format has none
    float d;
    float dmin;
};

// Which of the two forms a weight type unpacks to, if any.
enum class IntForm { None, Blocks32, Blocks256 };
IntForm int_form(TensorType type);

// Unpacks n_blocks consecutive blocks of `type` (of the form int_form(type)).
void unpack_blocks32(TensorType type, const void* src, int64_t n_blocks, IntBlock32* dst);
void unpack_blocks256(TensorType type, const void* src, int64_t n_blocks, IntBlock256* dst);

}  // namespace qllm
