// Interleaved in-memory layouts (kernels/blocks.h): how they are built from the rows of a file
// format, and their reference row kernels, which take each row back out and use that format's
// dot product.
#include <cstring>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/ref/ref.h"

namespace qllm::ref {
namespace {

constexpr int kGroupRows = 16;

// Row r of a Q4_0_R16 group, as the Q4_0 blocks it was built from.
void q4_0_r16_row(const BlockQ4_0x16* group, int64_t nb, int r, BlockQ4_0* row) {
    for (int64_t b = 0; b < nb; ++b) {
        row[b].d = group[b].d[r];
        for (int g = 0; g < 4; ++g) std::memcpy(row[b].qs + 4 * g, group[b].qs[g][r], 4);
    }
}

}  // namespace

void q4_0_r16_repack(const void* rows, size_t row_bytes, int64_t n, void* out) {
    auto* group = static_cast<BlockQ4_0x16*>(out);
    for (int r = 0; r < kGroupRows; ++r) {
        const auto* row = reinterpret_cast<const BlockQ4_0*>(static_cast<const uint8_t*>(rows) + size_t(r) * row_bytes);
        for (int64_t b = 0; b < n / kQK; ++b) {
            group[b].d[r] = row[b].d;
            for (int g = 0; g < 4; ++g) std::memcpy(group[b].qs[g][r], row[b].qs + 4 * g, 4);
        }
    }
}

void q4_0_r16_vec_dot_rows(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    const int64_t nb = n / kQK;
    std::vector<BlockQ4_0> row(static_cast<size_t>(nb));
    for (int64_t r = 0; r < n_rows; ++r) {
        const auto* group = reinterpret_cast<const BlockQ4_0x16*>(static_cast<const uint8_t*>(x) +
                                                                  size_t(r / kGroupRows * kGroupRows) * x_row_bytes);
        q4_0_r16_row(group, nb, int(r % kGroupRows), row.data());
        out[r] = q4_0_vec_dot(n, row.data(), y);
    }
}

}  // namespace qllm::ref
