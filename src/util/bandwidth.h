// The machine's memory read bandwidth, the yardstick for token generation (memory-bound).
#pragma once

#include <cstddef>

namespace qllm {

// Best of five passes summing a buffer of `bytes` with every thread, prefetching ahead as the
// matrix-vector products do. In bytes per second.
double measure_read_bandwidth(size_t bytes = size_t(512) << 20);

}  // namespace qllm
