// Per-tensor type choice for a file type: llama.cpp's mixture rules (llama_tensor_get_type in
// src/llama-quant.cpp, mid-2025) and its fallbacks for rows that do not fit a block size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/ftype.h"

namespace qllm::quant {

// The hyperparameters the rules look at, read straight from the metadata (any architecture).
struct ModelFacts {
    std::string arch;
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t n_expert = 0;

    static ModelFacts read(const gguf::File& file);
    int64_t n_gqa() const { return n_head_kv > 0 ? n_head / n_head_kv : 0; }
    // llama.cpp's LLM_TYPE_70B: an 80-layer llama with grouped-query attention.
    bool is_llama_70b() const { return arch == "llama" && n_layer == 80 && n_head != n_head_kv; }
};

struct MixtureOptions {
    FileType ftype = FileType::Q4_K_M;
    bool pure = false;             // every quantizable tensor gets the base type (fallbacks still apply)
    bool quantize_output = true;   // false: --leave-output-tensor
    std::optional<TensorType> output_type;      // --output-tensor-type
    std::optional<TensorType> token_embd_type;  // --token-embedding-type
    bool has_imatrix = false;
};

struct TensorChoice {
    TensorType type = TensorType::F32;  // the type written
    bool convert = false;               // false: the bytes are copied as they are
    std::string fallback;               // why a fallback type was used ("" if none)
};

// Whether llama.cpp would quantize this tensor at all (2-D+ weights, not norms, ...).
bool is_quantizable(const gguf::TensorInfo& t, const MixtureOptions& opt);

// n_dims as ggml counts them: trailing dimensions of 1 do not count (minimum 1).
int effective_dims(const gguf::TensorInfo& t);

// Chooses the type of every tensor. `tensors` must be in writing order (the rules count
// attn_v / ffn_down tensors as they go). Throws qllm::Error naming the tensor when a row
// length fits no type llama.cpp would fall back to (e.g. legacy types on rows of 172).
std::vector<TensorChoice> choose_types(const std::vector<const gguf::TensorInfo*>& tensors, const ModelFacts& model,
                                       const MixtureOptions& opt);

}  // namespace qllm::quant
