// Importance matrices (llama-imatrix output) for `qllm quantize --imatrix`: per weight tensor,
// the mean squared activation of each input column, which weights the quantizers' error.
//
// Two on-disk formats, told apart by the first bytes:
//   1. legacy .dat: i32 n_entries, then per entry i32 name_len, name, i32 ncall, i32 nval,
//      f32 sums[nval]; optionally i32 chunk_count, i32 dataset_len, dataset. value = sum / ncall.
//   2. GGUF: tensors "<name>.in_sum2" (f32 [n_per_row, n_matrix]) and "<name>.counts"
//      (f32 [1, n_matrix]), keys imatrix.datasets / imatrix.chunk_count. value = sum / count.
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

}  // namespace qllm::quant
