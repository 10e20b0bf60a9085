// general.file_type (llama_ftype) names, and llama.cpp's guess when the key is missing.
#include <map>

#include "model/model.h"

namespace qllm {

std::string file_type_name(uint32_t file_type) {
    static const std::map<uint32_t, std::string> names = {
        {0, "all F32"},         {1, "F16"},            {2, "Q4_0"},           {3, "Q4_1"},
        {7, "Q8_0"},            {8, "Q5_0"},           {9, "Q5_1"},           {10, "Q2_K - Medium"},
        {11, "Q3_K - Small"},   {12, "Q3_K - Medium"}, {13, "Q3_K - Large"},  {14, "Q4_K - Small"},
        {15, "Q4_K - Medium"},  {16, "Q5_K - Small"},  {17, "Q5_K - Medium"}, {18, "Q6_K"},
        {19, "IQ2_XXS - 2.0625 bpw"}, {20, "IQ2_XS - 2.3125 bpw"}, {21, "Q2_K - Small"},
        {22, "IQ3_XS - 3.3 bpw"}, {23, "IQ3_XXS - 3.0625 bpw"}, {24, "IQ1_S - 1.5625 bpw"},
        {25, "IQ4_NL - 4.5 bpw"}, {26, "IQ3_S - 3.4375 bpw"}, {27, "IQ3_S mix - 3.66 bpw"},
        {28, "IQ2_S - 2.5 bpw"}, {29, "IQ2_M - 2.7 bpw"}, {30, "IQ4_XS - 4.25 bpw"},
        {31, "IQ1_M - 1.75 bpw"}, {32, "BF16"}, {36, "TQ1_0 - 1.69 bpw ternary"},
        {37, "TQ2_0 - 2.06 bpw ternary"}, {38, "MXFP4 MoE"},
    };
    const uint32_t guessed_bit = 1024;  // llama.cpp's LLAMA_FTYPE_GUESSED
    const bool guessed = (file_type & guessed_bit) != 0 && file_type != 0xFFFFFFFFu;
    auto it = names.find(file_type & ~guessed_bit);
    if (it == names.end()) return "unknown";
    return guessed ? it->second + " (guessed)" : it->second;
}

uint32_t guess_file_type(const gguf::File& file) {
    // The most common type among the 2-D weights decides, as llama.cpp does.
    std::map<TensorType, int> counts;
    for (const auto& t : file.tensors()) {
        if (t.n_dims >= 2) counts[t.type]++;
    }
    TensorType best = TensorType::F32;
    int best_count = -1;
    for (auto [type, n] : counts) {
        if (n > best_count) best = type, best_count = n;
    }
    static const std::map<TensorType, uint32_t> by_type = {
        {TensorType::F32, 0},  {TensorType::F16, 1},   {TensorType::BF16, 32}, {TensorType::Q4_0, 2},
        {TensorType::Q4_1, 3}, {TensorType::Q5_0, 8},  {TensorType::Q5_1, 9},  {TensorType::Q8_0, 7},
        {TensorType::Q2_K, 10}, {TensorType::Q3_K, 12}, {TensorType::Q4_K, 15}, {TensorType::Q5_K, 17},
        {TensorType::Q6_K, 18}, {TensorType::IQ4_NL, 25}, {TensorType::IQ4_XS, 30},
    };
    auto it = by_type.find(best);
    return it == by_type.end() ? 0xFFFFFFFFu : (it->second | 1024u);
}

}  // namespace qllm
