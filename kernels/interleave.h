// Where each byte of a file format's block goes in its interleaved in-memory layout
// (kernels/blocks.h): the one description that the reference repacking and the vector code that
// puts a group back into rows (the GEMM's) both follow.
//
// Each layout interleaves the blocks of 16 rows field by field: the block's f16 scales as 16-bit
// units (unit k of row r at byte 32k + 2r), then the rest of the block as dwords (the dword at
// place p of row r at byte 32 * (units) + 64p + 4r).
#pragma once

#include <cstddef>

#include "kernels/blocks.h"

namespace qllm {

inline constexpr int kGroupRows = 16;

// A format's blocks: dwords in [dword_begin, dword_end), f16 scales around them; and which of
// the block's dwords goes to each place of the interleaved block (null: in order).
struct Interleave {
    size_t block_values, block_bytes, dword_begin, dword_end;
    size_t (*dword_at)(size_t place) = nullptr;

    constexpr size_t halves() const { return (block_bytes - (dword_end - dword_begin)) / 2; }
    constexpr size_t places() const { return (dword_end - dword_begin) / 4; }
    // Offsets in a row's block of f16 unit k and of the dword at place p.
    constexpr size_t half_offset(size_t k) const { return 2 * k < dword_begin ? 2 * k : dword_end + 2 * k - dword_begin; }
    constexpr size_t dword_offset(size_t p) const { return dword_begin + 4 * (dword_at ? dword_at(p) : p); }
    // Offsets of the same in the interleaved block, for row r.
    static constexpr size_t half_place(size_t k, int r) { return 2 * kGroupRows * k + 2 * size_t(r); }
    constexpr size_t dword_place(size_t p, int r) const { return 2 * kGroupRows * halves() + 4 * kGroupRows * p + 4 * size_t(r); }
};

// Q6_K_R16 stores its dwords in the order its kernel reads them, so that one group streams from
// memory front to back: the scales (block dwords 48-51), then per half h and dword j the ql
// dwords 16h + j and 16h + 8 + j and the qh dword 32 + 8h + j.
constexpr size_t q6_k_dword_at(size_t place) {
    if (place < 4) return 48 + place;
    const size_t h = (place - 4) / 24, j = (place - 4) % 24 / 3, part = (place - 4) % 3;
    return part == 0 ? 16 * h + j : part == 1 ? 16 * h + 8 + j : 32 + 8 * h + j;
}

// Q3_K_R16 puts the scales (block dwords 24-26) before hmask and qs, in the order its kernel reads.
constexpr size_t q3_k_dword_at(size_t place) { return place < 3 ? 24 + place : place - 3; }

inline constexpr Interleave kQ4_0Layout{kQK, sizeof(BlockQ4_0), 2, sizeof(BlockQ4_0)};
inline constexpr Interleave kQ8_0Layout{kQK, sizeof(BlockQ8_0), 2, sizeof(BlockQ8_0)};
inline constexpr Interleave kQ2_KLayout{kQK_K, sizeof(BlockQ2_K), 0, offsetof(BlockQ2_K, d)};
inline constexpr Interleave kQ3_KLayout{kQK_K, sizeof(BlockQ3_K), 0, offsetof(BlockQ3_K, d), q3_k_dword_at};
inline constexpr Interleave kQ4_KLayout{kQK_K, sizeof(BlockQ4_K), 4, sizeof(BlockQ4_K)};
inline constexpr Interleave kQ5_KLayout{kQK_K, sizeof(BlockQ5_K), 4, sizeof(BlockQ5_K)};
inline constexpr Interleave kQ6_KLayout{kQK_K, sizeof(BlockQ6_K), 0, offsetof(BlockQ6_K, d), q6_k_dword_at};

static_assert(kQ2_KLayout.half_offset(1) == offsetof(BlockQ2_K, dmin));
static_assert(kQ3_KLayout.half_offset(0) == offsetof(BlockQ3_K, d));
static_assert(kQ3_KLayout.dword_place(26, 15) + 4 == sizeof(BlockQ3_Kx16));
static_assert(kQ4_KLayout.half_offset(1) == offsetof(BlockQ4_K, dmin));
static_assert(kQ6_KLayout.half_offset(0) == offsetof(BlockQ6_K, d));
static_assert(kQ4_0Layout.dword_place(3, 15) + 4 == sizeof(BlockQ4_0x16));
static_assert(kQ6_KLayout.dword_place(51, 15) + 4 == sizeof(BlockQ6_Kx16));

}  // namespace qllm
