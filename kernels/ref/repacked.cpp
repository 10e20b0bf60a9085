// Interleaved in-memory layouts (kernels/blocks.h): how they are built from the rows of a file
// format, and their reference row kernels, which take each row back out and use that format's
// dot product.
//
// Each layout interleaves the blocks of 16 rows field by field: the block's f16 scales as 16-bit
// units (scale f of row r at byte 32f + 2r), then the rest of the block as dwords (dword k of row
// r at byte 16 * (scale bytes) + 64k + 4r).
#include <cstddef>
#include <cstring>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/ref/ref.h"
#include "kernels/types.h"

namespace qllm::ref {
namespace {

constexpr int kGroupRows = 16;

// The layout of a format's blocks: dwords in [dword_begin, dword_end), f16 scales around them;
// and which of the block's dwords goes to each place of the interleaved block (null: in order).
struct Interleave {
    size_t block_bytes, dword_begin, dword_end;
    size_t (*dword_at)(size_t place) = nullptr;
};

// Q6_K_R16 stores its dwords in the order its kernel reads them, so that one group streams from
// memory front to back: the scales (block dwords 48-51), then per half h and dword j the ql
// dwords 16h + j and 16h + 8 + j and the qh dword 32 + 8h + j.
constexpr size_t q6_k_dword_at(size_t place) {
    if (place < 4) return 48 + place;
    const size_t h = (place - 4) / 24, j = (place - 4) % 24 / 3, part = (place - 4) % 3;
    return part == 0 ? 16 * h + j : part == 1 ? 16 * h + 8 + j : 32 + 8 * h + j;
}

constexpr Interleave kQ4_0{sizeof(BlockQ4_0), 2, sizeof(BlockQ4_0)};
constexpr Interleave kQ8_0{sizeof(BlockQ8_0), 2, sizeof(BlockQ8_0)};
constexpr Interleave kQ2_K{sizeof(BlockQ2_K), 0, offsetof(BlockQ2_K, d)};
constexpr Interleave kQ4_K{sizeof(BlockQ4_K), 4, sizeof(BlockQ4_K)};
constexpr Interleave kQ5_K{sizeof(BlockQ5_K), 4, sizeof(BlockQ5_K)};
constexpr Interleave kQ6_K{sizeof(BlockQ6_K), 0, offsetof(BlockQ6_K, d), q6_k_dword_at};

// Calls copy(offset in a row's block, offset in the interleaved block, bytes) for each unit of
// row r's block: the f16 scales in order, then the dwords.
template <const Interleave& L, typename Copy>
void for_each_unit(int r, Copy copy) {
    const size_t halves_bytes = L.block_bytes - (L.dword_end - L.dword_begin);
    size_t half = 0;
    for (size_t i = 0; i < L.block_bytes; i += 2) {
        if (i < L.dword_begin || i >= L.dword_end) copy(i, half++ * 2 * kGroupRows + 2 * size_t(r), size_t(2));
    }
    for (size_t place = 0; place < (L.dword_end - L.dword_begin) / 4; ++place) {
        const size_t dword = L.dword_at ? L.dword_at(place) : place;
        copy(L.dword_begin + 4 * dword, halves_bytes * kGroupRows + place * 4 * kGroupRows + 4 * size_t(r), size_t(4));
    }
}

template <const Interleave& L>
void repack16(const void* rows, size_t row_bytes, int64_t n_blocks, void* out) {
    for (int r = 0; r < kGroupRows; ++r) {
        const auto* row = static_cast<const uint8_t*>(rows) + size_t(r) * row_bytes;
        for (int64_t b = 0; b < n_blocks; ++b) {
            auto* block = static_cast<uint8_t*>(out) + size_t(b) * kGroupRows * L.block_bytes;
            for_each_unit<L>(r, [&](size_t from, size_t to, size_t bytes) {
                std::memcpy(block + to, row + size_t(b) * L.block_bytes + from, bytes);
            });
        }
    }
}

// Row r of a group back in its file format.
template <const Interleave& L>
void row_of_group(const uint8_t* group, int64_t n_blocks, int r, uint8_t* row) {
    for (int64_t b = 0; b < n_blocks; ++b) {
        const uint8_t* block = group + size_t(b) * kGroupRows * L.block_bytes;
        for_each_unit<L>(r, [&](size_t to, size_t from, size_t bytes) {
            std::memcpy(row + size_t(b) * L.block_bytes + to, block + from, bytes);
        });
    }
}

template <const Interleave& L>
void rows_of_group(const void* group, int64_t n_blocks, void* rows, size_t row_bytes) {
    for (int r = 0; r < kGroupRows; ++r) {
        row_of_group<L>(static_cast<const uint8_t*>(group), n_blocks, r, static_cast<uint8_t*>(rows) + size_t(r) * row_bytes);
    }
}

template <const Interleave& L, VecDotFn kDot>
void vec_dot_rows16(int64_t n_blocks, int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y,
                    float* out) {
    std::vector<uint8_t> row(x_row_bytes);
    for (int64_t r = 0; r < n_rows; ++r) {
        const auto* group = static_cast<const uint8_t*>(x) + size_t(r / kGroupRows * kGroupRows) * x_row_bytes;
        row_of_group<L>(group, n_blocks, int(r % kGroupRows), row.data());
        out[r] = kDot(n, row.data(), y);
    }
}

}  // namespace

void q4_0_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ4_0>(rows, row_bytes, n / kQK, group);
}
void q4_0_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ4_0, q4_0_vec_dot>(n / kQK, n, x, x_row_bytes, n_rows, y, out);
}
void q8_0_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ8_0>(rows, row_bytes, n / kQK, group);
}
void q8_0_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ8_0, q8_0_vec_dot>(n / kQK, n, x, x_row_bytes, n_rows, y, out);
}
void q2_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ2_K>(rows, row_bytes, n / kQK_K, group);
}
void q2_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ2_K, q2_k_vec_dot>(n / kQK_K, n, x, x_row_bytes, n_rows, y, out);
}
void q4_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ4_K>(rows, row_bytes, n / kQK_K, group);
}
void q4_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ4_K, q4_k_vec_dot>(n / kQK_K, n, x, x_row_bytes, n_rows, y, out);
}
void q6_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ6_K>(rows, row_bytes, n / kQK_K, group);
}
void q6_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ6_K, q6_k_vec_dot>(n / kQK_K, n, x, x_row_bytes, n_rows, y, out);
}

void q5_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ5_K>(rows, row_bytes, n / kQK_K, group);
}
void q5_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ5_K, q5_k_vec_dot>(n / kQK_K, n, x, x_row_bytes, n_rows, y, out);
}

void q2_k_r16_rows(const void* group, int64_t n, void* rows, size_t row_bytes) {
    rows_of_group<kQ2_K>(group, n / kQK_K, rows, row_bytes);
}
void q4_k_r16_rows(const void* group, int64_t n, void* rows, size_t row_bytes) {
    rows_of_group<kQ4_K>(group, n / kQK_K, rows, row_bytes);
}
void q5_k_r16_rows(const void* group, int64_t n, void* rows, size_t row_bytes) {
    rows_of_group<kQ5_K>(group, n / kQK_K, rows, row_bytes);
}
void q6_k_r16_rows(const void* group, int64_t n, void* rows, size_t row_bytes) {
    rows_of_group<kQ6_K>(group, n / kQK_K, rows, row_bytes);
}

}  // namespace qllm::ref
