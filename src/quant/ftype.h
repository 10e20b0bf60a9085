// The file types `qllm quantize` writes: llama.cpp's llama_ftype ids (general.file_type), their
// llama-quantize names and the tensor type each one is built around.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "kernels/types.h"

namespace qllm::quant {

// Ids exactly as llama.cpp stores them in general.file_type.
enum class FileType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10,
    Q3_K_S = 11, Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17,
    Q6_K = 18, IQ4_NL = 25, BF16 = 32,
};

struct FileTypeInfo {
    std::string_view name;   // llama-quantize's spelling, e.g. "Q4_K_M"
    FileType id;
    TensorType base;         // the type most weights get (llama_ftype_get_default_type)
    std::string_view mix;    // one line on what the mixture does beyond `base`
};

// Every file type, in llama-quantize's listing order.
std::span<const FileTypeInfo> file_types();
const FileTypeInfo& file_type_info(FileType id);

// Parses a TYPE argument: a name in any case, an alias (Q3_K, Q4_K, Q5_K) or a numeric id.
// Returns null when nothing matches.
const FileTypeInfo* parse_file_type(std::string_view text);

// Bits per weight of a tensor type (type_size * 8 / block_size).
double bits_per_weight(TensorType type);

// "Q4_0 Q4_1 ... F32" on one line, for usage errors.
std::string file_type_names();
// A table of the types with id, base type and bits per weight, for --help.
std::string file_type_table();

}  // namespace qllm::quant
