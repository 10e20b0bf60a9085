#include "util/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "qllm/error.h"

namespace qllm {

namespace {
constexpr size_t kLine = 64 / sizeof(uint64_t), kAhead = 4096 / sizeof(uint64_t);
}

ReadBandwidthProbe::ReadBandwidthProbe(size_t bytes)
    : buffer_(std::max(bytes / sizeof(uint64_t), kLine) / kLine * kLine + kAhead, 1) {}

double ReadBandwidthProbe::measure() const {
    // Without the prefetch, the hardware prefetcher alone leaves much of the bandwidth unused on
    // some machines, and every fraction measured against the result would be inflated.
    const size_t n = buffer_.size() - kAhead;
    const uint64_t* buffer = buffer_.data();
    double best = 0;
    for (int pass = 0; pass < 5; ++pass) {
        const auto t0 = std::chrono::steady_clock::now();
        uint64_t sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
        for (size_t line = 0; line < n; line += kLine) {
            __builtin_prefetch(buffer + line + kAhead);
            for (size_t i = line; i < line + kLine; ++i) sum += buffer[i];
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (sum != n) throw Error("memory bandwidth probe miscounted");
        best = std::max(best, double(n * sizeof(uint64_t)) / s);
    }
    return best;
}

}  // namespace qllm
