// Interleaved in-memory layouts (kernels/blocks.h, kernels/interleave.h): how they are built from
// the rows of a file format, and their reference row kernels, which take each row back out and
// use that format's dot product.
#include <cstddef>
#include <cstring>
#include <vector>

#include "kernels/interleave.h"
#include "kernels/ref/ref.h"
#include "kernels/types.h"

namespace qllm::ref {
namespace {

// Calls copy(offset in a row's block, offset in the interleaved block, bytes) for each unit of
// row r's block: the f16 scales in order, then the dwords.
template <const Interleave& L, typename Copy>
void for_each_unit(int r, Copy copy) {
    for (size_t k = 0; k < L.halves(); ++k) copy(L.half_offset(k), L.half_place(k, r), size_t(2));
    for (size_t p = 0; p < L.places(); ++p) copy(L.dword_offset(p), L.dword_place(p, r), size_t(4));
}

template <const Interleave& L>
void repack16(const void* rows, size_t row_bytes, int64_t n, void* out) {
    const int64_t n_blocks = n / int64_t(L.block_values);
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

template <const Interleave& L, VecDotFn kDot>
void vec_dot_rows16(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    const int64_t n_blocks = n / int64_t(L.block_values);
    std::vector<uint8_t> row(x_row_bytes);
    for (int64_t r = 0; r < n_rows; ++r) {
        const auto* group = static_cast<const uint8_t*>(x) + size_t(r / kGroupRows * kGroupRows) * x_row_bytes;
        row_of_group<L>(group, n_blocks, int(r % kGroupRows), row.data());
        out[r] = kDot(n, row.data(), y);
    }
}

}  // namespace

void q4_0_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ4_0Layout>(rows, row_bytes, n, group);
}
void q4_0_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ4_0Layout, q4_0_vec_dot>(n, x, x_row_bytes, n_rows, y, out);
}
void q8_0_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ8_0Layout>(rows, row_bytes, n, group);
}
void q8_0_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ8_0Layout, q8_0_vec_dot>(n, x, x_row_bytes, n_rows, y, out);
}
void q2_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ2_KLayout>(rows, row_bytes, n, group);
}
void q2_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ2_KLayout, q2_k_vec_dot>(n, x, x_row_bytes, n_rows, y, out);
}
void q3_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ3_KLayout>(rows, row_bytes, n, group);
}
void q3_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ3_KLayout, q3_k_vec_dot>(n, x, x_row_bytes, n_rows, y, out);
}
void q4_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ4_KLayout>(rows, row_bytes, n, group);
}
void q4_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ4_KLayout, q4_k_vec_dot>(n, x, x_row_bytes, n_rows, y, out);
}
void q6_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ6_KLayout>(rows, row_bytes, n, group);
}
void q6_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ6_KLayout, q6_k_vec_dot>(n, x, x_row_bytes, n_rows, y, out);
}

void q5_k_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* group) {
    repack16<kQ5_KLayout>(rows, row_bytes, n, group);
}
void q5_k_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    vec_dot_rows16<kQ5_KLayout, q5_k_vec_dot>(n, x, x_row_bytes, n_rows, y, out);
}

}  // namespace qllm::ref
