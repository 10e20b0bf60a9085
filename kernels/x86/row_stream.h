// Row kernels built from a dot product (see VecDotRowsFn): rows are read in memory order as one
// stream, and the dot product requests the bytes kAheadBytes ahead while it computes, because the
// hardware prefetcher alone leaves too few loads in flight to reach the memory bandwidth. In an
// anonymous namespace like avx2_helpers.h: each file gets its own copy, built with its own flags.
#pragma once

#include <xmmintrin.h>

#include <cstddef>
#include <cstdint>

namespace qllm {
namespace {

constexpr size_t kAheadBytes = 4096;

// Requests the bytes kAheadBytes past [p, p + bytes), one cache line at a time.
inline void prefetch_ahead(const void* p, size_t bytes) {
    const char* c = static_cast<const char*>(p);
    for (size_t b = 0; b < bytes; b += 64) _mm_prefetch(c + b + kAheadBytes, _MM_HINT_T0);
}

// Quarter q (0-3) of the prefetches for block x, issued with each quarter of the work on it:
// a group of 16 K-quant rows spans 1.3-3.3 KB, and spread out so the requests leave evenly.
template <typename Block>
inline void prefetch_quarter(const Block& x, int q) {
    prefetch_ahead(reinterpret_cast<const char*>(&x) + q * sizeof(Block) / 4, sizeof(Block) / 4);
}

// The row kernel of a dot product that prefetches: one row after the other.
template <float (*Dot)(int64_t, const void*, const void*)>
void rows_of(int64_t n, const void* x, size_t x_row_bytes, int64_t n_rows, const void* y, float* out) {
    for (int64_t r = 0; r < n_rows; ++r) out[r] = Dot(n, static_cast<const uint8_t*>(x) + size_t(r) * x_row_bytes, y);
}

}  // namespace
}  // namespace qllm
