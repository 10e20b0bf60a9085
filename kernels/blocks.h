// On-disk block layouts of the quantized GGUF formats, byte-identical to ggml's block_* structs.
// A row of n values is n / block_size consecutive blocks. All multi-byte fields are little-endian;
// scales marked f16 are IEEE half bits (see qllm/half.h).
#pragma once

#include <cstdint>

#include "qllm/half.h"

namespace qllm {

inline constexpr int kQK = 32;    // values per block of the legacy formats and IQ4_NL
inline constexpr int kQK_K = 256;  // values per super-block of the K-quants

// Q4_0: x = d * (q - 8), q in 0..15. qs[j] holds value j in its low nibble and value j+16 in
// its high nibble.
struct BlockQ4_0 {
    f16_t d;
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q4_0_R16, an in-memory layout of 16 Q4_0 rows (never in files): block b of the 16 rows,
// with dword g of row r (qs bytes 4g..4g+3: values 4g..4g+3 in the low nibbles, 16+4g..16+4g+3
// in the high ones) at qs[g][r], so that one 64-byte load holds 4 + 4 values of each row. A group
// of 16 rows takes as many bytes as the 16 rows did.
struct BlockQ4_0x16 {
    f16_t d[16];
    uint8_t qs[4][16][4];
};
static_assert(sizeof(BlockQ4_0x16) == 16 * sizeof(BlockQ4_0));

// Q4_1: x = d * q + m, q in 0..15; nibbles packed as in Q4_0.
struct BlockQ4_1 {
    f16_t d;
    f16_t m;
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// Q5_0: x = d * (q - 16), q in 0..31. Low 4 bits packed as in Q4_0; bit j of the little-endian
// uint32 qh is the 5th bit of value j.
struct BlockQ5_0 {
    f16_t d;
    uint8_t qh[4];
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q5_1: x = d * q + m, q in 0..31; bits laid out as in Q5_0.
struct BlockQ5_1 {
    f16_t d;
    f16_t m;
    uint8_t qh[4];
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// Q8_0: x = d * q, q one signed byte per value in order.
struct BlockQ8_0 {
    f16_t d;
    int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q8_0_R16, an in-memory layout of 16 Q8_0 rows laid out as Q4_0_R16: dword g of each row's qs
// (values 4g..4g+3) at qs[g].
struct BlockQ8_0x16 {
    f16_t d[16];
    int8_t qs[8][16][4];
};
static_assert(sizeof(BlockQ8_0x16) == 16 * sizeof(BlockQ8_0));

// Q8_1: as Q8_0 plus s = d * sum(q), so that dot products with Q4_1/Q5_1 can apply the
// weight's offset m without touching the values.
struct BlockQ8_1 {
    f16_t d;
    f16_t s;
    int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_1) == 36);

// Q2_K: 16 sub-blocks of 16. x = d * (scales[s] & 15) * q - dmin * (scales[s] >> 4), q in 0..3.
// qs: for each half of 128 values, byte l (0..31) holds values l, l+32, l+64, l+96 in bit pairs
// 0-1, 2-3, 4-5, 6-7.
struct BlockQ2_K {
    uint8_t scales[kQK_K / 16];
    uint8_t qs[kQK_K / 4];
    f16_t d;
    f16_t dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q2_K_R16, an in-memory layout of 16 Q2_K rows: per super-block the 16 rows' d, their dmin, then
// dword k of each row's scales and qs (laid out as Q4_0_R16).
struct BlockQ2_Kx16 {
    f16_t d[16];
    f16_t dmin[16];
    uint8_t scales[4][16][4];
    uint8_t qs[16][16][4];
};
static_assert(sizeof(BlockQ2_Kx16) == 16 * sizeof(BlockQ2_K));

// Q3_K: 16 sub-blocks of 16. x = d * (scale[s] - 32) * (q - 4), q in 0..7. The low 2 bits of q
// are packed as in Q2_K; the 3rd bit of value i is bit i/32 of hmask[i%32]. The 16 6-bit scales:
// low nibbles in scales[0..7] (sub-blocks 0-7 low, 8-15 high nibble), top 2 bits of scale s in
// bits 2*(s/4) of scales[8 + s%4].
struct BlockQ3_K {
    uint8_t hmask[kQK_K / 8];
    uint8_t qs[kQK_K / 4];
    uint8_t scales[12];
    f16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q3_K_R16, an in-memory layout of 16 Q3_K rows: per super-block the 16 rows' d, then dword k of
// each row's scales, hmask and qs (laid out as Q4_0_R16), the scales first as the kernel reads
// them first. hmask dword 4p + t holds the third bits of the values whose low bits qs dwords
// 4p + t (first half) and 8 + 4p + t (second) hold.
struct BlockQ3_Kx16 {
    f16_t d[16];
    uint8_t scales[3][16][4];
    uint8_t hmask[8][16][4];
    uint8_t qs[16][16][4];
};
static_assert(sizeof(BlockQ3_Kx16) == 16 * sizeof(BlockQ3_K));

// Q4_K: 8 sub-blocks of 32. x = d * sc[s] * q - dmin * mn[s], q in 0..15. Six-bit sc/mn: for
// s < 4 the low 6 bits of scales[s] / scales[s+4]; for s >= 4 the low / high nibble of
// scales[s+4] plus the top 2 bits of scales[s-4] / scales[s]. qs: each 32-byte group holds 64
// values, value l in the low nibble of byte l and value l+32 in its high nibble.
struct BlockQ4_K {
    f16_t d;
    f16_t dmin;
    uint8_t scales[12];
    uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q4_K_R16, an in-memory layout of 16 Q4_K rows laid out as Q4_0_R16: per super-block the 16 rows'
// d, then dmin, then dword k of each row's scales, then dword g of each row's qs (its low nibbles
// are values 64(g/8) + 4(g%8) + 0..3, its high nibbles those plus 32).
struct BlockQ4_Kx16 {
    f16_t d[16];
    f16_t dmin[16];
    uint8_t scales[3][16][4];
    uint8_t qs[32][16][4];
};
static_assert(sizeof(BlockQ4_Kx16) == 16 * sizeof(BlockQ4_K));

// Q5_K: as Q4_K with q in 0..31; the 5th bit of value 64*g + l (+32) is bit 2*g (2*g+1) of qh[l].
struct BlockQ5_K {
    f16_t d;
    f16_t dmin;
    uint8_t scales[12];
    uint8_t qh[kQK_K / 8];
    uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q5_K_R16, an in-memory layout of 16 Q5_K rows laid out as Q4_K_R16, with dword k of each row's
// qh (the fifth bits of values 4k..4k+3 of each 64, see BlockQ5_K) before the qs.
struct BlockQ5_Kx16 {
    f16_t d[16];
    f16_t dmin[16];
    uint8_t scales[3][16][4];
    uint8_t qh[8][16][4];
    uint8_t qs[32][16][4];
};
static_assert(sizeof(BlockQ5_Kx16) == 16 * sizeof(BlockQ5_K));

// Q6_K: 16 sub-blocks of 16. x = d * scales[s] * (q - 32), q in 0..63. Per half of 128 values:
// ql[l] / ql[l+32] hold values l / l+32 (low nibble) and l+64 / l+96 (high nibble); qh[l] holds
// the top 2 bits of values l, l+32, l+64, l+96 in bit pairs 0-1, 2-3, 4-5, 6-7.
struct BlockQ6_K {
    uint8_t ql[kQK_K / 2];
    uint8_t qh[kQK_K / 4];
    int8_t scales[kQK_K / 16];
    f16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Q6_K_R16, an in-memory layout of 16 Q6_K rows: per super-block the 16 rows' d, then dword k of
// each row's scales, then for each half h of 128 values and dword j (values 4j..4j+3 of each 32)
// the ql dwords 16h + j and 16h + 8 + j and the qh dword 8h + j of each row: the order in which
// the kernel reads them.
struct BlockQ6_Kx16 {
    f16_t d[16];
    int8_t scales[4][16][4];
    struct {
        uint8_t ql_low[16][4];   // ql dword 16h + j: values 128h + 4j.. and 128h + 64 + 4j.. in its nibbles
        uint8_t ql_high[16][4];  // ql dword 16h + 8 + j: values 128h + 32 + 4j.. and 128h + 96 + 4j..
        uint8_t qh[16][4];       // their top 2 bits, as BlockQ6_K's qh dword 8h + j
    } parts[2][8];
};
static_assert(sizeof(BlockQ6_Kx16) == 16 * sizeof(BlockQ6_K));

// Q8_K: activation partner of the K-quants. x = d * q with a float32 scale; bsums[g] is the sum
// of the 16 values of group g, used to apply the weights' minimums cheaply.
struct BlockQ8_K {
    float d;
    int8_t qs[kQK_K];
    int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// IQ4_NL: x = d * kIQ4NLValues[q], q in 0..15, nibbles packed as in Q4_0.
struct BlockIQ4_NL {
    f16_t d;
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

// The non-linear 4-bit grid of IQ4_NL (and IQ4_XS), sorted ascending.
inline constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

}  // namespace qllm
