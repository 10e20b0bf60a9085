// The machine's memory read bandwidth, the yardstick for token generation (memory-bound).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace qllm {

// Best of five passes summing a buffer of `bytes` with every thread, prefetching ahead as the
// matrix-vector products do. In bytes per second. The buffer is kept between readings: filling
// fresh memory costs more than the reading itself.
class ReadBandwidthProbe {
public:
    explicit ReadBandwidthProbe(size_t bytes = size_t(512) << 20);
    double measure() const;

private:
    std::vector<uint64_t> buffer_;
};

inline double measure_read_bandwidth() { return ReadBandwidthProbe().measure(); }

}  // namespace qllm
