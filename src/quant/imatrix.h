// Importance matrices for `qllm quantize --imatrix` (read) and `qllm imatrix` (written): per
// weight tensor, the mean squared activation of each input column, which weights the quantizers'
// error. The files are llama-imatrix's, so either tool's output works with the other.
//
// Two on-disk formats, told apart by the first bytes:
//   1. legacy .dat: i32 n_entries, then per entry i32 name_len, name, i32 ncall, i32 nval,
//      f32 sums[nval]; optionally i32 chunk_count, i32 dataset_len, dataset. value = sum / ncall.
//   2. GGUF: tensors "<name>.in_sum2" (f32 [n_per_row, n_matrix]) and "<name>.counts"
//      (f32 [1, n_matrix]), keys general.type = "imatrix", imatrix.datasets (string array),
//      imatrix.chunk_count and imatrix.chunk_size (u32). value = sum / count.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace qllm::quant {

struct ImportanceMatrix {
    std::map<std::string, std::vector<float>, std::less<>> entries;  // tensor name -> n_per_row * n_matrix
    std::vector<std::string> datasets;
    int64_t chunk_count = 0;

    static ImportanceMatrix load(const std::string& path);
    const std::vector<float>* find(std::string_view tensor) const;
};

// What `qllm imatrix` accumulates: per weight, the sum over every input row of x^2 for each
// input column, and the number of rows. Dense weights only (one matrix per tensor).
struct ImatrixStats {
    struct Entry {
        std::vector<double> sum2;  // per input column; double so long runs do not lose small terms
        int64_t count = 0;         // rows (tokens) seen
    };
    std::map<std::string, Entry, std::less<>> entries;
    std::vector<std::string> datasets;  // calibration files
    int64_t chunk_count = 0;
    int64_t chunk_size = 0;             // tokens per chunk (-c)

    // Adds n_rows rows of n_cols activations (row-major) for `weight`.
    void add(std::string_view weight, const float* x, int64_t n_rows, int64_t n_cols);
    // Writes llama-imatrix's GGUF format, or its legacy format when `path` ends in ".dat".
    // Atomic: a failure leaves no file.
    void save(const std::string& path) const;
};

}  // namespace qllm::quant
