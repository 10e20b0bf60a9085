// Synthetic llama-architecture models of well-known shapes, for demos, tests and benchmarks
// on machines that cannot download real weights.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/types.h"

namespace qllm {

struct SynthShape {
    std::string name;
    int64_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_vocab, n_ctx;
    float rope_base;
    bool tied_embeddings;

    uint64_t parameter_count() const;
};

const std::vector<SynthShape>& synth_shapes();
std::optional<SynthShape> find_synth_shape(const std::string& name);

struct SynthOptions {
    TensorType type = TensorType::F16;  // of the 2-D weights; norms stay f32
    uint64_t seed = 42;
    int64_t layers = 0;                 // 0: the shape's own count
    bool chat = false;                  // add ChatML's <|im_start|>/<|im_end|> tokens and template
};

// Writes the model atomically. Weights are deterministic in (shape, seed) and heavy-tailed:
// roughly gaussian with rare large values and a few outlier input columns, like trained LLMs.
void write_synth_model(const SynthShape& shape, const SynthOptions& options, const std::string& path);

}  // namespace qllm
